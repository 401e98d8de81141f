"""The alert state machine on hand-written sequences (one stream; one call per reading).

Each reading is written as a character:  '#' over the raise threshold,  '+' above the clear level
but under the threshold,  '.' normal.  Scores: '#' -> 10, '+' -> 1, '.' -> 0.1 unless given.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgernn import kernel
from edgernn.alerts import CLEARED, NEW_NORMAL, NONE, RAISED, UPDATE, AlertSettings
from edgernn.layout import Layout

CODE = {NONE: "", RAISED: "R", UPDATE: "U", CLEARED: "C", NEW_NORMAL: "N"}


def params(cfg: AlertSettings, L: Layout):
    """kernel.Params with the slab offsets and the alert machine's settings (all it reads)."""
    values = {name: max(at, 0) for name, at in L.offsets.items()}
    values.update(a_k=cfg.k, a_mask=(1 << cfg.n) - 1, a_clear_after=cfg.clear_after, a_min_duration=cfg.min_duration,
                  a_cooldown=cfg.cooldown, a_update_factor=cfg.update_factor, a_update_gap=cfg.update_gap,
                  a_max_duration=cfg.max_duration, relearn_after=256.0)
    return kernel.Params(values, [1.0], [{"xs_list": [0.0], "ls_list": [0.0]}])


def run(seq: str, cfg: AlertSettings, scores=None):
    """-> (event string per reading: R/U/C/'', active flag per reading, the final slab rows
    {column: values} (Layout.named), the layout)."""
    L = Layout(1)
    p = params(cfg, L)
    row, row4 = np.zeros((1, L.width)), np.zeros((1, L.width4), np.float32)  # the float64 and float32 slabs
    events, active = [], []
    for t, ch in enumerate(seq):
        score = scores[t] if scores is not None else {"#": 10.0, "+": 1.0, ".": 0.1}[ch]
        code = kernel.alert(p, row[0], row4[0], ch == "#", ch in "#+", score, float(t))
        events.append(CODE[int(code)])
        active.append(bool(row4[0, L.duration] > 0))
    return events, active, L.named(row[0], row4[0]), L


def where(events, kind):
    return [t for t, e in enumerate(events) if e == kind]


def test_single_over_raises_by_default():
    ev, act, _, _ = run("...#....", AlertSettings())
    assert where(ev, "R") == [3]
    assert act[3:] == [True] * 5 and act[:3] == [False] * 3


def test_k_of_n():
    cfg = AlertSettings(k=2, n=3, clear_after=100)
    ev, _, _, _ = run("#..#..#..", cfg)  # never two within three readings
    assert "R" not in ev
    ev, _, _, _ = run("#..#.#...", cfg)  # readings 3 and 5 are within a window of three
    assert where(ev, "R") == [5]
    ev, _, _, _ = run("..##.....", AlertSettings(k=2, n=2, clear_after=100))
    assert where(ev, "R") == [3]
    ev, _, _, _ = run("#.#.#.#.#", AlertSettings(k=3, n=4, clear_after=100))
    assert "R" not in ev


def test_clear_after_consecutive_normal_readings():
    cfg = AlertSettings(clear_after=4, cooldown=0)
    ev, act, _, _ = run("#......", cfg)
    assert where(ev, "R") == [0] and where(ev, "C") == [4]
    assert act == [True] * 4 + [False] * 3


def test_hysteresis_readings_above_the_clear_level_keep_the_alert():
    cfg = AlertSettings(clear_after=3, cooldown=0)
    # under the threshold but above the clear level: no clear however long it lasts
    ev, act, _, _ = run("#" + "+" * 20, cfg)
    assert "C" not in ev and all(act)
    # a '+' in the middle of a normal run restarts the count
    ev, _, _, _ = run("#..+..+...", cfg)
    assert where(ev, "C") == [9]


def test_min_duration_delays_the_clear():
    ev, _, _, _ = run("#" + "." * 20, AlertSettings(clear_after=1, min_duration=6, cooldown=0))
    (clear,) = where(ev, "C")
    ev1, _, _, _ = run("#" + "." * 20, AlertSettings(clear_after=1, min_duration=1, cooldown=0))
    assert where(ev1, "C") == [1]
    assert clear >= 5 and clear > where(ev1, "C")[0]


@pytest.mark.parametrize("m", [2, 6])
def test_min_duration_is_the_number_of_active_readings(m):
    _, act, _, _ = run("#" + "." * 20, AlertSettings(clear_after=1, min_duration=m, cooldown=0))
    assert sum(act) >= m


def test_cooldown_blocks_a_new_raise():
    cfg = AlertSettings(clear_after=2, cooldown=5)
    #        0123456789...
    seq = "#..###" + "." * 3 + "#" + "." * 5
    ev, _, _, _ = run(seq, cfg)
    # cleared at 2; readings 3..7 are the cooldown; the '#' at 9 raises again
    assert where(ev, "C")[0] == 2
    assert where(ev, "R") == [0, 9]


def test_no_cooldown_allows_an_immediate_raise():
    ev, _, _, _ = run("#..#", AlertSettings(clear_after=2, cooldown=0))
    assert where(ev, "R") == [0, 3]


def test_update_on_escalation_respects_update_gap():
    cfg = AlertSettings(clear_after=100, update_factor=4.0, update_gap=3)
    scores = [10, 100, 100, 100, 100, 300, 300, 500, 500, 500, 10_000]
    ev, _, _, _ = run("#" * len(scores), cfg, scores=[float(s) for s in scores])
    # 100 > 4 x 10 but only at reading 3 is it update_gap readings after the raise;
    # 300 is not > 4 x 100; 500 is, three readings after the last event; then 10_000
    assert where(ev, "R") == [0]
    assert where(ev, "U") == [3, 7, 10]


def test_no_update_without_escalation():
    ev, _, _, _ = run("#" * 30, AlertSettings(update_gap=1), scores=[10.0] * 30)
    assert "U" not in ev and where(ev, "R") == [0]


def test_sequence_numbers_and_start_time():
    cfg = AlertSettings(clear_after=2, cooldown=0)
    ev, _, row, L = run("#...#...#..", cfg)
    assert where(ev, "R") == [0, 4, 8]
    assert row["seq"][0] == 3 and row["start_ts"][0] == 8.0


def test_rows_are_independent():
    cfg = AlertSettings(clear_after=2, cooldown=0)
    L = Layout(1)
    p = params(cfg, L)
    rows, rows4 = np.zeros((3, L.width)), np.zeros((3, L.width4), np.float32)
    seqs = ["#...#", ".#...", "....."]
    got = [[], [], []]
    for t in range(5):
        for i in range(3):
            over = seqs[i][t] == "#"
            got[i].append(CODE[kernel.alert(p, rows[i], rows4[i], over, over, 10.0 if over else 0.1, float(t))])
    for i, s in enumerate(seqs):
        assert got[i] == run(s, cfg)[0]


@pytest.mark.parametrize("kw", [dict(k=2, n=1), dict(k=0, n=1), dict(n=17, k=1), dict(cooldown=-1),
                                dict(update_factor=1.0), dict(clear_factor=0.5)])
def test_invalid_settings_are_refused(kw):
    with pytest.raises(ValueError):
        AlertSettings(**kw)


def row4_after(cfg):
    """The float32 row after 6 over readings (raised at 0, new normal at 5)."""
    L = Layout(1)
    p = params(cfg, L)
    row, row4 = np.zeros(L.width), np.zeros(L.width4, np.float32)
    for t in range(6):
        kernel.alert(p, row, row4, True, True, 10.0, float(t))
    return row4


def test_max_duration_clears_a_lasting_alert_as_a_new_normal():
    """An alert that lasts max_duration readings clears (code NEW_NORMAL) even while still over,
    and the stream's learning is switched back on (held = relearn_after); 0 is off."""
    cfg = AlertSettings(clear_after=100, cooldown=3, max_duration=5)
    ev, act, row, L = run("#" * 12, cfg)
    assert where(ev, "R") == [0, 9] and where(ev, "N") == [5]  # still over after the cooldown: raised again
    assert act[:5] == [True] * 5 and act[5:9] == [False] * 4  # cleared, then cooldown 3 readings
    assert row4_after(cfg)[L.held] == 256.0  # learning resumes: the new normal is learned
    assert "N" not in run("#" * 12, AlertSettings(clear_after=100, cooldown=3))[0]
