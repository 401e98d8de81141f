"""Simulated sensor fleet with injected faults (for the demo, benchmarks and tests).

Each sensor is a slow daily-like cycle plus a faster ripple and noise around its own level and
scale. Faults are injected at known readings so a run can be scored against them:

    spike    one reading far off                      stuck    the value freezes
    shift    the level jumps and stays for a while     drift    a slow ramp away from normal
    noise    the noise grows several times

    fleet = Fleet(n_sensors=12, n_readings=600, seed=0)
    for k, readings in fleet.steps():        # readings: [(stream, ts, value), ...] for step k
        ...
    fleet.faults                              # [Fault(stream, kind, start, end), ...]
    fleet.judge(stream, k)                    # an alert raised at reading k: caught, or a false alert
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FAULT_KINDS = ("spike", "shift", "stuck", "drift", "noise")


# A fault counts as caught only by an alert raised from its first affected reading to its last
# (a one-reading spike: up to GRACE readings after it, for the looks that need a second reading).
GRACE = 3
# the longest fault (61 readings) plus room after it: readings a fleet needs after its first fault
FAULT_ROOM = 81


@dataclass(frozen=True)
class Fault:
    stream: str
    kind: str
    start: int  # first affected reading index
    end: int  # last affected reading index

    @property
    def window_end(self) -> int:
        """The last reading at which a raised alert still catches this fault."""
        return max(self.end, self.start + GRACE)

    def catches(self, k: int) -> bool:
        return self.start <= k <= self.window_end


@dataclass(frozen=True)
class Verdict:
    """What an alert raised on ``stream`` at reading ``k`` was, judged against the injected faults."""

    kind: str  # caught | before | after | clean
    fault: Fault | None
    delay: int = 0  # readings: after the fault's start (caught), before it (before), past its end (after)

    @property
    def false(self) -> bool:
        return self.kind != "caught"

    def describe(self, period_s: float) -> str:
        f = self.fault
        if self.kind == "caught":
            return (f"caught: {f.kind} injected at reading {f.start}, {self.delay} reading(s) "
                    f"({self.delay * period_s:g} s) after it started")
        if self.kind == "before":
            return f"false alert: {self.delay} reading(s) before the {f.kind} injected at reading {f.start}"
        if self.kind == "after":
            return (f"false alert: {self.delay} reading(s) after the {f.kind} fault ended "
                    f"(at reading {f.end}; the return to normal)")
        return "false alert: nothing injected on this stream"


class Fleet:
    def __init__(self, n_sensors: int = 12, n_readings: int = 600, seed: int = 0, period_s: float = 10.0,
                 t0: float = 1_700_000_000.0, first_fault: int = 250, n_faults: int | None = None,
                 topic: str = "plant/line{line}/sensor{i}"):
        rng = np.random.default_rng(seed)
        self.n, self.T, self.period_s, self.t0 = n_sensors, n_readings, period_s, t0
        self.streams = [f"line{i // 4 + 1}/sensor{i}" for i in range(n_sensors)]
        self.topics = [topic.format(line=i // 4 + 1, i=i) for i in range(n_sensors)]
        k = np.arange(n_readings)[:, None]
        level = rng.uniform(15, 60, n_sensors)
        scale = rng.uniform(1, 5, n_sensors)
        phase = rng.uniform(0, 2 * np.pi, n_sensors)
        slow = np.sin(2 * np.pi * k / rng.uniform(150, 300, n_sensors) + phase)
        ripple = 0.3 * np.sin(2 * np.pi * k / rng.uniform(12, 30, n_sensors) + phase)
        noise = 0.12 * rng.standard_normal((n_readings, n_sensors))
        self.x = level + scale * (slow + ripple + noise)  # [T, S] raw readings
        self.faults: list[Fault] = []
        n_faults = max(1, n_sensors // 2) if n_faults is None else n_faults  # half stay clean
        victims = rng.permutation(n_sensors)[:n_faults]  # at most one fault per sensor; the rest stay clean
        span = max(n_readings - first_fault - 80, 1)
        for j, s in enumerate(victims):
            kind = FAULT_KINDS[j % len(FAULT_KINDS)]
            start = first_fault + int(rng.integers(0, span))
            self.faults.append(self._inject(kind, int(s), start, scale[s], rng))
        self.clean = [s for s in self.streams if s not in {f.stream for f in self.faults}]

    def _inject(self, kind: str, s: int, start: int, scale: float, rng) -> Fault:
        x, T = self.x, self.T
        if kind == "spike":
            x[start, s] += scale * rng.choice([-1, 1]) * 6.0
            end = start
        elif kind == "shift":
            end = min(start + 60, T - 1)
            x[start:end + 1, s] += scale * 2.5
        elif kind == "stuck":
            end = min(start + 60, T - 1)
            x[start:end + 1, s] = x[start, s]
        elif kind == "drift":
            end = min(start + 60, T - 1)
            x[start:end + 1, s] += scale * np.linspace(0, 3.0, end - start + 1)
        else:  # noise
            end = min(start + 40, T - 1)
            x[start:end + 1, s] += scale * 0.8 * rng.standard_normal(end - start + 1)
        return Fault(self.streams[s], kind, start, end)

    def ts(self, k: int) -> float:
        return self.t0 + k * self.period_s

    def steps(self):
        """Yield (k, [(topic, stream, ts, value), ...]) for every reading index k."""
        for k in range(self.T):
            t = self.ts(k)
            yield k, [(self.topics[s], self.streams[s], t, round(float(self.x[k, s]), 4)) for s in range(self.n)]

    def index_of(self, ts: float) -> int:
        return int(round((ts - self.t0) / self.period_s))

    def judge(self, stream: str, k: int) -> Verdict:
        """Caught only inside a fault's window; before or after it, or on a clean stream, a false alert."""
        fault = next((f for f in self.faults if f.stream == stream), None)  # at most one fault per stream
        if fault is None:
            return Verdict("clean", None)
        if fault.catches(k):
            return Verdict("caught", fault, k - fault.start)
        if k < fault.start:
            return Verdict("before", fault, fault.start - k)
        return Verdict("after", fault, k - fault.end)
