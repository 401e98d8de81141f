"""CPU time (and optionally callgrind instructions) per reading of ``Detector.process``: two source trees, alternating.

    python benchmarks/hotpath_ab.py --tree old=/work/main --tree new=. --config tflite,1,1000 \
        --config numpy,64,1000 --rounds 5
    python benchmarks/hotpath_ab.py --tree old=/work/main --tree new=. --config tflite,64,1000 --callgrind 20

Per round, configuration and tree: a fresh ``python`` with PYTHONPATH set to the tree builds the
same detector as ``edgernn bench`` (its ``_detector_config``: the streams warmed past warm-up, the
same synthetic values), feeds it for ``--seconds`` in blocks, and prints the median over blocks of
this thread's CPU time per reading (wall beside it). The trees alternate, so a busy neighbour hits
both. ``--callgrind CALLS``: instead, the instructions per reading of CALLS ``process`` calls under
``valgrind --tool=callgrind`` (instrumentation switched on after the warm-up): stable to ~0.1 %
on a shared machine, but blind to cache misses (the 100,000-stream penalty). ``--cache-sim``: the
same with callgrind's cache simulation (32 KB L1s, a 32 MB last level; no prefetching modelled, so
a miss counted is a line the reading had to bring in, not time lost), printing instructions, L1
data misses and last-level data misses per reading. Under valgrind a configuration with more
than 1,000 streams warms 1,000 streams as the bench does and copies their rows to the others
(stream i fed the values of stream i % 1,000), then visits every stream once before the count:
the same rows touched per reading as the bench's, without warming 100,000 streams under valgrind.
Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import gc, json, os, subprocess, sys, time, io, contextlib
from edgernn.threads import pin_blas
pin_blas()
from edgernn.bundle import load_bundle
from edgernn.commands.common import resolve_model
from edgernn.commands import bench as B
from edgernn.backends import create_backend
model, name, b, n, seconds, cg_calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
bundle = load_bundle(resolve_model(model))
be = create_backend(name, bundle)
B.StepFeeder(be, b).run(300)
cycle = B.cycle_for(n, bundle.n_features)
if cg_calls and n > 1000:  # 1,000 streams warmed, their rows copied to the others (see the module doc)
    import numpy as np
    from edgernn.detector import Detector
    from edgernn.settings import resolve
    small = B.stream_values(1000, bundle.n_features, cycle=cycle)
    det = Detector(bundle, be, resolve(bundle, {"max_streams": n}))  # the bundle's detector_defaults, as edgernn bench
    warm = B.warm_readings(det)
    w = B.Feeder(det, 256, small)
    w.run(warm * w.slices)
    st = det.state
    for s in range(1000, n, 1000):
        rows = st.rows_for([f"s{i}" for i in range(s, min(s + 1000, n))])
        st.num[rows], st.num4[rows], st.h[rows] = st.num[rows % 1000], st.num4[rows % 1000], st.h[rows % 1000]
    values = np.tile(small, (-(-n // 1000), 1, 1))[:n]
    sweep = B.Feeder(det, 256, values, t0=warm)
    sweep.run(sweep.slices)  # every stream once more: rows in their steady state
    feeder = B.Feeder(det, b, values, t0=warm + 1)
else:
    values = B.stream_values(n, bundle.n_features, cycle=cycle)
    with contextlib.redirect_stderr(io.StringIO()):
        feeder = B._detector_config(bundle, name, be, b, n, values).feeder
feeder.run(max(1, 2000 // b))
if cg_calls:
    subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], capture_output=True)
    feeder.run(cg_calls)
    subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], capture_output=True)
    sys.exit()
calls, samples = max(1, int(6000 / b)), []
gc.disable()
end = time.perf_counter() + seconds
while time.perf_counter() < end:
    c0, w0 = time.thread_time(), time.perf_counter()
    feeder.run(calls)
    samples.append(((time.thread_time() - c0) / calls / b * 1e6, (time.perf_counter() - w0) / calls / b * 1e6))
print(json.dumps({"cpu": sorted(s[0] for s in samples)[len(samples) // 2],
                  "wall": sorted(s[1] for s in samples)[len(samples) // 2]}))
"""


def run_one(tree: str, model: str, cfg: tuple[str, int, int], seconds: float, cg_calls: int, cache: bool = False) -> dict:
    env = {**os.environ, "PYTHONPATH": tree, "OPENBLAS_NUM_THREADS": "1"}
    args = [sys.executable, "-c", CHILD, model, cfg[0], str(cfg[1]), str(cfg[2]), str(seconds), str(cg_calls)]
    if not cg_calls:
        out = subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    with tempfile.TemporaryDirectory() as tmp:
        dump = os.path.join(tmp, "cg.out")
        sim = ["--cache-sim=yes", "--LL=33554432,16,64"] if cache else []
        subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no", *sim, f"--callgrind-out-file={dump}", *args],
                       cwd=tree, env=env, capture_output=True, text=True, check=True)
        show = ["--show=Ir,D1mr,D1mw,DLmr,DLmw"] if cache else []
        text = subprocess.run(["callgrind_annotate", *show, dump], capture_output=True, text=True, check=True).stdout
    line = next(t for t in text.splitlines() if "PROGRAM TOTALS" in t)
    counts = [int(v.replace(",", "")) / (cg_calls * cfg[1]) for v in re.findall(r"([\d,]+) \(100\.0%\)", line)]
    if not cache:
        return {"instructions": counts[0]}
    return {"instructions": counts[0], "l1_misses": counts[1] + counts[2], "ll_misses": counts[3] + counts[4]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", action="append", required=True, metavar="LABEL=PATH", help="a source tree (built in place)")
    ap.add_argument("--config", action="append", required=True, metavar="BACKEND,BATCH,STREAMS")
    ap.add_argument("--model", default="univariate")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0, help="timing per run (default: %(default)s)")
    ap.add_argument("--callgrind", type=int, default=0, metavar="CALLS", help="instructions per reading instead of time")
    ap.add_argument("--cache-sim", action="store_true", help="with --callgrind: also L1 / last-level data misses per reading")
    a = ap.parse_args()
    if a.cache_sim and not a.callgrind:
        ap.error("--cache-sim needs --callgrind CALLS (it counts under valgrind)")
    trees = [t.split("=", 1) for t in a.tree]
    configs = [(c.split(",")[0], int(c.split(",")[1]), int(c.split(",")[2])) for c in a.config]
    got: dict = {}
    for r in range(1 if a.callgrind else a.rounds):
        for cfg in configs:
            for label, path in (trees if r % 2 == 0 else trees[::-1]):
                res = run_one(os.path.abspath(path), a.model, cfg, a.seconds, a.callgrind, a.cache_sim)
                got.setdefault((cfg, label), []).append(res)
                print(f"round {r + 1} {cfg} {label}: {res}", file=sys.stderr, flush=True)
    key = "instructions" if a.callgrind else "cpu"
    print(f"{'backend':8s} {'batch':>5s} {'streams':>8s} " + " ".join(f"{label:>14s}" for label, _ in trees)
          + ("  (instructions, L1 and last-level data misses per reading)" if a.cache_sim else
             "  (instructions per reading)" if a.callgrind else "  (median CPU µs per reading; wall in brackets)"))
    for cfg in configs:
        cells = []
        for label, _ in trees:
            runs = got[(cfg, label)]
            v = statistics.median(x[key] for x in runs)
            if a.cache_sim:
                cells.append(f"{v:7,.0f} {runs[0]['l1_misses']:4.0f} {runs[0]['ll_misses']:4.1f}")
            else:
                cells.append(f"{v:14,.0f}" if a.callgrind else
                             f"{v:7.2f} ({statistics.median(x['wall'] for x in runs):5.2f})")
        print(f"{cfg[0]:8s} {cfg[1]:5d} {cfg[2]:8d} " + " ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
