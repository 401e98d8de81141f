"""benchmarks/recipe_seeds.py: a recipe trained at several seeds, each run through the quality sets,
and the spread of its figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from unit_helpers import load_benchmark


@pytest.fixture(scope="module")
def rs():
    return load_benchmark("recipe_seeds")


def test_spread_is_mean_min_max_over_the_columns_every_seed_has(rs):
    rows = {1: {"nab": {"gru": 60.0, "persistence": 65.0, "margin": -5.0}, "duty": {"caught": 3}},
            2: {"nab": {"gru": 70.0, "persistence": 64.0, "margin": 6.0}},
            3: {"nab": {"gru": 65.0, "persistence": 66.0, "margin": -1.0}}}
    s = rs.spread(rows)
    assert list(s) == ["nab"]  # "duty" is missing from seeds 2 and 3
    assert list(rs.spread({1: {"b": {"x": 1}, "a": {"x": 2}}})) == ["b", "a"]  # the sets' order, as given
    assert s["nab"]["gru"] == {"mean": 65.0, "min": 60.0, "max": 70.0}
    assert s["nab"]["margin"]["min"] == -5.0 and s["nab"]["margin"]["max"] == 6.0
    lines = rs.render(rows, s).splitlines()
    assert lines[-2] == "max | 70.0 (66.0, +6.0)"  # each figure's own maximum over the seeds
    assert lines[2] == "1 | 60.0 (65.0, -5.0)"


def _json(path: Path, doc) -> None:
    path.write_text(json.dumps(doc))


def test_figures_put_the_gru_and_persistence_where_they_belong(rs, tmp_path):
    run = lambda det, far: {"detected": det, "events": 20, "false_alerts_per_10k": far}  # noqa: E731
    _json(tmp_path / "q_s1.json", {"sets": {"/x/duty": [run(19, 1.5), run(12, 40.0)]}})
    corpus = lambda v: {"standard": {"sweep": {"summary": {"corpus": {"normalised": v}}}}}  # noqa: E731
    _json(tmp_path / "nab_s1.json", {"profiles": corpus(71.0), "baseline": {"profiles": corpus(68.5)}})
    fig = rs.figures(tmp_path, "s1", sets=True, nab=True)
    assert fig["duty"] == {"caught": 19, "events": 20, "false_per_10k": 1.5, "persistence_caught": 12,
                           "persistence_false_per_10k": 40.0}
    assert fig["nab"] == {"gru": 71.0, "persistence": 68.5, "margin": 2.5}
    assert rs.cell(fig["duty"]) == "19/20, 1.50 (40.00)" and rs.cell(fig["nab"]) == "71.0 (68.5, +2.5)"
    assert rs.figures(tmp_path, "s1", sets=False, nab=False) == {}  # files of an earlier run are not read


@pytest.mark.parametrize("after", [["--seed", "3"], ["--seed=0"], ["--see", "3"], ["--out=/x"], ["--ou", "/x"],
                                   ["--recalibrate"]])
def test_train_arguments_may_not_take_the_scripts_own(rs, tmp_path, capsys, after):
    a = rs.parse(["data", "--out", str(tmp_path), "--", "--epochs", "1"])
    assert a.train_args == ["--epochs", "1"] and a.seed_list == [1, 2, 3, 4]
    with pytest.raises(SystemExit):
        rs.parse(["data", "--out", str(tmp_path), "--", "--epochs", "1", *after])
    assert "belong to this script" in capsys.readouterr().err


@pytest.mark.parametrize("given, says", [(["--seeds", "1,1"], "a seed given twice"), (["--seeds", "1,x"], "--seeds"),
                                         (["--defaults", '{"weight_memory": 1}'], "weight_memory"),
                                         (["--sets", "NOPE"], "no labels.csv"),
                                         (["--nab-part", "dev", "--nab-dir", "NOPE"], "not found")])
def test_bad_arguments_stop_before_any_training(rs, tmp_path, capsys, given, says):
    given = [str(tmp_path / g) if g == "NOPE" else g for g in given]
    with pytest.raises(SystemExit):
        rs.parse(["data", "--out", str(tmp_path), *given])
    assert says in capsys.readouterr().err


def test_two_seeds_train_recalibrate_and_score(rs, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from edgernn.bundle import load_bundle
    from edgernn.synth import write_corpus

    monkeypatch.chdir(tmp_path)  # any directory: the scripts find each other
    write_corpus(tmp_path / "corpus", series=4, length=700, seed=1)
    qs = load_benchmark("quality_synthetic")
    qs.write_duty(tmp_path / "duty", per_fault=1, clean=2, length=700, seed=5)
    out = tmp_path / "out"
    assert rs.main([str(tmp_path / "corpus"), "--seeds", "1,2", "--out", str(out), "--recalibrate",
                    str(tmp_path / "corpus"), "--sets", str(tmp_path / "duty"), "--", "--hidden", "4",
                    "--epochs", "1", "--segment", "128", "--warmup", "64", "--threads", "1"]) == 0
    doc = json.loads((out / "recipe_seeds.json").read_text())
    assert set(doc["seeds"]) == {"1", "2"} and doc["given"]["train_args"][:2] == ["--hidden", "4"]
    duty = doc["spread"]["duty"]
    assert duty["events"]["min"] == duty["events"]["max"] == 6  # one of each of the six duty faults
    assert duty["false_per_10k"]["min"] <= duty["false_per_10k"]["mean"] <= duty["false_per_10k"]["max"]
    b1, b2 = (load_bundle(out / f"seed{s}") for s in (1, 2))
    assert not np.array_equal(b1.weights["gru.W_hr"], b2.weights["gru.W_hr"])  # two draws, not one
    shipped = load_bundle(Path(__file__).resolve().parents[2] / "firmware_models" / "univariate")
    assert b1.manifest["detector_defaults"] == shipped.manifest["detector_defaults"]  # the recipe = the shipped model's
    assert shipped.manifest["detector_defaults"]["min_rel_std"] == 1e-4
    assert "threshold" in (out / "seed1.recalibrate.txt").read_text()  # edgernn train --recalibrate's report
    cal = b1.manifest["calibration"]
    assert cal["target_false_alarm_rate"] == 3e-4  # the recalibration's --target-far, not training's default 1e-4
    assert doc["given"]["seeds"] == "1,2" and doc["given"]["sets"] == [str(tmp_path / "duty")]


def test_a_failed_training_names_its_log(rs, tmp_path):
    (tmp_path / "empty").mkdir()  # no CSV to train on: edgernn train exits 2, one line
    with pytest.raises(SystemExit, match=r"edgernn train failed \(exit 2\): see .*seed1\.train\.txt"):
        rs.main([str(tmp_path / "empty"), "--seeds", "1", "--out", str(tmp_path / "out")])
