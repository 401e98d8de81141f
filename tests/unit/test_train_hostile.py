"""`edgernn train` against hostile options and a hostile --out: one line on stderr naming the option or
--out, exit 2, --out left as it was; or a fit that trains on what it says (no NaN NLL, no model left
untrained without a word). Each case was a traceback, a crash, lost files or a silent NaN fit (see the
comments). Cases with a full or mounted file system need `mount -t tmpfs` (root) and skip without it."""

from __future__ import annotations

import importlib.util
import os
import math
import subprocess
import sys

import numpy as np
import pytest
from unit_helpers import REPO

from edgernn.bundle import load_bundle
from edgernn.cli import main

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="training needs torch")
FAST = ["--epochs", "1", "--hidden", "4", "--segment", "128", "--threads", "1"]
T0 = 1_700_000_000


def wave_csv(path, n: int = 600) -> str:
    v = np.sin(np.arange(n) / 10.0) + 0.1 * np.random.default_rng(0).standard_normal(n)
    path.write_text("timestamp,value\n" + "".join(f"{T0 + i},{x:.5f}\n" for i, x in enumerate(v)))
    return str(path)


def train(capsys, *argv) -> tuple[int, str, str]:
    code = main(["train", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def tmpfs(tmp_path):
    """A mounted 1 MB tmpfs (the directory), unmounted afterwards."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _notes(out) -> dict:
    notes = {f"note{i}.txt": f"user notes {i}\n" for i in range(20)}
    for name, text in notes.items():
        (out / name).write_text(text)
    return notes


def test_out_holding_a_mount_point_is_one_line_before_the_fit(tmp_path, tmpfs, capsys):
    # (--out held the user's notes and a mounted folder: the notes moved into the temporary bundle before
    # the mounted folder failed to move (EBUSY), and the clean-up deleted them with it: files lost, and a
    # traceback after the whole fit)
    out = tmpfs.parent
    notes = _notes(out)
    (tmpfs / "data.txt").write_text("important\n")
    code, stdout, err = train(capsys, wave_csv(tmp_path.parent / f"{tmp_path.name}.csv"), "--out", out, *FAST)
    assert (code, err) == (2, f"edgernn train: --out {out}: holds a mount point, {tmpfs}, which cannot be moved into "
                              "the new bundle: give another --out\n")
    assert "epoch" not in stdout
    assert {n: (out / n).read_text() for n in notes} == notes and (tmpfs / "data.txt").read_text() == "important\n"


def test_a_failed_replace_puts_the_previous_directorys_files_back(tmp_path, tmpfs):
    # (the same, met while the bundle is moved into place: the notes already moved were deleted)
    from edgernn.commands.train import _replace

    out, work = tmpfs.parent, tmp_path.parent / f".{tmp_path.name}.partial"
    notes = _notes(out)
    work.mkdir()
    (work / "manifest.yaml").write_text("new\n")
    if [p.name for p in out.iterdir()][0] == "mnt":  # (iterdir's order: a note must move before it fails)
        pytest.skip("the mount point comes first: nothing to lose")
    with pytest.raises(OSError):
        _replace(out, work)
    assert {n: (out / n).read_text() for n in notes} == notes and (out / "mnt").is_mount()
    assert sorted(p.name for p in work.iterdir()) == ["manifest.yaml"]


def test_out_a_mount_point_is_one_line_before_anything_is_read(tmp_path, tmpfs, capsys):
    # (an OSError traceback after the whole fit: --out cannot be renamed)
    code, out, err = train(capsys, wave_csv(tmp_path / "a.csv"), "--out", tmpfs, *FAST)
    assert (code, err) == (2, f"edgernn train: --out {tmpfs}: is a mount point, which cannot be replaced (the bundle "
                              "is built beside --out and moved into place): give a directory inside it\n")
    assert "epoch" not in out
    code, _, err = train(capsys, tmp_path / "a.csv", "--out", tmpfs / "model", *FAST)  # the hint, as printed
    assert code == 0, err
    load_bundle(tmpfs / "model")


def test_a_full_disk_is_one_line_and_leaves_out_as_it_was(tmp_path, tmpfs, capsys):
    # (an OSError traceback, exit 1, for train and for --recalibrate)
    data = wave_csv(tmp_path / "a.csv")
    (tmpfs / "fill").write_bytes(b"\0" * 980_000)
    code, _, err = train(capsys, data, "--out", tmpfs / "m", *FAST)
    assert code == 2 and err == f"edgernn train: --out {tmpfs / 'm'}: cannot write: No space left on device\n", err
    assert sorted(p.name for p in tmpfs.iterdir()) == ["fill"]
    (tmpfs / "fill").unlink()
    assert train(capsys, data, "--out", tmpfs / "m", *FAST)[0] == 0
    before = {p.name: p.read_bytes() for p in (tmpfs / "m").iterdir()}
    (tmpfs / "fill").write_bytes(b"\0" * (1_048_576 - 4096 * (len(before) + 4) - sum(map(len, before.values()))))
    code, _, err = train(capsys, data, "--out", tmpfs / "m", "--recalibrate")
    assert code == 2 and err == f"edgernn train: --out {tmpfs / 'm'}: cannot write: No space left on device\n", err
    assert {p.name: p.read_bytes() for p in (tmpfs / "m").iterdir()} == before


def test_threads_beyond_any_machine_are_one_line(tmp_path):
    # (--threads 100000: the process died of a segfault, exit -11, after reading the data)
    r = subprocess.run([sys.executable, "-m", "edgernn", "train", wave_csv(tmp_path / "a.csv"), "--out",
                        tmp_path / "m", *FAST, "--threads", "100000"], capture_output=True, text=True, cwd=REPO,
                       timeout=120)
    assert (r.returncode, r.stderr) == (2, "edgernn train: --threads must be at most 1024 (got 100000)\n")
    assert not (tmp_path / "m").exists()


def test_an_empty_features_list_is_one_line(tmp_path, capsys):
    # (--features "" (an unset shell variable) trained on every column without a word)
    code, out, err = train(capsys, wave_csv(tmp_path / "a.csv"), "--out", tmp_path / "m", *FAST, "--features", "")
    assert (code, err) == (2, "edgernn train: --features '': an empty feature name\n")
    assert "epoch" not in out


def test_a_fit_diverged_by_weight_decay_names_weight_decay(tmp_path, capsys):
    # (it said only "use a smaller --lr": at --weight-decay 1e300 that meant an --lr below 1e-300)
    code, _, err = train(capsys, wave_csv(tmp_path / "a.csv"), "--out", tmp_path / "m", *FAST,
                         "--weight-decay", "1e300")
    assert (code, err) == (2, "edgernn train: the fit diverged (weights NaN or inf at --lr 0.003, --weight-decay "
                              "1e+300): use a smaller --lr or --weight-decay\n")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("extra", [["--chunk", "4"], ["--chunk", "8"], ["--segment", "5"], ["--segment", "2"]])
def test_chunks_and_segments_within_the_burn_in_still_fit(tmp_path, capsys, extra):
    # (a chunk or a segment no longer than the 8-reading burn-in: the loss of an empty slice was NaN, so the
    # train and validation NLL were NaN, early stopping never saw an improvement (best epoch 0) and for
    # --segment < 10 nothing was trained at all; exit 0 and a bundle recording NaN NLLs)
    code, out, err = train(capsys, wave_csv(tmp_path / "a.csv"), "--out", tmp_path / "m", *FAST, "--epochs", "2",
                           *extra)
    assert code == 0, err
    prov = load_bundle(tmp_path / "m").manifest["provenance"]
    assert math.isfinite(prov["final_train_nll"]) and math.isfinite(prov["final_val_nll"]), prov
    assert prov["best_epoch"] >= 1 and " nan " not in out


def test_a_short_series_does_not_leave_the_model_untrained(tmp_path, capsys):
    # (one 55-row file beside a long one, --warmup 30: its 8 training readings set every training
    # segment's length to 8, wholly inside the burn-in: train NLL NaN, the model never trained, exit 0)
    short = tmp_path / "short.csv"
    short.write_text("timestamp,value\n" + "".join(f"{T0 + i},{np.sin(i / 5):.4f}\n" for i in range(55)))
    code, out, err = train(capsys, wave_csv(tmp_path / "a.csv", 1500), short, "--out", tmp_path / "m", *FAST,
                           "--warmup", "30")
    assert code == 0, err
    prov = load_bundle(tmp_path / "m").manifest["provenance"]
    assert math.isfinite(prov["final_train_nll"]) and prov["best_epoch"] == 1, prov


def test_every_feature_a_counter_is_said_to_be_modelled_anyway(tmp_path, capsys):
    # (the default --counters leave-out kept a lone counter without a word, and the summary said
    # "raw value modelled (--counters model)", an option that was not given)
    data = tmp_path / "c.csv"
    data.write_text("timestamp,value\n" + "".join(f"{T0 + i},{i // 3}\n" for i in range(800)))
    code, out, err = train(capsys, data, "--out", tmp_path / "m", *FAST)
    assert code == 0, err
    says = "every feature is a counter (value): modelled anyway, as with --counters model"
    assert f"WARNING: {says}" in out
    assert any(says in w for w in load_bundle(tmp_path / "m").manifest["provenance"]["warnings"])


def test_out_dot_names_the_model_after_the_directory(tmp_path):
    # (--out . (or --out "", which argparse makes the same path): the model's name was "", not "the --out
    # directory name" the help promises)
    here = tmp_path / "pump_model"
    here.mkdir()
    r = subprocess.run([sys.executable, "-m", "edgernn", "train", wave_csv(tmp_path / "a.csv"), "--out", ".", *FAST],
                       capture_output=True, text=True, cwd=here, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    assert load_bundle(here).manifest["name"] == "pump_model"


@pytest.mark.parametrize("option, value", [("--description", "first line\nsecond: line"), ("--name", "pump\n# 2"),
                                           ("--version", "1.0\r")])
def test_name_version_description_must_be_one_line(tmp_path, capsys, option, value):
    # (a newline was written as is: the model card's title and `edgernn inspect` broke across lines)
    code, out, err = train(capsys, wave_csv(tmp_path / "a.csv"), "--out", tmp_path / "m", *FAST, option, value)
    assert (code, err) == (2, f"edgernn train: {option} {value!r}: must be one line of text (no newline or control "
                              "character)\n")
    assert "epoch" not in out and not (tmp_path / "m").exists()
