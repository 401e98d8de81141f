"""Packaging and deployment: shipped models found by name from anywhere, the built package carries
them, the example config and the unit as shipped. Real files, real subprocesses, no network."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from edgernn.config import ConfigError, parse_config
from edgernn.models import ModelNotFound, example_config, find_model, shipped_models

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ("skab-pump", "univariate")
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1", "EDGERNN_PURE_PYTHON": "1"}


def _edgernn(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgernn", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=120)


# -- models by name ---------------------------------------------------------------------------------
def test_every_shipped_model_is_found_by_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert tuple(shipped_models()) == SHIPPED
    for name in SHIPPED:
        found = find_model(name)
        assert found.name == name and (found / "manifest.yaml").is_file()
        assert find_model(f"firmware_models/{name}") == found  # the paths the docs print


def test_a_path_wins_over_a_shipped_name(tmp_path, monkeypatch):
    mine = tmp_path / "univariate"  # a local bundle called like a shipped one
    shutil.copytree(REPO / "firmware_models" / "univariate", mine)
    monkeypatch.chdir(tmp_path)
    assert find_model("univariate") == mine.resolve()
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    assert find_model("univariate", tmp_path) == mine.resolve()  # relative to a base (the config's folder)
    assert find_model(str(mine)) == mine  # absolute


def test_an_unknown_model_names_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for bad in ("univariat", "firmware_models/nope", str(tmp_path / "missing"), "models/univariate"):
        with pytest.raises(ModelNotFound, match="shipped models, usable by name: skab-pump, univariate"):
            find_model(bad)


def test_config_takes_a_model_by_name_and_points_at_the_line_of_a_bad_one(tmp_path):
    text = "pipelines:\n  - name: p\n    subscribe: a/+\n    model: {}\n"
    cfg = parse_config(text.format("skab-pump"), "edgernn.yaml", base=tmp_path)
    assert Path(cfg.pipelines[0].model) == shipped_models()["skab-pump"]
    with pytest.raises(ConfigError) as e:
        parse_config(text.format("skab_pump"), "edgernn.yaml", base=tmp_path)
    assert "edgernn.yaml:4" in str(e.value) and "skab-pump, univariate" in str(e.value)


def test_cli_unknown_model_is_one_line_and_a_name_works(tmp_path):
    r = _edgernn("inspect", "nope", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "univariate" in r.stderr, r.stderr
    r = _edgernn("inspect", "skab-pump", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("skab-pump "), r.stderr


def test_the_example_config_and_the_demo_hint_work_as_printed(tmp_path):
    assert Path(example_config()).is_file()  # the checkout's deploy/ or, installed, the package's copy
    r = _edgernn("check-config", str(Path(example_config()).resolve()), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert str(shipped_models()["univariate"]) in r.stdout


# -- what the build puts in the package and the sdist ------------------------------------------------
needs_checkout = pytest.mark.skipif(not (REPO / "setup.py").is_file(), reason="runs on an installed package")


def _setup_py(tmp_path, *args) -> None:
    subprocess.run([sys.executable, "setup.py", "-q", *args], cwd=REPO, env=ENV, check=True,
                   capture_output=True, timeout=300)


@needs_checkout
def test_build_py_copies_every_shipped_bundle_and_the_example_into_the_package(tmp_path):
    _setup_py(tmp_path, "build_py", "--build-lib", str(tmp_path))
    models = tmp_path / "edgernn" / "models"
    for name in SHIPPED:
        source = REPO / "firmware_models" / name
        copied = sorted(p.relative_to(models / name) for p in (models / name).rglob("*"))
        assert copied == sorted(p.relative_to(source) for p in source.rglob("*"))
        assert (models / name / "weights.npz").read_bytes() == (source / "weights.npz").read_bytes()
    assert (models / "edgernn.example.yaml").is_file() and (models / "__init__.py").is_file()


@needs_checkout
def test_without_a_compiler_the_build_still_succeeds_as_plain_python(tmp_path):
    """A Pi without build-essential: the kernel's compile fails, the install must not."""
    pytest.importorskip("Cython", reason="Cython is a build requirement (pip's build environment), not in this venv")
    env = {**ENV, "CC": "/bin/false"}
    env.pop("EDGERNN_PURE_PYTHON")
    r = subprocess.run([sys.executable, "setup.py", "build_ext", "-b", str(tmp_path / "lib"), "-t", str(tmp_path / "tmp")],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "edgernn.kernel" in r.stderr and not list((tmp_path / "lib").rglob("*.so"))


@needs_checkout
def test_the_sdist_carries_the_bundles_and_no_build_leftovers(tmp_path):
    _setup_py(tmp_path, "sdist", "-d", str(tmp_path))
    (sdist,) = tmp_path.glob("edgernn-*.tar.gz")
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for name in SHIPPED:
        assert f"firmware_models/{name}/manifest.yaml" in names and f"firmware_models/{name}/model.onnx" in names
    assert {"setup.py", "pyproject.toml", "MANIFEST.in", "deploy/edgernn.example.yaml",
            "edgernn/data/demo_sensor.csv", "edgernn/__init__.py"} <= names
    assert not [n for n in names if n.endswith((".so", ".pyc"))]
    shutil.rmtree(REPO / "edgernn.egg-info", ignore_errors=True)


# -- the unit and install.sh as shipped --------------------------------------------------------------
def _service() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str
    unit.read_string((REPO / "deploy" / "edgernn.service").read_text().replace("SystemCallFilter=~", "SystemCallFilterDeny="))
    return unit


@needs_checkout
def test_the_unit_refuses_syscalls_with_eperm_and_keeps_proc_cpuinfo_visible():
    """A filtered call must fail with EPERM, not kill: numpy's import calls mbind, onnxruntime
    fchown and sched_setaffinity (deploy/prove-systemd.sh runs the unit under systemd)."""
    s = _service()["Service"]
    assert s["SystemCallErrorNumber"] == "EPERM"
    assert s["SystemCallFilter"] == "@system-service" and s["SystemCallFilterDeny"] == "@privileged @resources"
    assert "ProcSubset" not in s  # onnxruntime and LiteRT read /proc/cpuinfo to pick their kernels
    assert s["Type"] == "notify" and s["WatchdogSec"] and s["NotifyAccess"] == "main"


@needs_checkout
def test_install_sh_checks_its_arguments_before_touching_the_system(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("install.sh checks root first")
    script = REPO / "deploy" / "install.sh"
    r = subprocess.run(["sh", str(script), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--with-broker" in r.stdout and "--model DIR" in r.stdout
    r = subprocess.run(["sh", str(script), "--wheel", str(tmp_path / "none.whl")], capture_output=True, text=True)
    assert r.returncode == 1 and "no such file" in r.stderr
    wheel = tmp_path / "edgernn-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    r = subprocess.run(["sh", str(script), "--wheel", str(wheel), "--model", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "not a model bundle" in r.stderr
    r = subprocess.run(["sh", str(script), "--bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown argument: --bogus" in r.stderr
