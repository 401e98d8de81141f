#!/bin/sh
# Proof that edgernn.service starts, serves and restarts under a real systemd with its shipped
# hardening: boots a Debian bookworm amd64 root filesystem with systemd as PID 1 (systemd-nspawn -b),
# installs edgernn there from the wheel with deploy/install.sh (a custom model and the broker), and
# checks: READY (StatusText/ActiveState), an alert on a spike published to the container's
# mosquitto, `systemctl restart`, the watchdog (WatchdogTimestamp advancing, NotifyAccess),
# no seccomp kill, `systemd-analyze security` OK, and that install.sh runs again cleanly.
#
#   sudo deploy/prove-systemd.sh          # from the repository root; ~3 min (+2 min the first time)
#   EDGERNN_PROOF_DIR=/somewhere ...      # the rootfs cache (default /var/tmp/edgernn-proof)
#
# Needs root and network to the Debian mirror and the Python package index. The container shares
# the host's network: its mosquitto listens on a free port of 127.0.0.1 (never 1883) while it runs.
# nspawn makes its own mounts in its own namespace; this script mounts nothing.
set -eu
case ${1:-} in
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    ?*) echo "prove-systemd.sh: no arguments (see --help)" >&2; exit 2 ;;
esac
SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/deploy/proof-lib.sh"
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, systemd-nspawn)"

ROOTFS=$PROOF_DIR/rootfs-$SUITE-amd64
MACHINE=$PROOF_DIR/machine-systemd
FAILED=0
check() {  # NAME CONDITION-COMMAND...: prints PASS/FAIL, counts failures
    name=$1; shift
    if "$@"; then log "PASS $name"; else log "FAIL $name"; FAILED=$((FAILED + 1)); fi
}

need_host_tools debootstrap:debootstrap systemd-container:systemd-nspawn
build_artifacts "$SRC" "$PROOF_DIR/dist"
WHEEL=$(ls "$PROOF_DIR"/dist/edgernn-*-linux_"$(uname -m)".whl | head -1)   # not the aarch64 one
build_rootfs amd64 "$ROOTFS" systemd,systemd-sysv,dbus,ca-certificates,python3,procps
# the container shares the host's network: its broker goes on a free port, not 1883
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

log "a fresh machine from the cached rootfs: $MACHINE"
rm -rf "$MACHINE" && cp -a "$ROOTFS" "$MACHINE"
mkdir -p "$MACHINE/root/src/dist"
cp -r "$SRC/deploy" "$MACHINE/root/src/"
cp "$WHEEL" "$MACHINE/root/src/dist/"
cp -r "$SRC/firmware_models/univariate" "$MACHINE/root/src/my-pump"   # "a custom model"
mkdir -p "$MACHINE/etc/mosquitto/conf.d"
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$PORT" > "$MACHINE/etc/mosquitto/conf.d/proof-port.conf"

log "boot: systemd-nspawn -b (systemd as PID 1)"
systemd-nspawn -D "$MACHINE" -b --register=no --keep-unit --machine=edgernn-proof --console=pipe \
    >"$PROOF_DIR/nspawn.log" 2>&1 &
NSPAWN=$!
stop_machine() {
    [ -n "${LEADER:-}" ] && C systemctl poweroff >/dev/null 2>&1 || true
    for _ in $(seq 30); do kill -0 $NSPAWN 2>/dev/null || return 0; sleep 1; done
    kill $NSPAWN 2>/dev/null || true
}
trap stop_machine EXIT
C() {  # run a command inside the container (all its namespaces), with a clean environment
    nsenter -t "$LEADER" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 "$@"
}
LEADER=""
for _ in $(seq 60); do
    LEADER=$(ps -o pid= --ppid $NSPAWN | head -1 | tr -d ' ')
    [ -n "$LEADER" ] && C systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded' && break
    sleep 1
done
[ -n "$LEADER" ] || die "the container did not start: $(tail -3 "$PROOF_DIR/nspawn.log")"
log "booted: PID 1 is $(C cat /proc/1/comm) $(C systemctl --version | head -1), state $(C systemctl is-system-running || true)"

log "deploy/install.sh --wheel $(basename "$WHEEL") --model my-pump --with-broker --extras onnx,tflite --no-start"
C sh -c "cd /root/src && deploy/install.sh --wheel dist/$(basename "$WHEEL") --model my-pump --with-broker \
    --extras onnx,tflite --no-start" >"$PROOF_DIR/install.log" 2>&1 || { tail -20 "$PROOF_DIR/install.log"; die "install.sh failed"; }
grep -E '^install.sh:|: OK$|pipeline ' "$PROOF_DIR/install.log" | sed 's/^/    /'
log "the proof's only change to what install.sh wrote: mqtt.port $PORT (the container's broker)"
C sed -i "s/^  port: 1883 /  port: $PORT /" /etc/edgernn/edgernn.yaml
log "systemctl enable --now edgernn"
C systemctl enable --now edgernn 2>&1 | sed 's/^/    /'

wait_ready() {  # until the unit is active with a status text (Type=notify: READY=1 was sent)
    for _ in $(seq 60); do
        [ "$(C systemctl show -P ActiveState edgernn)" = active ] && [ -n "$(C systemctl show -P StatusText edgernn)" ] \
            && return 0
        sleep 0.5
    done
    return 1
}
show() { C systemctl show edgernn -p "$@" | sed 's/^/    /'; }
check "READY under the shipped hardening" wait_ready
show ActiveState -p SubState -p StatusText -p MainPID -p NRestarts
check "config points at the copied custom model" \
    C grep -q "model: /opt/edgernn/models/my-pump" /etc/edgernn/edgernn.yaml
check "alert on a spike published to the container's mosquitto" \
    C /opt/edgernn/venv/bin/python /root/src/deploy/proof_traffic.py --port $PORT --topic plant/line1/temp

pid1=$(C systemctl show -P MainPID edgernn)
log "systemctl restart edgernn"
C systemctl restart edgernn
check "READY again after restart" wait_ready
pid2=$(C systemctl show -P MainPID edgernn)
check "a new main process ($pid1 -> $pid2)" [ "$pid1" != "$pid2" ]
check "serves after the restart (a new stream, its spike alerted)" \
    C /opt/edgernn/venv/bin/python /root/src/deploy/proof_traffic.py --port $PORT --topic plant/line2/temp

backend_serves() {  # BACKEND LINE: the daemon runs on BACKEND and alerts on a spike of a new stream
    C journalctl -u edgernn --no-pager -n 40 | grep -q "on $1, max" \
        && C /opt/edgernn/venv/bin/python /root/src/deploy/proof_traffic.py --port "$PORT" \
            --topic "plant/line$2/temp" | tail -1 | grep -q yes
}
line=3
for b in onnx onnx-int8 tflite tflite-int8; do  # every runtime under the same syscall filter
    C sed -i "s/^    \(# \)\{0,1\}backend: [a-z0-9-]*/    backend: $b/" /etc/edgernn/edgernn.yaml
    C systemctl reset-failed edgernn  # six starts within seconds would trip StartLimitBurst (5 per 10 s)
    C systemctl restart edgernn
    check "backend $b: READY, serving, a spike alerted" backend_serves $b $line
    line=$((line + 1))
done
C journalctl -u edgernn --no-pager | grep -E "XNNPACK|cpuinfo|CPU vendor" | sort | uniq -c | sed 's/^/    /' || true
no_cpuinfo_errors() { ! C journalctl -u edgernn --no-pager | grep -qE "Error in cpuinfo|Unknown CPU vendor"; }
check "the runtimes see /proc/cpuinfo (no cpuinfo errors in the journal)" no_cpuinfo_errors
w1=$(C systemctl show -P WatchdogTimestampMonotonic edgernn); sleep 17
w2=$(C systemctl show -P WatchdogTimestampMonotonic edgernn)
show WatchdogUSec -p WatchdogTimestamp -p NotifyAccess
check "watchdog pings arrive (WatchdogTimestamp moved in 17 s)" [ "$w1" != "$w2" ]
no_sigsys() { ! C journalctl -u edgernn --no-pager | grep -q 31/SYS; }
check "no seccomp kill (status=31/SYS) in the journal" no_sigsys
exposure=$(C systemd-analyze security edgernn.service --no-pager | tail -1)
echo "    $exposure"
check "systemd-analyze security: OK" sh -c "echo '$exposure' | grep -q OK"

log "install.sh a second time (idempotent: reinstall in place, config kept, service restarted)"
check "install.sh again" C sh -c "cd /root/src && deploy/install.sh --wheel dist/$(basename "$WHEEL") \
    >/root/install2.log 2>&1"
check "the config kept (model and port)" C sh -c "grep -q 'port: $PORT' /etc/edgernn/edgernn.yaml && grep -q 'model: /opt/edgernn/models/my-pump' /etc/edgernn/edgernn.yaml"
check "READY after the reinstall" wait_ready
log "journal (last lines):"
C journalctl -u edgernn --no-pager -n 6 -o short-precise | sed 's/^/    /'
[ "$FAILED" = 0 ] || die "$FAILED check(s) failed"
log "all checks passed"
