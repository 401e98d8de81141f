"""`edgernn train` at the edges of --out: an interrupt while the new bundle moves into place, an OSError of the run that is not about --out, and stdout's
watch (cli._WatchedStdout) for bytes and writelines. Each case was a lost or stale directory, a wrong
message or a traceback before (see the comments).

The moment of an interrupt between two renames cannot be hit from outside (a signal sent by
the test lands anywhere in a run of seconds), so the real process sends the real signal to itself from
a wrapper of os.rename (a script, as in tests/unit/test_cli_bad_input.py), or the test calls _staged
in-process on a real directory with the failure injected into that rename."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_CSV = REPO / "edgernn" / "data" / "demo_sensor.csv"  # timestamp,value; 5,000 rows
SHIPPED = REPO / "firmware_models" / "univariate"
FAST = ["--epochs", "1", "--hidden", "4", "--segment", "128", "--threads", "1"]
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="training needs torch")
needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")

# the real CLI, with a signal sent by the process to itself before or after the rename of --out to its
# ".old" sibling ("1") or of the new bundle into --out's place ("2")
SIGNAL_AT_RENAME = """
import os, signal, sys
sig, when = getattr(signal, sys.argv.pop(1)), sys.argv.pop(1)
rename = os.rename

def signalling_rename(src, dst):
    step = "1" if str(dst).endswith(".old") else "2" if str(src).endswith(".partial") else None
    if when == f"before {step}":
        os.kill(os.getpid(), sig)
    rename(src, dst)
    if when == f"after {step}":
        os.kill(os.getpid(), sig)

os.rename = signalling_rename
from edgernn.cli import main
sys.exit(main(sys.argv[1:]))
"""


def edgernn(*args, script: str | None = None):
    head = [sys.executable, "-c", script] if script else [sys.executable, "-m", "edgernn"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([*head, *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=300, env=env)


def files(d: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if p.is_file()}


@pytest.fixture
def previous(tmp_path) -> Path:
    """tmp_path/m: the shipped bundle and a user's notes."""
    out = tmp_path / "m"
    shutil.copytree(SHIPPED, out)
    (out / "notes.txt").write_text("mine\n")
    return out


# -- an interrupt while the bundle moves into place ----------------------------------------------

def _new_bundle(work: Path) -> None:
    for name in ("manifest.yaml", "weights.npz", "README.md"):
        (work / name).write_text(f"new {name}\n")


@pytest.mark.parametrize("moment", ["at the second rename", "after the second rename", "moving the notes"])
def test_an_interrupt_while_replacing_leaves_the_previous_bundle_and_nothing_beside_it(previous, monkeypatch, moment):
    # (after the second rename: the clean-up looked for the moved files in the renamed work directory, so a
    # FileNotFoundError replaced the KeyboardInterrupt ("--out: cannot write: No such file or directory"),
    # and the previous bundle was left in a ".old" directory beside --out, never removed)
    from edgernn.commands.train import _staged

    before = files(previous)
    rename, replace = os.rename, os.replace

    def interrupted_rename(src, dst):
        if str(src).endswith(".partial") and moment == "at the second rename":
            raise KeyboardInterrupt
        rename(src, dst)
        if str(src).endswith(".partial") and moment == "after the second rename":
            raise KeyboardInterrupt

    def interrupted_replace(src, dst):
        if Path(src).name == "notes.txt" and moment == "moving the notes":
            raise KeyboardInterrupt
        replace(src, dst)

    monkeypatch.setattr(os, "rename", interrupted_rename)
    monkeypatch.setattr(os, "replace", interrupted_replace)
    with pytest.raises(KeyboardInterrupt):
        with _staged(previous) as work:
            _new_bundle(work)
    monkeypatch.undo()
    assert files(previous) == before
    assert [p.name for p in previous.parent.iterdir()] == ["m"]


@needs_torch
@pytest.mark.parametrize("when", ["after 1", "after 2"])
def test_ctrl_c_while_the_bundle_moves_into_place_leaves_a_whole_bundle_and_nothing_beside_it(previous, when):
    # (Ctrl-C just after the new bundle took --out's place: exit 2 "--out ...: cannot write: No such file or
    # directory" and the previous bundle left beside it in ".m.XXXXXXXX.old". Between the renames the
    # previous bundle was put back, which was right too; now Ctrl-C waits for the move to end, then stops)
    from edgernn.bundle import load_bundle

    r = edgernn("SIGINT", when, "train", DEMO_CSV, "--out", previous, *FAST, script=SIGNAL_AT_RENAME)
    assert (r.returncode, r.stderr) == (130, "edgernn train: interrupted\n"), r.stderr[-2000:]
    assert load_bundle(previous).hidden == 4 and (previous / "notes.txt").read_text() == "mine\n"
    assert [p.name for p in previous.parent.iterdir()] == ["m"]


# -- an OSError of the run that is not about --out ------------------------------------------------

VANISHING_DATA = """
import os, sys
import edgernn.train.fit as fit_module

fit = fit_module.fit

def fit_then_remove_the_data(*args, **kwargs):
    result = fit(*args, **kwargs)
    os.remove(sys.argv[2])  # the data file: removed while the run goes on
    return result

fit_module.fit = fit_then_remove_the_data
from edgernn.cli import main
sys.exit(main(sys.argv[1:]))
"""

FIT_OSERROR = """
import errno, sys
import edgernn.train.fit as fit_module

def fit(*args, **kwargs):
    raise OSError(errno.ENOMEM, "Cannot allocate memory")  # as torch may, with no file name

fit_module.fit = fit
from edgernn.cli import main
sys.exit(main(sys.argv[1:]))
"""


@needs_torch
def test_a_data_file_removed_while_training_is_named_not_out(tmp_path):
    # (it said "--out ...: cannot write: No such file or directory": the data file is read again after the
    # fit, and any OSError of the run was reported as --out's)
    data = tmp_path / "a.csv"
    shutil.copy(DEMO_CSV, data)
    r = edgernn("train", data, "--out", tmp_path / "m", *FAST, script=VANISHING_DATA)
    assert (r.returncode, r.stderr) == (2, f"edgernn train: {data}: cannot read: No such file or directory (removed "
                                           "or changed while training): train again\n"), r.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []


@needs_torch
def test_an_oserror_of_the_fit_is_not_called_an_out_failure(tmp_path, previous):
    # (it said "--out ...: cannot write: Cannot allocate memory")
    before = files(previous)
    r = edgernn("train", DEMO_CSV, "--out", previous, *FAST, script=FIT_OSERROR)
    assert (r.returncode, r.stderr) == (2, "edgernn train: training failed: Cannot allocate memory (an error of the "
                                           f"fit, not of writing --out {previous})\n"), r.stderr[-2000:]
    assert files(previous) == before and [p.name for p in previous.parent.iterdir()] == ["m"]


def test_an_oserror_naming_out_or_its_staging_directory_is_out(tmp_path, capsys):
    from edgernn.commands.train import _out_write_failed

    out = tmp_path / "m"
    for name in (out, out / "weights.npz", tmp_path / ".m.123.abcdefgh.partial" / "golden.npz", tmp_path):
        assert _out_write_failed(out, OSError(13, "Permission denied", str(name))) == 2
        assert capsys.readouterr().err == f"edgernn train: --out {out}: cannot write: Permission denied\n"
    assert _out_write_failed(out, OSError(28, "No space left on device")) == 2  # (a write: no file name)
    assert capsys.readouterr().err == f"edgernn train: --out {out}: cannot write: No space left on device\n"
    assert _out_write_failed(out, OSError(13, "Permission denied", str(tmp_path / "m2" / "x"))) == 2  # (not --out)
    assert capsys.readouterr().err == (f"edgernn train: {tmp_path / 'm2' / 'x'}: Permission denied (while training: "
                                       f"not an error of writing --out {out})\n")


# -- stdout's watch: bytes and writelines -------------------------------------------------------

BYTES_TO_STDOUT = """
import sys
import edgernn.commands.inspect as command
how = sys.argv.pop(1)

def run(args):  # a command that writes its output as bytes, or with writelines
    if how == "buffer":
        sys.stdout.buffer.write(b"x" * 100_000)
    else:
        sys.stdout.writelines(["x" * 100_000, "\\n"])
    return 0

command.run = run
from edgernn.cli import main
sys.exit(main(sys.argv[1:]))
"""


@needs_dev_full
@pytest.mark.parametrize("how", ["buffer", "writelines"])
def test_bytes_or_writelines_to_a_full_stdout_are_one_line(how):
    # (a traceback, exit 1: sys.stdout.buffer and writelines went around the watch)
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-c", BYTES_TO_STDOUT, how, "inspect", str(SHIPPED)], stdout=full,
                           stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
    assert (r.returncode, r.stderr) == (2, "edgernn inspect: cannot write to standard output: No space left on "
                                           "device\n")


@needs_dev_full
def test_the_watched_buffer_and_writelines_note_a_failed_write():
    import io

    from edgernn.cli import _WatchedStdout

    with open("/dev/full", "wb", buffering=0) as raw:
        text = io.TextIOWrapper(raw, write_through=True)  # (nothing held back to fail again at close)
        for act in (lambda w: w.buffer.write(b"x"), lambda w: w.buffer.writelines([b"x"]),
                    lambda w: w.writelines(["x"])):
            w = _WatchedStdout(text)
            assert not w.failed
            with pytest.raises(OSError):
                act(w)
            assert w.failed
        w = _WatchedStdout(text)
        assert w.buffer is w.buffer and w.buffer.fileno() == raw.fileno()
        text.detach()
    assert not hasattr(_WatchedStdout(io.StringIO()), "buffer")  # (a stream with no buffer: none, as before)
