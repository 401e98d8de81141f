"""Odd recordings, labels and stream counts given to the offline commands (replay, eval events and
their plots). Each case was a traceback, minutes of work, a confusing message or a misleading figure
before (see the comments); through the real CLI (a subprocess) where a user meets it."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
from unit_helpers import PYTHON, REPO, sine_series

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="plots need matplotlib")


def edgernn(*args, timeout: float = 300):
    return subprocess.run([PYTHON, "-m", "edgernn", *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout)


def _long_file(path, n_streams: int, n: int, spike: dict | None = None):
    """``timestamp,stream,value``: ``n`` readings of each of ``n_streams`` streams, interleaved."""
    v = sine_series(n, seed=3)[:, 0]
    rows = [f"{1700000000 + 60 * j},s{i},{v[j] + 0.1 * i + (spike or {}).get((i, j), 0.0):.6f}"
            for j in range(n) for i in range(n_streams)]
    path.write_text("timestamp,stream,value\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def small_store(tmp_path, steady_bundle):
    """A copy of the steady model whose detector_defaults keep 3 live streams (max_streams 3)."""
    from edgernn.settings import write_model_defaults

    out = tmp_path / "model3"
    shutil.copytree(steady_bundle(F=1, warmup=16), out)
    write_model_defaults(out, {"max_streams": 3})
    return out


# -- more streams than the detector keeps -------------------------------------------------------

def test_replay_of_more_streams_than_max_streams_scores_every_stream_as_if_alone(tmp_path, steady_bundle, small_store):
    # before: OverflowError traceback ("more distinct streams in one batch than the store's capacity");
    # with fewer streams per batch than that, streams were evicted and silently started over
    rec = _long_file(tmp_path / "five.csv", 5, 120, spike={(2, 100): 5.0})
    r = edgernn("replay", rec, "--model", small_store, "--out", tmp_path / "small.csv", "--quiet")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "five.csv has 5 streams, more than max_streams 3: every stream keeps its state here" in r.stderr, r.stderr
    ref = edgernn("replay", rec, "--model", steady_bundle(F=1, warmup=16), "--out", tmp_path / "ref.csv", "--quiet")
    assert ref.returncode == 0, ref.stderr
    assert (tmp_path / "small.csv").read_text() == (tmp_path / "ref.csv").read_text()


def test_eval_events_with_more_streams_than_max_streams_runs(tmp_path, small_store):
    # before: OverflowError traceback after the run started (every stream is in the first batch)
    rec = _long_file(tmp_path / "five.csv", 5, 80)
    labels = tmp_path / "labels.csv"
    labels.write_text("stream,start,end\ns1,1700003000,1700003600\n")
    r = edgernn("eval", "events", rec, "--labels", labels, "--model", small_store, "--no-baseline")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "5 stream(s)" in r.stdout


def test_many_one_reading_streams_are_explained(tmp_path):
    # before: the "no reading was scored" explanation compared every row with every stream: 3 min
    # 45 s for 100,000 streams, ~1 min for 50,000 (the replay itself took under a second; measured
    # once, not asserted here: unit tests do not time things)
    rows = "".join(f"{1700000000 + i},s{i},{i % 7}\n" for i in range(50_000))
    rec = tmp_path / "many.csv"
    rec.write_text("timestamp,stream,value\n" + rows)
    r = edgernn("replay", rec, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "all within the model's warm-up (256 readings per stream; the longest stream had 1)" in r.stderr


def test_eval_events_with_many_streams_splits_them_in_one_pass(tmp_path):
    # before: 12,000 streams -> OverflowError traceback after ~10 s (more than max_streams 10,000 in
    # one batch), and the split by stream grew with streams x rows (40 s at 100,000 streams)
    rows = "".join(f"{1700000000 + i},s{i},{i % 7}\n" for i in range(12_000))
    rec = tmp_path / "many.csv"
    rec.write_text("timestamp,stream,value\n" + rows)
    labels = tmp_path / "labels.csv"
    labels.write_text("stream,start,end\ns5,1700000000,1700000100\n")
    r = edgernn("eval", "events", rec, "--labels", labels, "--no-baseline", timeout=120)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "12000 readings, 12000 stream(s)" in r.stdout


def test_event_metrics_of_many_streams_count_each_streams_own_and_the_star_incidents():
    # before: each stream scanned every incident and every alert: 12,000 streams with one alert each
    # took ~7 s (6,000: 1.8 s; quadratic; measured once, not asserted); the numbers are the same
    from edgernn.evaluate.events import AlertSpan, Incident, evaluate

    streams = [f"s{i}" for i in range(12_000)]
    incidents = [Incident(s, 100.0, 200.0, "k") for s in streams[::2]] + [Incident("*", 1000.0, 1000.0)]
    alerts = [AlertSpan(s, 150.0 + i % 3 * 100, 400.0) for i, s in enumerate(streams)]
    res = evaluate(incidents, alerts, streams, early=0.0, late=10.0)
    assert res == {"incidents": 18_000, "detected": 2000, "alerts": 12_000, "true_alerts": 2000,
                   "false_alerts": 10_000, "precision": 1 / 6, "recall": 1 / 9, "f1": pytest.approx(2 / 15),
                   "delay_mean_s": 50.0, "delay_median_s": 50.0, "delay_max_s": 50.0,
                   "recall_by_label": {"(none)": 0.0, "k": 1 / 3}}


# -- odd stream names ---------------------------------------------------------------------------

def test_empty_stream_names_are_named_in_a_warning(tmp_path, steady_bundle):
    # before: rows with '' and ' ' as stream were merged into one stream '' without a word
    v = sine_series(60, seed=1)[:, 0]
    rows = [f"{1700000000 + 60 * j},{s},{v[j]:.5f}" for j in range(60) for s in ("", " ", "a")]
    rec = tmp_path / "blank.csv"
    rec.write_text("timestamp,stream,value\n" + "\n".join(rows) + "\n")
    r = edgernn("replay", rec, "--model", steady_bundle(F=1, warmup=16), "--quiet")
    assert r.returncode == 0, r.stderr
    assert ("edgernn replay: warning: blank.csv: 120 row(s) have an empty stream name (first: line 2); "
            "they are scored together as one stream named ''") in r.stderr


# -- labels files -------------------------------------------------------------------------------

def test_labels_that_are_a_directory_or_missing_name_the_option(tmp_path):
    rec = _long_file(tmp_path / "r.csv", 1, 5)
    r = edgernn("eval", "events", rec, "--labels", tmp_path)  # before: "[Errno 21] Is a directory: '...'"
    assert (r.returncode, r.stderr) == (2, f"edgernn eval events: --labels {tmp_path}: cannot read: Is a directory\n")
    r = edgernn("eval", "events", rec, "--labels", tmp_path / "nope.csv")
    assert r.returncode == 2 and r.stderr.startswith("edgernn eval events: --labels ") and "No such file" in r.stderr


def test_spreadsheet_labels_are_read_or_refused_naming_file_and_line(tmp_path):
    from edgernn.evaluate.events import Incident, read_labels

    want = [Incident("s2", 1700021000.0, 1700021100.0, "bearing")]
    bom = tmp_path / "bom.csv"  # Excel's "CSV UTF-8": before, line 1's header was taken as an incident
    bom.write_bytes(b"\xef\xbb\xbfstream,start,end,label\r\ns2,1700021000,1700021100,bearing\r\n")
    assert read_labels(bom) == want
    semi = tmp_path / "semi.csv"  # a ';' export: before "semi.csv:1: expected stream,start,end[,label]"
    semi.write_text("stream;start;end;label\ns2;1700021000;1700021100;bearing\n")
    assert read_labels(semi) == want
    after_comment = tmp_path / "c.csv"  # a header after a comment line: before "'start' is not a timestamp"
    after_comment.write_text("# incidents of March\nstream,start,end,label\ns2,1700021000,1700021100,bearing\n")
    assert read_labels(after_comment) == want
    cp = tmp_path / "cp.csv"  # before: "'utf-8' codec can't decode byte 0xfc in position 61: invalid start byte"
    cp.write_bytes(b"stream,start,end,label\ns2,1700021000,1700021100,L\xfcfter\n")
    with pytest.raises(ValueError, match=r"cp\.csv:2: not UTF-8 text \(byte 0xfc\); save the labels as 'CSV UTF-8'"):
        read_labels(cp)
    quote = tmp_path / "q.csv"  # a stray quote: the line where the row starts
    quote.write_text('stream,start,end\ns2,"1700021000\n')
    with pytest.raises(ValueError, match=r"q\.csv:2: expected stream,start,end"):
        read_labels(quote)


# -- plots --------------------------------------------------------------------------------------

def _replayed(path, bundle):
    from edgernn.bundle import load_bundle
    from edgernn.detector import Detector
    from edgernn.recording import read_recording
    from edgernn.replay import replay

    rec = read_recording(path, ("value",))
    return rec, replay(Detector(load_bundle(bundle)), rec, progress=False)


@needs_matplotlib
def test_plot_of_many_streams_draws_those_with_alerts_and_says_which(tmp_path, steady_bundle, drawn):
    # before: the first 4 streams in file order, alerts on the others not in the figure, and nothing
    # said that 46 streams were left out
    from edgernn.plot import plot_replay

    rec, out = _replayed(_long_file(tmp_path / "fifty.csv", 50, 60), steady_bundle(F=1, warmup=16))
    row = {s: i for i, s in reversed(list(enumerate(rec.streams)))}  # a row of each stream
    out.events = [SimpleNamespace(kind=k, position=row[s]) for k, s in
                  [("raised", "s41"), ("raised", "s17"), ("cleared", "s2"), ("raised", "s17")]]
    note = plot_replay(tmp_path / "p.png", rec, out)
    assert note == "4 of 50 streams drawn: the 2 with the most alerts, then the first ones"
    names = [ax.get_ylabel().split("\n")[0] for ax in drawn[0].axes if "\n" in ax.get_ylabel()]
    assert names == ["s0", "s1", "s17", "s41"]
    assert note in drawn[0]._suptitle.get_text()
    out.events = []
    assert plot_replay(tmp_path / "q.png", rec, out) == "4 of 50 streams drawn: the first ones in the file; none raised an alert"


@needs_matplotlib
def test_plot_leaves_the_warm_up_blank_and_shows_a_lone_reading(tmp_path, steady_bundle, drawn):
    # before: the warm-up's readings (not scored: likelihood 0) were drawn as surprise 0, "all normal",
    # and "no reading scored" was missing; one reading was an invisible line on an axis of 4 years
    from edgernn.plot import plot_replay

    warm = tmp_path / "warm.csv"
    warm.write_text("timestamp,value\n" + "".join(f"{1700000000 + 60 * i},{np.sin(i)}\n" for i in range(10)))
    rec, out = _replayed(warm, steady_bundle(F=1, warmup=16))
    plot_replay(tmp_path / "w.png", rec, out)
    surprise_ax = drawn[0].axes[1]
    assert np.isnan(surprise_ax.lines[0].get_ydata()).all()
    assert "no reading scored" in [t.get_text() for t in surprise_ax.texts]

    one = tmp_path / "one.csv"
    one.write_text("timestamp,value\n2024-01-01T00:00:00Z,1.5\n")
    rec, out = _replayed(one, steady_bundle(F=1, warmup=16))
    plot_replay(tmp_path / "one.png", rec, out)
    values_ax = drawn[1].axes[0]
    lo, hi = values_ax.get_xlim()  # matplotlib date numbers: days
    assert 0 < (hi - lo) * 86400 <= 600
    assert values_ax.lines[0].get_marker() not in (None, "None", "")
