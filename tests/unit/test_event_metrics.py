"""Event-wise metrics and the labels file format."""

import math

import numpy as np
import pytest

from edgernn.evaluate import events
from edgernn.evaluate.events import AlertSpan, Incident


def test_parse_time_epoch_and_iso():
    assert events.parse_time("1709290800") == 1709290800.0
    assert events.parse_time("2024-03-01T11:00:00Z") == 1709290800.0
    assert events.parse_time("2024-03-01 11:00:00") == 1709290800.0  # no offset = UTC
    assert events.parse_time("2024-03-01T12:00:00+01:00") == 1709290800.0
    with pytest.raises(ValueError):
        events.parse_time("yesterday")


def test_read_labels(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text("stream,start,end,label\n"
                 "# a comment\n"
                 "pump-1,2024-03-01T11:00:00Z,2024-03-01T11:30:00Z,bearing wear\n"
                 "*,100,100\n")
    incs = events.read_labels(p)
    assert incs[0] == Incident("pump-1", 1709290800.0, 1709292600.0, "bearing wear")
    assert incs[1] == Incident("*", 100.0, 100.0, "")


def test_read_labels_errors_name_the_line(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text("pump-1,200,100\n")
    with pytest.raises(ValueError, match=r"labels.csv:1: end is before start"):
        events.read_labels(p)
    p.write_text("pump-1,100\n")
    with pytest.raises(ValueError, match=r":1: expected"):
        events.read_labels(p)


def test_alert_spans_from_flags():
    ts = np.arange(10.0)
    raised = np.zeros(10, bool)
    cleared = np.zeros(10, bool)
    raised[[2, 7]] = True
    cleared[4] = True
    assert events.alert_spans("s", ts, raised, cleared) == [AlertSpan("s", 2.0, 4.0), AlertSpan("s", 7.0, 9.0)]


def test_hand_computed_event_metrics():
    # stream a: incidents [100, 200] "x", [500, 600] "y", and [1000, 1000] "z" (from "*");
    #           alerts [150, 160] (hit x, delay 50), [300, 310] (false), [490, 520] (hit y,
    #           already open at 500 -> delay 0); z missed.
    # stream b: incident [1000, 1000] "z" (from "*"); no alerts -> missed.
    # recall 2 / 4 = 0.5, precision 2 / 3, F1 = 2 * 0.5 * 0.667 / 1.167 = 0.571,
    # delays 50 and 0 -> mean 25, max 50.
    incs = [Incident("a", 100, 200, "x"), Incident("a", 500, 600, "y"), Incident("*", 1000, 1000, "z")]
    alerts = [AlertSpan("a", 150, 160), AlertSpan("a", 300, 310), AlertSpan("a", 490, 520)]
    m = events.evaluate(incs, alerts, ["a", "b"])
    assert m["incidents"] == 4 and m["detected"] == 2
    assert m["recall"] == pytest.approx(0.5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert m["delay_mean_s"] == pytest.approx(25.0) and m["delay_max_s"] == pytest.approx(50.0)
    assert m["recall_by_label"] == {"x": 1.0, "y": 1.0, "z": 0.0}


def test_tolerance_widens_incidents():
    incs = [Incident("a", 100, 200)]
    alerts = [AlertSpan("a", 230, 240)]
    assert events.evaluate(incs, alerts, ["a"])["recall"] == 0.0
    m = events.evaluate(incs, alerts, ["a"], late=60)
    assert m["recall"] == 1.0 and m["precision"] == 1.0 and m["delay_mean_s"] == 130.0


def test_no_alerts_gives_zero_f1_and_nan_precision():
    m = events.evaluate([Incident("a", 1, 2)], [], ["a"])
    assert m["f1"] == 0.0 and math.isnan(m["precision"]) and m["recall"] == 0.0


def test_eval_events_command_end_to_end(tmp_path, capsys):
    import json

    from edgernn.backends.base import GRU_WEIGHT_SHAPES
    from edgernn.bundle import write_bundle
    from edgernn.cli import main
    from edgernn.recording import write_recording

    rng = np.random.default_rng(2)
    weights = {k: (0.1 * rng.standard_normal(tuple({"F": 1, "H": 8}[d] for d in spec))).astype(np.float32)
               for k, spec in GRU_WEIGHT_SHAPES.items()}
    write_bundle(tmp_path / "m", name="tiny", version="test", features=["value"], weights=weights)
    v = np.sin(np.arange(1200) / 10.0) + 0.05 * rng.standard_normal(1200)
    v[800] += 30.0
    write_recording(tmp_path / "rec.csv", v, start=1.7e9, step=60.0)
    (tmp_path / "labels.csv").write_text(f"stream,start,end,label\nrec,{1.7e9 + 790 * 60:.0f},{1.7e9 + 810 * 60:.0f},spike\n")
    out = tmp_path / "res.json"
    rc = main(["eval", "events", str(tmp_path / "rec.csv"), "--labels", str(tmp_path / "labels.csv"),
               "--model", str(tmp_path / "m"), "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["incidents"] == 1 and res["detected"] == 1 and res["recall_by_label"] == {"spike": 1.0}
    printed = capsys.readouterr().out
    assert "precision" in printed
    # the persistence baseline ran in the same pass: its figures and the margins are printed and kept
    assert res["baseline"]["backend"] == "persistence" and res["baseline"]["incidents"] == 1
    margins = {r["metric"]: r for r in res["margin"]}
    assert set(margins) == {"precision", "recall", "f1", "false_alerts", "delay_mean_s"}
    assert margins["recall"]["margin"] == res["recall"] - res["baseline"]["recall"]
    assert "vs the persistence baseline" in printed and "margin" in printed
    rc = main(["eval", "events", str(tmp_path / "rec.csv"), "--labels", str(tmp_path / "labels.csv"),
               "--model", str(tmp_path / "m"), "--json", str(out), "--no-baseline"])
    assert rc == 0 and "baseline" not in json.loads(out.read_text())
    assert "persistence" not in capsys.readouterr().out


def test_margin_rows_direction():
    from edgernn.evaluate.report import margin_rows

    rows = margin_rows([("f1", 0.8, 0.7, "higher"), ("far", 20.0, 10.0, "lower"), ("x", None, 1.0, "higher"),
                        ("tie", 1.0, 1.0, "higher")])
    assert [r["gru_ahead"] for r in rows] == [True, False, None, False]
    assert rows[0]["margin"] == pytest.approx(0.1) and rows[1]["margin"] == 10.0 and rows[2]["margin"] is None


def test_eval_benchmark_with_missing_explicit_data_dir_fails(tmp_path, capsys):
    from edgernn.cli import main

    assert main(["eval", "nab", "--data-dir", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err
