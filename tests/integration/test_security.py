"""TLS with a throw-away CA and client certificate; passwords (right, wrong, never printed)."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from .conftest import Broker, Publisher, Watcher, daemon_config, free_port, series, wait_until

pytestmark = pytest.mark.integration


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """A CA, a broker certificate for 127.0.0.1 and a client certificate, all EC P-256."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=edgernn test CA", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, cn in (("server", "localhost"), ("client", "edgernn-bench")):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", *(["-extfile", "san.ext"] if name == "server" else []), cwd=d)
    return {k: d / k for k in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI needed to make certificates")
def test_tls_with_client_certificate(tmp_path, bundle_dir, daemons):
    pki = make_pki(tmp_path / "pki")
    tls_port = free_port()
    broker = Broker(tmp_path / "broker", extra=(
        f"listener {tls_port} 127.0.0.1\n"
        f"cafile {pki['ca.crt']}\ncertfile {pki['server.crt']}\nkeyfile {pki['server.key']}\n"
        "require_certificate true\n"
    )).start()
    try:
        cfg = daemon_config(tls_port, bundle_dir, tmp_path / "state")
        cfg["mqtt"]["tls"] = {"ca": str(pki["ca.crt"]), "cert": str(pki["client.crt"]), "key": str(pki["client.key"])}
        watch = Watcher(broker.port)  # the plain listener of the same broker
        since = time.monotonic()
        d = daemons(tmp_path, cfg).start()
        watch.wait_online(since)
        assert "TLS on" in d.log()
        streams, ts, x = series(2, 30)
        pub = Publisher(broker.port)
        pub.readings([(s, float(ts[t]), float(x[t, j])) for t in range(30) for j, s in enumerate(streams)])
        watch.wait_stats(lambda s: s["readings_total"] >= 60, what="readings over TLS")
        assert d.stop() == 0
        pub.close()
        watch.close()
    finally:
        broker.stop()


@pytest.fixture
def auth_broker(tmp_path):
    passwd = tmp_path / "passwd"
    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("no mosquitto_passwd")
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "bench", "s3cret-pw"], check=True, capture_output=True)
    b = Broker(tmp_path / "broker", extra=f"password_file {passwd}\n", anonymous=False)
    b.start()
    yield b
    b.stop()


def test_wrong_password_logs_clearly_and_retries(auth_broker, tmp_path, bundle_dir, daemons):
    (tmp_path / "pw").write_text("not-the-password\n")
    cfg = daemon_config(auth_broker.port, bundle_dir, tmp_path / "state")
    cfg["mqtt"].update(username="bench", password_file=str(tmp_path / "pw"))
    d = daemons(tmp_path, cfg).start()
    d.wait_log("refused the connection")
    wait_until(lambda: d.log().count("refused the connection") >= 3, 10, what="retries")
    assert d.alive()
    log = d.log()
    assert "check mqtt.username ('bench') and the password (file " in log
    assert "not-the-password" not in log
    assert d.stop() == 0


def test_password_from_env_mqtt_311(auth_broker, tmp_path, bundle_dir, daemons):
    cfg = daemon_config(auth_broker.port, bundle_dir, tmp_path / "state")
    cfg["mqtt"].update(username="bench", password_env="EDGERNN_TEST_PW", protocol="3.1.1")
    watch = Watcher(auth_broker.port, auth=("bench", "s3cret-pw"))
    since = time.monotonic()
    d = daemons(tmp_path, cfg).start(env={"EDGERNN_TEST_PW": "s3cret-pw"})
    watch.wait_online(since)
    pub = Publisher(auth_broker.port, auth=("bench", "s3cret-pw"))
    pub.readings([("a/b", 1.7e9 + i, 1.0 + 0.1 * i) for i in range(10)])
    watch.wait_stats(lambda s: s["readings_total"] >= 10)
    assert "s3cret-pw" not in d.log() and "MQTT 3.1.1" in d.log()
    assert d.stop() == 0
    pub.close()
    watch.close()
