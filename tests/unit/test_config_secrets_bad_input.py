"""Bad secrets and TLS files in a config: each is one line ``FILE:LINE: key: message`` and exit code 2
from both check-config and serve -- never a traceback, nor a daemon that starts and then cannot
connect (paho failing at start or in its network thread on a user name or password check-config had
passed). Real files, real openssl certificates."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgernn.config import ConfigError, load_config
from unit_helpers import REPO

BASE = """\
node: fz
mqtt:
  host: 127.0.0.1
  port: 18999
MQTT
state: {dir: STATE}
pipelines:
  - name: plant
    subscribe: plant/+/+
    payload: {format: json, value: value}
    model: univariate
"""

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI needed to make certificates")


def write(tmp_path: Path, mqtt: str) -> Path:
    p = tmp_path / "edgernn.yaml"
    p.write_text(BASE.replace("MQTT\n", mqtt).replace("STATE", str(tmp_path / "state")))
    return p


def one_error(tmp_path: Path, mqtt: str) -> str:
    p = write(tmp_path, mqtt)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert len(exc.value.messages) == 1, exc.value.messages
    assert exc.value.messages[0].startswith(f"{p}:"), exc.value.messages
    return exc.value.messages[0][len(str(p)):]


def secret(tmp_path: Path, data: bytes, name: str = "pw", mode: int = 0o600) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    p.chmod(mode)
    return p


USER = "  username: bench\n"


# -- 1. a password file or credential name that cannot be opened: one line, not ValueError ------------------
def test_nul_in_a_password_path_is_one_line(tmp_path, monkeypatch):
    msg = one_error(tmp_path, USER + '  password_file: "pw\\0x"\n')
    assert msg.startswith(":6: mqtt.password_file: cannot read ") and msg.endswith(": embedded null byte")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert one_error(tmp_path, USER + '  password_credential: "pw\\0x"\n').startswith(
        ":6: mqtt.password_credential: cannot read ")


# -- 2. the default systemd credential (mqtt-password) is read like the others -------------------------------
@pytest.mark.parametrize("data,why", [(b"caf\xe9\n", "can't decode"), (b"\n", "is empty")])
def test_bad_default_credential_is_one_line(tmp_path, monkeypatch, data, why):
    creds = tmp_path / "creds"
    creds.mkdir()
    secret(creds, data, "mqtt-password")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    msg = one_error(tmp_path, USER)
    assert msg.startswith(":5: mqtt.username: ") and why in msg and "mqtt-password" in msg


# -- 3. what paho cannot send: more than 65,535 bytes, not UTF-8 (it died in its thread / at start) ----------
def test_password_longer_than_mqtt_allows_is_an_error(tmp_path, monkeypatch):
    secret(tmp_path, b"a" * 65535 + b"\n")
    assert load_config(write(tmp_path, USER + "  password_file: pw\n")).mqtt.password == "a" * 65535
    secret(tmp_path, b"a" * 65536)
    msg = one_error(tmp_path, USER + "  password_file: pw\n")
    assert msg.startswith(":6: mqtt.password_file: ") and "65,536 bytes long; MQTT allows at most 65,535" in msg
    monkeypatch.setenv("EDGERNN_TEST_PW", "é" * 40000)  # 80,000 bytes in UTF-8
    msg = one_error(tmp_path, USER + "  password_env: EDGERNN_TEST_PW\n")
    assert msg.startswith(":6: mqtt.password_env: ") and "80,000 bytes" in msg and "é" not in msg


def test_password_file_that_never_ends_is_read_bounded(tmp_path):
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    msg = one_error(tmp_path, USER + "  password_file: /dev/zero\n")
    assert msg.startswith(":6: mqtt.password_file: cannot read /dev/zero: larger than a password can be")


def test_password_env_not_utf8_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setitem(os.environ, "EDGERNN_TEST_PW", os.fsdecode(b"\xff\xfepw"))  # as a non-UTF-8 env gives
    msg = one_error(tmp_path, USER + "  password_env: EDGERNN_TEST_PW\n")
    assert msg.startswith(":6: mqtt.password_env: the password in environment variable EDGERNN_TEST_PW is not "
                          "valid UTF-8")


@pytest.mark.parametrize("user,why", [('"\\ud800"', "not valid UTF-8"), ("u" * 65536, "65,536 bytes long")])
def test_username_paho_cannot_send_is_an_error(tmp_path, user, why):
    msg = one_error(tmp_path, f"  username: {user}\n")
    assert msg.startswith(":5: mqtt.username: ") and why in msg


# -- 4. an empty password (the README's `install -m 0600 /dev/null ...` left as is) ------------------------
@pytest.mark.parametrize("data", [b"", b"\n", b"\r\n", b"\xef\xbb\xbf\n"])
def test_empty_password_file_is_an_error(tmp_path, data):
    secret(tmp_path, data)
    msg = one_error(tmp_path, USER + "  password_file: pw\n")
    assert msg == f":6: mqtt.password_file: the password in file {tmp_path / 'pw'} is empty"


def test_empty_password_env_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGERNN_TEST_PW", "")
    assert one_error(tmp_path, USER + "  password_env: EDGERNN_TEST_PW\n").endswith(
        "environment variable EDGERNN_TEST_PW is empty")


# -- 5. a BOM (Windows editors) is not part of the password; CRLF and LF endings are dropped -----------------
@pytest.mark.parametrize("data", [b"\xef\xbb\xbfs3cret\r\n", b"s3cret\r\n", b"s3cret\n", b"s3cret"])
def test_password_file_bom_and_line_endings(tmp_path, data):
    secret(tmp_path, data)
    m = load_config(write(tmp_path, USER + "  password_file: pw\n")).mqtt
    assert m.password == "s3cret" and m.password_source == f"file {tmp_path / 'pw'}"


# -- 6. a secret every user can read: a warning naming file, line, key and a working chmod -----------------------
def test_world_readable_password_file_warns(tmp_path, caplog):
    pw = secret(tmp_path, b"s3cret\n", "my pw", mode=0o644)
    with caplog.at_level(logging.WARNING, "edgernn.config"):
        assert load_config(write(tmp_path, USER + "  password_file: my pw\n")).mqtt.password == "s3cret"
    (rec,) = [r.getMessage() for r in caplog.records if "readable by every user" in r.getMessage()]
    assert rec.startswith(f"{tmp_path / 'edgernn.yaml'}:6: mqtt.password_file: {pw} ") and "s3cret" not in rec
    command = rec.split("restrict it: ", 1)[1]
    subprocess.run(command, shell=True, check=True)  # the hint works as printed (a blank in the name)
    assert pw.stat().st_mode & 0o077 == 0o040
    caplog.clear()
    with caplog.at_level(logging.WARNING, "edgernn.config"):
        load_config(write(tmp_path, USER + "  password_file: my pw\n"))
    assert not [r for r in caplog.records if "readable by every user" in r.getMessage()]


# -- 7. TLS: real certificates --------------------------------------------------------------------------------
def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI needed to make certificates")
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=t CA", cwd=d)
    _openssl("req", *ec, "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=client", cwd=d)
    _openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "client.crt", "-days", "2", cwd=d)
    (d / "chain.crt").write_bytes((d / "client.crt").read_bytes() + (d / "ca.crt").read_bytes())
    (d / "combined.pem").write_bytes((d / "client.crt").read_bytes() + (d / "client.key").read_bytes())
    (d / "combined.pem").chmod(0o600)
    return d


@pytest.mark.parametrize("files,key,why", [
    ("cert: client.crt, key: nope.key", "mqtt.tls.key", "file not found: "),
    ("cert: client.crt, key: pki", "mqtt.tls.key", "not a file: "),
    ("cert: client.crt", "mqtt.tls", "cert and key go together"),
])
def test_missing_client_key_is_one_error(tmp_path, pki, files, key, why):
    """Once: the certificate was also loaded without its key ('None: not a PEM private key')."""
    for name in ("ca.crt", "client.crt"):
        shutil.copy(pki / name, tmp_path / name)
    (tmp_path / "pki").mkdir()
    msg = one_error(tmp_path, f"  tls: {{ca: ca.crt, {files}}}\n")
    assert msg.startswith(f":5: {key}: {why}") and "None" not in msg


@pytest.mark.parametrize("files", ["ca: chain.crt", "ca: ca.crt, cert: chain.crt, key: client.key",
                                   "ca: ca.crt, cert: combined.pem, key: combined.pem"])
def test_valid_tls_files_relative_to_the_config_load(tmp_path, pki, monkeypatch, caplog, files):
    monkeypatch.chdir(tmp_path)  # relative paths: to the config file's directory, not the working directory
    p = pki / "cfg.yaml"
    p.write_text(BASE.replace("MQTT\n", f"  tls: {{{files}}}\n").replace("STATE", str(tmp_path / "state")))
    with caplog.at_level(logging.WARNING, "edgernn.config"):
        tls = load_config(p).mqtt.tls
    assert Path(tls.ca).parent == pki and not caplog.records


def test_world_readable_tls_key_warns(tmp_path, pki, caplog):
    for name in ("ca.crt", "client.crt", "client.key"):
        shutil.copy(pki / name, tmp_path / name)
    (tmp_path / "client.key").chmod(0o604)
    with caplog.at_level(logging.WARNING, "edgernn.config"):
        load_config(write(tmp_path, "  tls: {ca: ca.crt, cert: client.crt, key: client.key}\n"))
    (rec,) = [r.getMessage() for r in caplog.records]
    assert rec.startswith(f"{tmp_path / 'edgernn.yaml'}:5: mqtt.tls.key: {tmp_path / 'client.key'} is "
                          "readable by every user (mode 0604); restrict it: chmod o-rwx ")


# -- both commands, end to end ---------------------------------------------------------------------------------
CASES = {
    "nul_password_path": (USER + '  password_file: "pw\\0x"\n', {}),
    "default_credential_not_utf8": (USER, {"CREDENTIALS_DIRECTORY": "CREDS"}),
    "password_env_not_utf8": (USER + "  password_env: EDGERNN_TEST_PW\n", {"EDGERNN_TEST_PW": b"\xff\xfe"}),
    "huge_password_file": (USER + "  password_file: pw\n", {}),
}


@pytest.mark.parametrize("command", ["check-config", "serve"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_commands_exit_2_with_one_line(tmp_path, command, case):
    mqtt, extra = CASES[case]
    creds = tmp_path / "creds"
    creds.mkdir()
    secret(creds, b"caf\xe9\n", "mqtt-password")
    secret(tmp_path, b"x" * 70000)
    p = write(tmp_path, mqtt)
    env = {os.fsencode(k): os.fsencode(v) for k, v in os.environ.items()}
    env.update({k.encode(): v if isinstance(v, bytes) else v.replace("CREDS", str(creds)).encode()
                for k, v in extra.items()})
    args = ["check-config", str(p)] if command == "check-config" else ["serve", "-c", str(p)]
    out = subprocess.run([sys.executable, "-m", "edgernn", *args], capture_output=True, cwd=REPO, env=env,
                         timeout=60)
    err = out.stderr.decode(errors="replace")
    assert out.returncode == 2, (out.returncode, err[-2000:])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"{p}:" in lines[0] and "Traceback" not in err, err[-2000:]
