"""What the integrations cost the daemon's main thread per reading. Not a test.

    python benchmarks/integrations_overhead.py [--model firmware_models/univariate] [--json out.json]

Runs ``Daemon.process`` in-process (no broker: nothing is published for warm streams, which is
the steady state measured here) on warm streams at batch 1 and batch 64, with the observers
switched between: none | retained state | state + HA discovery | state + discovery + Prometheus.
Rounds alternate between the variants (a shared, noisy machine); the table shows the median
microseconds per reading over the rounds and the difference to "none".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIG = """
node: bench
mqtt: {{host: 127.0.0.1, port: 1, client_id: bench-overhead}}
state: {{dir: {state}}}
homeassistant: {{discovery: true}}
pipelines:
  - {{name: plant, subscribe: plant/+/+, stream: "{{1}}/{{2}}", model: {model}}}
"""


def variants(daemon) -> dict[str, list]:
    from edgernn.homeassistant import StatePublisher
    from edgernn.metrics import Metrics

    names = [p.cfg.name for p in daemon.pipes]
    plain_cfg = daemon.cfg.__class__(**{**daemon.cfg.__dict__,
                                        "homeassistant": daemon.cfg.homeassistant.__class__(discovery=False)})
    state = StatePublisher(plain_cfg, daemon.mqtt, names)
    discovery = StatePublisher(daemon.cfg, daemon.mqtt, names)
    metrics = Metrics(daemon, serve=False)
    return {"none": [], "state": [state], "state+discovery": [discovery], "all + metrics": [discovery, metrics]}


def run(args) -> dict:
    from edgernn.config import parse_config
    from edgernn.daemon import Daemon

    tmp = tempfile.mkdtemp()
    cfg = parse_config(CONFIG.format(state=tmp, model=Path(args.model).resolve()), "bench.yaml")
    daemon = Daemon(cfg, install_signals=False)
    kinds = variants(daemon)
    streams = [f"line{j}/temp" for j in range(64)]
    t = [1.7e9]

    def items(n):
        t[0] += 1.0
        return [(streams[j % 64], t[0] + j // 64 * 1e-3, (float(j % 7),)) for j in range(n)]

    for _ in range(100):  # every stream seen (announced once) and warm
        daemon.process(0, items(64))
    results: dict = {}
    for batch in (1, 64):
        calls = max(1, args.readings // batch)
        per: dict[str, list] = {k: [] for k in kinds}
        for _ in range(args.rounds):
            for name, observers in kinds.items():
                daemon.observers = observers
                work = [items(batch) for _ in range(calls)]
                t0 = time.perf_counter()
                for w in work:
                    daemon.process(0, w)
                per[name].append((time.perf_counter() - t0) / (calls * batch) * 1e6)
        results[batch] = {k: statistics.median(v) for k, v in per.items()}
    results["hooks"] = hook_costs(daemon, kinds, streams)
    return results


def hook_costs(daemon, kinds: dict, streams: list) -> dict:
    """Microseconds per on_batch call alone (warm streams; best of 5 x 20,000), batch 1 and 64."""
    import timeit
    from types import SimpleNamespace

    import numpy as np

    p = daemon.pipes[0]
    out = {}
    for name, observers in kinds.items():
        daemon.observers = observers
        row = {}
        for batch in (1, 64):
            s, ts = streams[:batch], np.full(batch, 1.7e9)
            res = SimpleNamespace(likelihood=np.linspace(0.1, 0.9, batch))  # what on_batch reads of a Result
            best = min(timeit.repeat(lambda: daemon._notify("on_batch", p, s, ts, [], 1e-5, res), number=20_000,
                                     repeat=5))
            row[batch] = best / 20_000 * 1e6
        out[name] = row
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "firmware_models" / "univariate"))
    ap.add_argument("--readings", type=int, default=6400, help="readings per variant per round")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    res = run(args)
    hooks = res.pop("hooks")
    print("on_batch hook alone, us per call (best of 5):")
    print(f"{'variant':<16} {'batch 1':>8} {'batch 64':>9}")
    for name, row in hooks.items():
        print(f"{name:<16} {row[1]:>8.2f} {row[64]:>9.2f}")
    print("Daemon.process, us per reading (median of rounds):")
    print(f"{'batch':>5}  {'variant':<16} {'us/reading':>10} {'vs none':>9}")
    for batch, row in res.items():
        for name, us in row.items():
            print(f"{batch:>5}  {name:<16} {us:>10.2f} {us - row['none']:>+9.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"process": {str(b): r for b, r in res.items()}, "hooks": hooks},
                                              indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
