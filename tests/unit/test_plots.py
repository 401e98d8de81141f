"""Plots: every point inside the axes, the band the text talks about, dates on the x axis, and no
error on files where nothing could be scored. The figures are inspected as matplotlib drew them."""

from __future__ import annotations

import numpy as np
import pytest
from unit_helpers import sine_series

pytest.importorskip("matplotlib")

from edgernn.bundle import load_bundle  # noqa: E402
from edgernn.detector import Detector  # noqa: E402
from edgernn.evaluate.plots import plot_file  # noqa: E402
from edgernn.plot import finite_limits, plot_replay, time_axis  # noqa: E402
from edgernn.readings import BAND_SIGMAS  # noqa: E402
from edgernn.recording import read_recording, write_recording  # noqa: E402
from edgernn.replay import replay  # noqa: E402


def _replayed(tmp_path, steady_bundle, values):
    write_recording(tmp_path / "s.csv", values, start=1706702400.0, step=60.0)
    rec = read_recording(tmp_path / "s.csv", ("value",))
    det = Detector(load_bundle(steady_bundle(F=1, warmup=16)))
    return rec, replay(det, rec, progress=False)


def test_replay_plot_shows_the_largest_spike_the_stated_band_and_dates(tmp_path, steady_bundle, drawn):
    v = sine_series(300, seed=2)[:, 0]
    v[200] += 50 * v.std()  # far outside any percentile cut
    rec, out = _replayed(tmp_path, steady_bundle, v)
    plot_replay(tmp_path / "p.png", rec, out)
    values_ax, surprise_ax = drawn[0].axes[:2]
    lo, hi = values_ax.get_ylim()
    assert lo <= v.min() and v.max() <= hi
    labels = [t.get_text() for t in values_ax.get_legend().get_texts()]
    assert f"expected ±{BAND_SIGMAS:g}σ" in labels and not any("3σ" in x for x in labels)
    assert type(values_ax.xaxis.get_major_formatter()).__name__ == "ConciseDateFormatter"
    assert "UTC" in surprise_ax.get_xlabel()
    assert any("surprise" in t.get_text() for t in surprise_ax.get_legend().get_texts())


def test_replay_plot_of_nothing_scored_is_a_figure_not_an_error(tmp_path, steady_bundle, drawn):
    rec, out = _replayed(tmp_path, steady_bundle, np.full(40, np.nan))
    plot_replay(tmp_path / "nan.png", rec, out)
    texts = [t.get_text() for ax in drawn[0].axes for t in ax.texts]
    assert "no numeric values" in texts and "no reading scored" in texts
    assert (tmp_path / "nan.png").stat().st_size > 1000


def test_eval_plot_survives_nan_and_inf(tmp_path, drawn):
    n = 200
    ts = 1.7e9 + 60.0 * np.arange(n)
    values = np.sin(np.arange(n) / 9.0)[:, None] * np.ones((1, 2))
    values[5, 0], values[6:9, 1] = np.inf, np.nan
    lik = np.full(n, np.nan)
    plot_file(tmp_path / "e.png", "e", ts, values, ("a", "b"), lik, 0.9999, np.zeros(n, bool), np.zeros(n, bool),
              np.zeros(n, bool))
    assert (tmp_path / "e.png").stat().st_size > 1000
    assert type(drawn[0].axes[1].xaxis.get_major_formatter()).__name__ == "ConciseDateFormatter"


def test_helpers():
    assert finite_limits([np.nan, np.inf]) is None
    assert np.isfinite(finite_limits([1.7e308, -1.7e308])).all()  # matplotlib refuses infinite limits
    lo, hi = finite_limits([1.0, np.nan, 5.0], [9.0])
    assert lo < 1.0 and hi > 9.0
    assert time_axis([1706702400.0]).dtype.kind == "M" and time_axis([0.0, 10.0]).dtype.kind == "f"


def test_values_near_the_float_limit_are_drawn_at_its_edge(tmp_path, steady_bundle, drawn):
    rec, out = _replayed(tmp_path, steady_bundle, sine_series(60, seed=1)[:, 0])
    rec.x[30:33, 0] = 1e308, -1e308, 1e155  # a broken sensor's readings (drawn, not scored, here)
    out.sigma[40, 0] = 1e300
    plot_replay(tmp_path / "big.png", rec, out)
    lo, hi = drawn[0].axes[0].get_ylim()
    assert np.isfinite([lo, hi]).all() and lo < -1e149 and hi > 1e149
