"""A training recipe at several seeds: train each seed, recalibrate it as the shipped model was, run the
quality sets and NAB through benchmarks/ablate.py, and print one row per seed and the spread (mean,
min, max) of every figure, persistence beside the GRU. Writes OUT/recipe_seeds.json.

    python -m edgernn.synth corpus --mix broad --out /tmp/mixbroad; python -m edgernn.synth corpus --out /tmp/mixclassic
    python benchmarks/recipe_seeds.py /tmp/mixbroad --seeds 1,2,3,4 --out /tmp/rs/shipped \\
        --recalibrate /tmp/mixclassic --sets /tmp/d/soft7001 /tmp/d/duty7002 --nab-part dev \\
        -- --name univariate --components 3 --hidden 32 --adapt 0.0005 --epochs 5 --threads 1 --logvar-max 0

Everything after "--" goes to `edgernn train` (not --out or --seed). One seed's figure is one draw:
the shipped recipe's NAB dev score spans 62.0-72.8 over seeds 1-8 (docs/QUALITY.md, "the training
recipe's seed spread"). Judge a recipe by its spread; choose a seed by a rule written before the run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ablate  # noqa: E402  (benchmarks/ablate.py: the bundle copy and the two evaluation commands)
from edgernn.commands.train import add_arguments as train_arguments  # noqa: E402
from edgernn.settings import check, write_model_defaults  # noqa: E402

# the shipped univariate's history: 2.1.0's tables were fitted with the rate cap on, 2.2.0, 2.3.0 and
# 2.4.0 added the settle wait, the weight correction and the lower relative std floor without refitting them,
# 2.5.0 the calm step
RECAL_DEFAULTS = {"alert_rate_weight": 0.3}
FINAL_DEFAULTS = {"level_settle": 2.0, "min_rel_std": 1e-4, "weight_memory": 1000.0, "calm_memory": 1000.0}


def edgernn_train(args: list[str], log: Path) -> None:
    """`edgernn train ARGS`, its output in ``log``; a failure stops the run naming the log."""
    try:
        ablate.run([sys.executable, "-m", "edgernn", "train", *args], log)
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"edgernn train failed (exit {exc.returncode}): see {log}") from None


def train_seed(a, seed: int) -> Path:
    """Train (and recalibrate) one seed's bundle in OUT/seedS; the train logs beside it."""
    bundle = a.out / f"seed{seed}"
    edgernn_train([*map(str, a.data), "--out", str(bundle), "--seed", str(seed), *a.train_args],
                  Path(f"{bundle}.train.txt"))
    if a.recalibrate:
        write_model_defaults(bundle, json.loads(a.recal_defaults))
        edgernn_train([str(a.recalibrate), "--out", str(bundle), "--recalibrate", *shlex.split(a.recal_args)],
                      Path(f"{bundle}.recalibrate.txt"))
    write_model_defaults(bundle, json.loads(a.defaults))
    return bundle


def figures(out: Path, name: str, sets: bool, nab: bool) -> dict:
    """One seed's figures from ablate.py's JSON (only the runs this call asked for): per set caught /
    false alerts per 10k (GRU and persistence), and NAB's standard corpus sweep (GRU, persistence,
    margin)."""
    fig = {}
    if sets:
        for path, (g, b) in ablate.quality_sets(out / f"q_{name}.json").items():
            fig[Path(path).name] = {"caught": g["detected"], "events": g["events"],
                                    "false_per_10k": g["false_alerts_per_10k"],
                                    "persistence_caught": b["detected"], "persistence_false_per_10k": b["false_alerts_per_10k"]}
    if nab:
        g, b = ablate.nab_corpus(json.loads((out / f"nab_{name}.json").read_text()), "standard", "sweep")
        fig["nab"] = {"gru": g, "persistence": b, "margin": g - b}
    return fig


def spread(rows: dict[int, dict]) -> dict:
    """{column: {figure: {"mean", "min", "max"}}} over the seeds' figures (the columns every seed has,
    in the first seed's order)."""
    first = next(iter(rows.values()), {})
    out = {}
    for col in (c for c in first if all(c in r for r in rows.values())):
        keys = set.intersection(*(set(r[col]) for r in rows.values()))
        out[col] = {k: {"mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v))}
                    for k in sorted(keys) for v in [[r[col][k] for r in rows.values()]]}
    return out


def cell(f: dict, caught: str = ".0f") -> str:
    if "margin" in f:
        return f"{f['gru']:.1f} ({f['persistence']:.1f}, {f['margin']:+.1f})"
    return f"{f['caught']:{caught}}/{f['events']:.0f}, {f['false_per_10k']:.2f} ({f['persistence_false_per_10k']:.2f})"


def render(rows: dict[int, dict], summary: dict) -> str:
    """Seeds as rows, sets and NAB as columns; then the mean, min and max rows."""
    cols = list(summary)
    lines = [" | ".join(["seed", *cols]), " | ".join(["---"] * (len(cols) + 1))]
    for seed, r in rows.items():
        lines.append(" | ".join([str(seed), *(cell(r[c]) for c in cols)]))
    for stat in ("mean", "min", "max"):
        lines.append(" | ".join([stat, *(cell({k: v[stat] for k, v in summary[c].items()}, ".1f" if stat == "mean" else ".0f")
                                         for c in cols)]))
    return "\n".join(lines) + ("\n(caught/events, false alerts per 10k clean readings (persistence's); NAB: standard corpus "
                               "sweep (persistence, margin from unrounded scores); min and max: each figure's own over "
                               "the seeds, not one seed's row)")


NO_OUT, NO_SEED = "<recipe_seeds: OUT/seedS>", -7  # stand for the --out and --seed this script gives (a later one wins)


def _train_options(args: list[str]) -> argparse.Namespace:
    """``edgernn train``'s own reading of the arguments after "--" (so --seed=3 or --se 3 count too)."""
    p = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    train_arguments(p)
    return p.parse_known_args(["data", "--out", NO_OUT, "--seed", str(NO_SEED), *args])[0]


def parse(argv):
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, nargs="+", help="training data (edgernn train's DATA)")
    ap.add_argument("--seeds", default="1,2,3,4", help="comma-separated seeds (default 1,2,3,4)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--recalibrate", type=Path, help="refit each seed's tables on this data (edgernn train --recalibrate)")
    ap.add_argument("--recal-args", default="--target-far 3e-4 --learn-far 1e-4",
                    help="edgernn train's options for the recalibration, one string: --recal-args='--target-far 1e-3'")
    ap.add_argument("--recal-defaults", default=json.dumps(RECAL_DEFAULTS), help="detector_defaults during recalibration")
    ap.add_argument("--defaults", default=json.dumps(FINAL_DEFAULTS), help="detector_defaults added after it")
    ap.add_argument("--sets", type=Path, nargs="*", default=[], help="labelled quality sets (benchmarks/quality_synthetic.py)")
    ap.add_argument("--nab-part", choices=("dev", "validation", "all"))
    ap.add_argument("--nab-dir", type=Path, default=Path("/work/shared/data/nab"))
    a = ap.parse_args(argv[:cut])
    a.train_args = argv[cut + 1:]
    _check(ap, a)
    return a


def _check(ap, a) -> None:
    """Everything that would otherwise fail after the first seed has trained."""
    try:
        a.seed_list = [int(s) for s in a.seeds.split(",")]
        for name in ("recal_defaults", "defaults"):
            check(json.loads(getattr(a, name)))
    except ValueError as exc:
        ap.error(f"--seeds / --recal-defaults / --defaults: {exc}")
    if len(set(a.seed_list)) != len(a.seed_list):
        ap.error(f"--seeds {a.seeds}: a seed given twice")
    try:
        t = _train_options(a.train_args)
    except argparse.ArgumentError as exc:
        ap.error(f"after --: {exc}")
    if str(t.out) != NO_OUT or t.seed != NO_SEED or t.recalibrate:
        ap.error("--out, --seed and --recalibrate belong to this script, not to the train arguments after --")
    names = [s.name for s in a.sets]
    if len(set(names)) != len(names) or "nab" in names:
        ap.error("--sets: each set needs its own folder name (not 'nab'): they name the table's columns")
    for d in a.sets:
        if not (d / "labels.csv").is_file():
            ap.error(f"--sets: {d}: no labels.csv (make one with benchmarks/quality_synthetic.py)")
    if a.nab_part and not a.nab_dir.is_dir():
        ap.error(f"--nab-dir {a.nab_dir}: not found")


def main(argv=None) -> int:
    a = parse(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for seed in a.seed_list:
        bundle = train_seed(a, seed)
        try:
            ablate.main([f"seed{seed}", "{}", "--model", str(bundle), *(["--sets", *map(str, a.sets)] if a.sets else []),
                         *(["--nab-part", a.nab_part, "--nab-dir", str(a.nab_dir)] if a.nab_part else []), "--out", str(a.out)])
        except subprocess.CalledProcessError as exc:
            raise SystemExit(f"seed {seed}: {shlex.join(map(str, exc.cmd[1:3]))} failed (exit {exc.returncode}): "
                             f"see {a.out}/q_seed{seed}.txt or {a.out}/nab_seed{seed}.txt") from None
        rows[seed] = figures(a.out, f"seed{seed}", bool(a.sets), bool(a.nab_part))
    summary = spread(rows)
    print(render(rows, summary))
    given = {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if isinstance(v, list) else v) for k, v in vars(a).items()}
    (a.out / "recipe_seeds.json").write_text(json.dumps({"given": given, "seeds": rows, "spread": summary}, indent=1))
    print(f"wrote {a.out / 'recipe_seeds.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
