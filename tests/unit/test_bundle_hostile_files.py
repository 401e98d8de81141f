"""Hostile files in a model bundle, through real files and real processes (copies of the shipped
univariate bundle; the shipped files are never touched).

* A zip bomb as weights.npz / golden.npz / representative.npz (re-signed in the manifest, so the
  sha256 check does not catch it first): a few hundred kB on disk whose .npy member inflates to
  512 MiB of zeros. Refused with one line naming the file, exit 2, before np.load allocates the
  array. Was: np.load inflated it all (and load_bundle's float32 copy doubled it: a 4 GB member
  took 8 GB of memory and minutes before the bundle was refused for its weights' names).
* A zip whose directory lists other sizes than its members' .npy headers describe, and a member
  that is not an .npy: one line.
* ``edgernn export`` that fails midway (here: a file size limit, as a full disk or a quota, hit
  while it writes model_data.cc, its last and largest file): the bundle is left exactly as it was
  and still loads. Was: model_data.cc half written (50,000 of 95,640 bytes) with model_data.h and
  the graphs before it replaced, so the bundle no longer loaded ("sha256 mismatch").

The bombs are written in 1 MiB chunks (zipfile's streaming deflate), so the tests themselves
stay small in memory; the memory the refusing process took is its own peak RSS (getrusage),
measured in a fresh process whose baseline is taken after its imports.
"""

from __future__ import annotations

import hashlib
import io
import json
import resource
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgernn.bundle import BundleError, load_bundle, read_npz, register_artifact

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "firmware_models" / "univariate"
BOMB_BYTES = 512 << 20  # what the bomb's member inflates to (its file: about 0.5 MB)
RSS_MARGIN_KB = 200 << 10  # a refusing process may grow by at most this (peak RSS, kB)
MEMBERS = {"weights.npz": None, "golden.npz": "x", "representative.npz": "x"}  # member the bomb replaces

# Runs `edgernn ARGS...` in this fresh process and prints [exit status, peak RSS growth in kB]; the
# baseline is taken once everything the command imports before it reads the bundle is imported.
CHILD = """
import json, resource, sys
import edgernn.bundle, edgernn.cli, edgernn.commands.export, edgernn.export.exporter, edgernn.export.quantize
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    rc = edgernn.cli.main(sys.argv[1:])
except SystemExit as exc:
    rc = exc.code
print(json.dumps([rc, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base]))
"""


@pytest.fixture
def uni(tmp_path) -> Path:
    return Path(shutil.copytree(SHIPPED, tmp_path / "uni"))


def _npy_header(shape: tuple[int, ...], dtype=np.float32) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                               "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _write_bomb(path: Path, bomb_key: str, keep: dict[str, np.ndarray]) -> None:
    """An .npz holding ``keep`` (stored, as np.savez does) and ``bomb_key``: a deflated float32
    array of BOMB_BYTES zeros, streamed in 1 MiB chunks."""
    with zipfile.ZipFile(path, "w") as zf:
        for key, arr in keep.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
            zf.writestr(f"{key}.npy", buf.getvalue())
        info = zipfile.ZipInfo(f"{bomb_key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        chunk = bytes(1 << 20)
        with zf.open(info, "w") as out:
            out.write(_npy_header((BOMB_BYTES // 4,)))
            for _ in range(BOMB_BYTES // len(chunk)):
                out.write(chunk)


def _plant_bomb(bdir: Path, name: str) -> Path:
    """Replace ``name`` in ``bdir`` with a bomb (its other arrays kept) and re-sign it."""
    path = bdir / name
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    bomb_key = MEMBERS[name] or sorted(arrays)[0]
    arrays.pop(bomb_key)
    _write_bomb(path, bomb_key, arrays)
    assert path.stat().st_size < 2 << 20  # a small file ...
    register_artifact(bdir, name)  # ... that passes the sha256 check
    return path


def _run_child(*args: str) -> tuple[int, int, list[str]]:
    proc = subprocess.run([PYTHON, "-c", CHILD, *args], capture_output=True, text=True, cwd=REPO)
    rc, grown_kb = json.loads(proc.stdout.strip().splitlines()[-1])
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("INFO: ")]  # LiteRT's own log line
    return rc, grown_kb, lines


@pytest.mark.parametrize("name, formats", [("weights.npz", "onnx"), ("golden.npz", "onnx"),
                                           ("representative.npz", "tflite-int8")])
def test_zip_bomb_is_refused_before_it_is_inflated(uni, name, formats):
    path = _plant_bomb(uni, name)
    rc, grown_kb, lines = _run_child("export", str(uni), "--formats", formats, "--quiet")
    assert grown_kb < RSS_MARGIN_KB, f"the refusing process grew by {grown_kb:,} kB"
    assert rc == 2 and len(lines) == 1, (rc, lines)
    assert str(path) in lines[0] and "zip bomb" in lines[0], lines[0]


def test_zip_bomb_read_directly_is_one_line(uni):
    path = _plant_bomb(uni, "weights.npz")
    with pytest.raises(BundleError) as info:
        load_bundle(uni)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{path}: cannot read weights: its arrays would take 536,8"), msg


def _lying_npz(path: Path, listed: int) -> None:
    """x.npy: 1000 float32 (header + 4000 bytes) whose central directory says ``listed`` bytes."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ones(1000, np.float32))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x.npy", buf.getvalue())
    raw = bytearray(path.read_bytes())
    at = raw.index(b"PK\x01\x02")  # central directory entry: compressed size at +20, uncompressed at +24
    raw[at + 20 : at + 28] = listed.to_bytes(4, "little") * 2
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("listed", [200, 3000, 5000])
def test_directory_that_lies_about_a_member_size_is_one_line(tmp_path, listed):
    """The listed size bounds what zipfile reads of the member; the .npy header must describe exactly
    that many bytes, so np.load never reads (nor allocates) more than was counted. A listed size above
    what the header describes was loaded before (np.load stops where the header says, before zipfile's
    CRC check); one below it was refused, by zipfile's CRC or np.load's short read."""
    path = tmp_path / "lying.npz"
    _lying_npz(path, listed)
    with pytest.raises(BundleError) as info:
        read_npz(path, ("x",), "the golden rollout")
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{path}: "), msg


def test_member_that_is_not_npy_is_refused(uni):
    """golden.npz with an extra README.txt member: np.load would have handed its raw bytes to anyone
    asking for that key. Now the archive is refused, one line naming the member."""
    golden = uni / "golden.npz"
    with zipfile.ZipFile(golden, "a") as zf:
        zf.writestr("README.txt", b"hello")
    register_artifact(uni, "golden.npz")
    with pytest.raises(BundleError) as info:
        load_bundle(uni).golden()
    msg = str(info.value)
    assert "\n" not in msg and str(golden) in msg and "'README.txt' is not an .npy" in msg, msg


def test_compressed_npz_of_real_arrays_still_loads(uni):
    """A hand-made np.savez_compressed weights.npz (its arrays take more than the file on disk) loads
    as the stored one does: the limit is 64 MiB or 4x the file, never below what real arrays take."""
    before = load_bundle(uni).weights
    np.savez_compressed(uni / "weights.npz", **before)
    register_artifact(uni, "weights.npz")
    after = load_bundle(uni).weights
    assert set(after) == set(before) and all(np.array_equal(after[k], before[k]) for k in before)


def _digests(bdir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(bdir.iterdir()) if p.is_file()}


def _limit_file_size():  # (preexec_fn: runs in the child; Python ignores SIGXFSZ, so a write fails with EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))


def test_export_that_fails_midway_leaves_the_bundle_as_it_was(uni):
    """Every file of a full export is below 50,000 bytes except model_data.cc (95,640), written last:
    under that file size limit the export fails at its last file, after every graph was made."""
    before = _digests(uni)
    entries = sorted(p.name for p in uni.iterdir())
    proc = subprocess.run([PYTHON, "-m", "edgernn", "export", str(uni), "--quiet"], capture_output=True, text=True,
                          cwd=REPO, preexec_fn=_limit_file_size)
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("INFO: ")]
    assert proc.returncode == 2 and len(lines) == 1 and "File too large" in lines[0], (proc.returncode, proc.stderr)
    assert _digests(uni) == before  # no artifact replaced, no manifest rewritten, nothing half written
    assert sorted(p.name for p in uni.iterdir()) == entries  # and no staging directory left behind
    load_bundle(uni)  # loads: every sha256 entry matches its file


def test_export_replaces_and_registers_every_file(uni):
    """A successful export: every file it writes is in place, registered with its sha256, readable
    by others (0644) and no staging directory is left; the bundle loads."""
    from edgernn.export import export_bundle

    report = export_bundle(uni, ["onnx", "tflite"])
    assert report["ok"] and [r["artifact"] for r in report["rows"]] == ["model.onnx", "model.tflite"]
    bundle = load_bundle(uni)
    for name in ("model.onnx", "model.tflite", "manifest.yaml"):
        assert (uni / name).stat().st_mode & 0o777 == 0o644, name
    for name in ("model.onnx", "model.tflite"):
        entry = bundle.manifest["artifacts"][name]
        assert entry["sha256"] == hashlib.sha256((uni / name).read_bytes()).hexdigest()
        assert entry["size_bytes"] == (uni / name).stat().st_size
    assert not [p.name for p in uni.iterdir() if p.name.startswith(".")]
