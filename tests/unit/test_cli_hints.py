"""The command line as a person meets it: examples printed in --help work as printed, hints lead
somewhere, and odd environments (stdout a closed pipe or a full disk, a mosquitto that cannot start)
end in one line, not a traceback. Through the real CLI (a subprocess) where the environment is the
point; each case was a defect before (see the comments)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from unit_helpers import PYTHON, REPO

needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")


def edgernn(*args, **kw):
    return subprocess.run([PYTHON, "-m", "edgernn", *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          timeout=300, **kw)


# -- stdout that cannot be written --------------------------------------------------------------

@needs_dev_full
@pytest.mark.parametrize("args", [["check-config", "--schema"],
                                  ["check-config", REPO / "deploy" / "edgernn.example.yaml"]])
def test_stdout_on_a_full_disk_is_one_line(args):
    # (a traceback ending in "OSError: [Errno 28] No space left on device", exit 1)
    with open("/dev/full", "w") as full:
        r = subprocess.run([PYTHON, "-m", "edgernn", *map(str, args)], stdout=full, stderr=subprocess.PIPE,
                           text=True, cwd=REPO, timeout=120)
    assert (r.returncode, r.stderr) == (2, "edgernn check-config: cannot write to standard output: "
                                           "No space left on device\n")


def test_demo_whose_reader_went_away_ends_quietly():
    # `edgernn demo | head -6`: a traceback on stderr for every alert (BrokenPipeError in the alert
    # handler on the MQTT thread), and the demo ran on to its end
    p = subprocess.Popen([PYTHON, "-m", "edgernn", "demo", "--readings", "397", "--broker", "embedded"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        for line in p.stdout:
            if line.startswith("live alerts"):
                break
        p.stdout.close()  # the reader is gone before the first alert
        err = p.stderr.read()
        assert p.wait(120) == 0
    finally:
        if p.poll() is None:
            p.kill()
    assert "Traceback" not in err and "Error" not in err, err


def _processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line holds ``text`` (here: a test's own temporary directory)."""
    pids = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/cmdline", "rb") as fh:
                if text.encode() in fh.read():
                    pids.append(int(d))
        except (OSError, ValueError):
            continue
    return pids


@needs_dev_full
def test_demo_that_cannot_write_leaves_no_broker_running(tmp_path):
    # (`edgernn demo > /dev/full`: the first print failed after the broker started and before the
    # try that stops it: a mosquitto left running for good, and its temp directory)
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    with open("/dev/full", "w") as full:
        r = subprocess.run([PYTHON, "-m", "edgernn", "demo", "--readings", "397"], stdout=full,
                           stderr=subprocess.PIPE, text=True, cwd=REPO, env=env, timeout=120)
    left = _processes_mentioning(str(tmp_path))
    for pid in left:  # (the test's own orphans, by id)
        os.kill(pid, 15)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert left == [] and list(tmp_path.iterdir()) == []


# -- decommission -------------------------------------------------------------------------------

def test_decommission_names_itself_on_every_problem_of_the_config(tmp_path):
    # (only the first problem had "edgernn decommission: " in front; serve prints every one so)
    (tmp_path / "c.yaml").write_text("node: x\nmqtt: {port: -5}\npipelines: []\n")
    r = edgernn("decommission", "-c", tmp_path / "c.yaml")
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and len(lines) == 2, r.stderr
    assert all(line.startswith(f"edgernn decommission: {tmp_path / 'c.yaml'}:") for line in lines), r.stderr


# -- demo: its broker ---------------------------------------------------------------------------

needs_root_mosquitto = pytest.mark.skipif(
    not (hasattr(os, "geteuid") and os.geteuid() == 0 and (shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto"))),
    reason="mosquitto drops privileges to $USER only when run as root")


@needs_root_mosquitto
def test_a_mosquitto_that_cannot_start_says_why_and_auto_falls_back(tmp_path, monkeypatch, capsys):
    # (root with $USER not a user: "edgernn demo: mosquitto exited at start", exit 2, with no reason
    # and no way forward, also in --broker auto, which promises the embedded broker)
    from edgernn.commands.demo import start_broker

    monkeypatch.setenv("USER", "no-such-user-edgernn")
    with pytest.raises(RuntimeError, match=r"mosquitto exited at start: .*no-such-user-edgernn.* "
                                           r"\(or run with --broker embedded\)$"):
        start_broker("mosquitto", tmp_path)
    port, protocol, desc, stop = start_broker("auto", tmp_path)
    try:
        assert desc.startswith("embedded") and protocol == "3.1.1" and port != 1883
        assert "mosquitto exited at start" in capsys.readouterr().err
    finally:
        stop()


@needs_root_mosquitto
def test_a_mosquitto_that_cannot_start_leaves_no_temp_directory(tmp_path):
    # (the demo's temp directory with mosquitto.conf was left behind on every failed start)
    env = {**os.environ, "TMPDIR": str(tmp_path), "USER": "no-such-user-edgernn"}
    r = subprocess.run([PYTHON, "-m", "edgernn", "demo", "--broker", "mosquitto"], capture_output=True, text=True,
                       cwd=REPO, env=env, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("edgernn demo: mosquitto exited at start"), r.stderr
    assert list(tmp_path.iterdir()) == []


# -- examples printed in --help -----------------------------------------------------------------

def test_every_model_an_example_of_bench_names_exists():
    # ("--model my_model" in two examples: "model bundle directory not found: my_model")
    from edgernn.commands import bench
    from edgernn.models import find_model

    examples = [line.strip() for line in bench.__doc__.splitlines() if line.strip().startswith("edgernn bench")]
    models = [m for line in examples for m in re.findall(r"--model (\S+)", line)]
    assert len(examples) >= 4 and models
    for m in models:
        assert (find_model(m) / "manifest.yaml").is_file(), m


def test_the_synth_examples_work_as_printed(tmp_path):
    from edgernn import synth

    lines = [line.strip() for line in synth.EPILOG.splitlines() if line.strip().startswith("python -m edgernn.synth")]
    assert len(lines) == 3
    for line in lines:
        r = subprocess.run([sys.executable, *line.split()[1:]], capture_output=True, text=True, cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
        assert r.returncode == 0 and r.stdout.startswith("wrote "), r.stderr
    assert len(list((tmp_path / "faults").glob("*.csv"))) == 7 * 2 + 4 + 1  # + labels.csv
    assert len(list((tmp_path / "young").glob("*.csv"))) == 7 * 2 + 4 + 1


# -- python -m edgernn.synth --------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["corpus", "--series", "-1"], "corpus: --series must be between 1 and 100000 (got -1)"),  # wrote 0, exit 0
    (["corpus", "--length", "0"], "corpus: --length must be between 1 and 10000000 (got 0)"),  # traceback
    (["corpus", "--length", "99999999999"],
     "corpus: --length must be between 1 and 10000000 (got 99999999999)"),  # MemoryError
    (["corpus", "--seed", "-1"], "corpus: --seed must be at least 0 (got -1)"),  # numpy's ValueError
    (["faults", "--length", "10"], "faults: --length must be between 600 and 10000000 (got 10)"),  # traceback
    (["faults", "--per-fault", "-1"], "faults: --per-fault must be between 0 and 100000 (got -1)"),
    (["faults", "--per-fault", "0", "--clean", "0"], "faults: --per-fault 0 and --clean 0: no recordings to write"),
])
def test_synth_option_out_of_range_is_one_line(tmp_path, capsys, args, says):
    from edgernn.synth import main

    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"python -m edgernn.synth {says}\n"
    assert not (tmp_path / "out").exists()


def test_synth_out_that_is_not_a_directory_is_one_line(tmp_path, capsys, monkeypatch):
    from edgernn.synth import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "f.csv").write_text("x\n")
    assert main(["corpus", "--out", "", "--series", "1", "--length", "10"]) == 2  # (wrote into the working dir)
    assert main(["faults", "--out", "f.csv"]) == 2  # (FileExistsError traceback)
    assert main(["corpus", "--out", "f.csv/x", "--series", "1", "--length", "10"]) == 2  # (NotADirectoryError)
    assert capsys.readouterr().err.splitlines() == [
        "python -m edgernn.synth corpus: --out is empty: give a directory",
        "python -m edgernn.synth faults: --out f.csv: not a directory",
        "python -m edgernn.synth corpus: --out f.csv/x: cannot write: Not a directory"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.csv"]


# -- bench --------------------------------------------------------------------------------------

def test_bench_rounds_beyond_a_thousand_is_one_line(tmp_path):
    # (--rounds 1000000000 was taken: ~150,000 rounds in 15 s, a sample of every configuration kept
    # per round, a progress line per round: a day and a growing memory)
    r = edgernn("bench", "--rounds", "1000000000")
    assert (r.returncode, r.stderr) == (2, "edgernn bench: --rounds must be between 1 and 1000 (got 1000000000)\n")


# -- demo: a --rate above what the broker takes -------------------------------------------------

def test_demo_sends_every_reading_even_when_the_publisher_queue_is_full(tmp_path):
    # (a reading the publisher refused, its queue full, was dropped: --rate 1e9 with 100 sensors x
    # 1,000 readings scored 54,965 of 100,000 and judged the faults on readings never sent). A real
    # embedded broker and real MQTT clients; a publisher queue of 20 QoS 1 messages fills at once.
    from edgernn.commands.demo import _free_port, _publish
    from edgernn.config import MqttConfig
    from edgernn.minibroker import MiniBroker
    from edgernn.mqtt import MqttClient
    from edgernn.sim import Fleet

    port = _free_port()
    broker = MiniBroker("127.0.0.1", port).start()
    got: list[str] = []

    class Scored:  # the demo waits for the daemon's count; here: what the subscriber received
        @property
        def processed(self):
            return len(got)

    def client(cid, **kw):
        return MqttClient(MqttConfig(host="127.0.0.1", port=port, protocol="3.1.1", client_id=cid,
                                     clean_session=True, **kw))

    sub, pub = client("t-sub"), client("t-pub", publish_queue=20)
    sub.subscribe("plant/#", 1, lambda topic, payload: got.append(topic) or True)
    try:
        sub.start()
        pub.start()
        assert sub.connected.wait(10) and pub.connected.wait(10)
        import time
        time.sleep(0.3)  # the subscription settles
        fleet = Fleet(n_sensors=20, n_readings=150, seed=1, first_fault=20)
        _publish(fleet, pub, Scored(), rate=1e9)
        assert pub.publish_refused["queue_full"] > 0  # the case: the queue was full
        assert len(got) == fleet.n * fleet.T
    finally:
        pub.stop()
        sub.stop()
        broker.stop()


@needs_dev_full
def test_synth_stdout_on_a_full_disk_is_one_line(tmp_path):
    # (a traceback ending in "OSError: [Errno 28] No space left on device", exit 1)
    with open("/dev/full", "w") as full:
        r = subprocess.run([PYTHON, "-m", "edgernn.synth", "corpus", "--out", str(tmp_path / "c"), "--series", "1",
                            "--length", "10"], stdout=full, stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=120)
    assert (r.returncode, r.stderr) == (2, "python -m edgernn.synth corpus: cannot write to standard output: "
                                           "No space left on device\n")


# -- hints that pointed nowhere, inputs read without end -------------------------------------------

def test_a_file_given_as_model_is_pointed_to_its_bundle_only_when_there_is_one(tmp_path):
    # `--model /dev/null` said "(give its directory: /dev)", a hint that cannot work
    r = edgernn("inspect", "/dev/null")
    assert r.returncode == 2 and "a file, not a model bundle directory" in r.stderr and "give its directory" not in r.stderr
    r = edgernn("inspect", REPO / "firmware_models" / "univariate" / "manifest.yaml")
    assert r.returncode == 2 and f"(give its directory: {REPO / 'firmware_models' / 'univariate'})" in r.stderr
    assert edgernn("inspect", REPO / "firmware_models" / "univariate").returncode == 0  # the hint, as printed


def test_a_model_name_too_long_for_the_file_system_is_one_line():
    # (an OSError "File name too long" traceback from pathlib's is_dir)
    r = edgernn("inspect", "m" * 5000)
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


def test_a_config_that_never_ends_is_refused(tmp_path):
    # `check-config /dev/zero` read for ever (and serve, decommission the same)
    r = edgernn("check-config", "/dev/zero")
    assert r.returncode == 2 and "/dev/zero: larger than 4 MiB: not an edgernn config file" in r.stderr, r.stderr


def test_a_symlinked_model_card_is_replaced_not_written_through(tmp_path):
    # `edgernn export` refreshed README.md through a symlink: a file outside the bundle was overwritten
    from edgernn.train.card import write_card

    bundle = tmp_path / "b"
    shutil.copytree(REPO / "firmware_models" / "univariate", bundle)
    outside = tmp_path / "notes.md"
    outside.write_text("mine\n")
    (bundle / "README.md").unlink()
    (bundle / "README.md").symlink_to(outside)
    write_card(bundle)
    assert outside.read_text() == "mine\n"
    assert not (bundle / "README.md").is_symlink() and "univariate" in (bundle / "README.md").read_text()
