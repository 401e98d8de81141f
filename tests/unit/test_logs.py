"""Log lines: syslog priority prefixes when stderr is the journal stream systemd gave us, plain
timestamped lines elsewhere (also when JOURNAL_STREAM was merely inherited)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgernn.logs import JournalFormatter, setup_logging, syslog_priority, under_journald

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import logging
from edgernn.logs import setup_logging
print(setup_logging("debug"))
log = logging.getLogger("edgernn.test")
log.debug("d"); log.info("i"); log.warning("w"); log.error("e")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("boom")
"""


def run_logging(tmp_path: Path, journal: str | None) -> tuple[str, list[str]]:
    err = tmp_path / "stderr.txt"
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    env["PYTHONPATH"] = str(ROOT)
    with open(err, "wb") as f:
        if journal == "match":
            st = os.fstat(f.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        elif journal is not None:
            env["JOURNAL_STREAM"] = journal
        out = subprocess.run([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=f, env=env, text=True,
                             timeout=60)
    return out.stdout.strip(), err.read_text().splitlines()


def test_under_journald_every_line_has_its_priority(tmp_path):
    flag, lines = run_logging(tmp_path, "match")
    assert flag == "True"
    assert lines[:4] == ["<7>edgernn.test: d", "<6>edgernn.test: i", "<4>edgernn.test: w", "<3>edgernn.test: e"]
    tb = lines[4:]
    assert tb[0] == "<3>edgernn.test: boom" and len(tb) > 3
    assert all(line.startswith("<3>") for line in tb)  # the traceback is filed as an error too
    assert tb[-1] == "<3>ZeroDivisionError: division by zero"


@pytest.mark.parametrize("journal", [None, "1:2", "garbage"])
def test_elsewhere_plain_lines_with_time(tmp_path, journal):
    flag, lines = run_logging(tmp_path, journal)
    assert flag == "False"
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING edgernn.test: w$", lines[2]), lines
    assert not any(line.startswith("<") for line in lines)


def test_priorities_and_formatter():
    import logging

    assert [syslog_priority(v) for v in (10, 20, 30, 40, 50)] == [7, 6, 4, 3, 2]
    rec = logging.LogRecord("edgernn.x", logging.WARNING, __file__, 1, "two\nlines", None, None)
    assert JournalFormatter().format(rec) == "<4>edgernn.x: two\n<4>lines"
    assert under_journald(environ={}) is False


def test_bad_level_is_refused():
    with pytest.raises(ValueError, match="not one of"):
        setup_logging("loud")


def test_every_command_logs_through_it(tmp_path):
    """The CLI sets logging up before any command runs (warnings show, with the plain format)."""
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run([sys.executable, "-c", "import logging, edgernn.cli as c, sys;"
                        "import edgernn.commands.check_config as m;"
                        "m.run = lambda a: logging.getLogger('edgernn.x').warning('hello') or 0;"
                        "sys.exit(c.main(['check-config', 'x.yaml']))"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert re.search(r"\d\d:\d\d:\d\d,\d{3} WARNING edgernn.x: hello", r.stderr), r.stderr


def test_serve_under_journald_every_line_prefixed(tmp_path):
    """The daemon's own lines (info at start, a warning while the broker is away) carry priorities."""
    import signal
    import socket
    import time

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "edgernn.yaml"
    cfg.write_text(f"node: bench\nmqtt: {{host: 127.0.0.1, port: {port}, reconnect_min_s: 0.2}}\n"
                   f"state: {{dir: {tmp_path / 'state'}}}\nlog: {{level: info}}\npipelines:\n"
                   f"  - {{name: plant, subscribe: plant/+, model: {ROOT / 'firmware_models' / 'univariate'}}}\n")
    err = tmp_path / "stderr.txt"
    with open(err, "wb") as f:
        st = os.fstat(f.fileno())
        env = {**os.environ, "PYTHONPATH": str(ROOT), "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        proc = subprocess.Popen([sys.executable, "-m", "edgernn", "serve", "-c", str(cfg)], stderr=f, env=env)
        try:
            deadline = time.monotonic() + 30
            while "cannot reach MQTT broker" not in err.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    lines = err.read_text().splitlines()
    assert any(line.startswith("<4>edgernn.mqtt: cannot reach MQTT broker") for line in lines), lines
    assert any(line.startswith("<6>edgernn.") for line in lines), lines  # the startup summary
    assert all(re.match(r"^<[2-7]>", line) for line in lines), lines


def test_throttle_holds_events_for_the_next_line_and_keeps_its_keys_bounded():
    from edgernn.logs import Throttle

    t = Throttle(10.0)
    assert [t.due("a", now=0.0), t.due("b", now=1.0), t.due("a", 3, now=2.0)] == [1, 1, 0]
    assert t.held("a") == 3 and t.due("a", 0, now=5.0) == 0  # nothing new, still quiet
    assert t.due("a", 0, now=10.0) == 3 and t.held("a") == 0  # held events flushed once the interval ends
    assert t.due("a", 0, now=30.0) == 0  # nothing held: no line
    t.forget()
    assert t.due("a", now=30.5) == 1
    for i in range(Throttle.MAX_KEYS * 3):
        t.due(f"k{i}", now=40.0)
        t.due(f"k{i}", now=41.0)  # held
    assert len(t._last) <= Throttle.MAX_KEYS and len(t._held) <= Throttle.MAX_KEYS
