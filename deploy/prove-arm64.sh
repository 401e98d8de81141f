#!/bin/sh
# Proof that edgernn installs and runs on a Raspberry Pi-class arm64 system, under emulation:
# a Debian bookworm arm64 root filesystem (debootstrap --foreign + qemu-user-static, Cortex-A72 =
# a Pi 4 core), edgernn installed there from the sdist the way deploy/README.md's Pi guide says
# (the kernel compiles with gcc), then: `edgernn demo`, a replay on every backend whose alert
# events are compared with the same replay on this x86 host, the bench, and the unit tests.
#
#   sudo deploy/prove-arm64.sh            # from the repository root; ~30-60 min the first time
#   EDGERNN_PROOF_DIR=/somewhere ...      # the rootfs cache (default /var/tmp/edgernn-proof)
#   EDGERNN_ARM64_TESTS="tests/unit/test_bundle.py"   # which tests run under emulation
#   EDGERNN_ARM64_TEST_TIMEOUT=1800       # seconds; then pytest is interrupted and reports what ran
#
# Needs root, network to the Debian mirror and to the Python package index. Every mount into the
# rootfs lives in a private mount namespace (see proof-lib.sh); the host keeps its own.
set -eu
case ${1:-} in
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    ?*) echo "prove-arm64.sh: no arguments (see --help)" >&2; exit 2 ;;
esac
SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/deploy/proof-lib.sh"
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot, binfmt_misc)"

ROOTFS=$PROOF_DIR/rootfs-$SUITE-arm64
DIST=$PROOF_DIR/dist
OUT=$PROOF_DIR/arm64-run
BACKENDS="numpy onnx onnx-int8 tflite tflite-int8"
TESTS=${EDGERNN_ARM64_TESTS:-tests/unit tests/contract}
# what the Pi guide installs with apt; put into the rootfs by debootstrap (one emulated dpkg run)
PI_PACKAGES=ca-certificates,python3,python3-venv,python3-dev,python3-pip,build-essential,mosquitto

need_host_tools debootstrap:debootstrap qemu-user-static:qemu-aarch64-static binfmt-support:update-binfmts
build_artifacts "$SRC" "$DIST"
SDIST=$(ls "$DIST"/edgernn-*.tar.gz | head -1)
build_rootfs arm64 "$ROOTFS" "$PI_PACKAGES"
enable_binfmt arm64

# qemu-user shows the host's /proc/cpuinfo (x86): onnxruntime and LiteRT crash reading it.
# A Raspberry Pi 4's (4x Cortex-A72) is bound over it inside the namespace.
CPUINFO=$PROOF_DIR/cpuinfo-cortex-a72
for n in 0 1 2 3; do
    printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$n"
    printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
done > "$CPUINFO"
printf 'Hardware\t: BCM2835\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n' >> "$CPUINFO"
export CPUINFO QEMU_CPU=cortex-a72

# what the run inside needs: the sdist, the replay input, the tests and their fixtures
rm -rf "$ROOTFS/root/proof" "$OUT"; mkdir -p "$ROOTFS/root/proof/src" "$OUT"
cp "$SDIST" "$SRC/edgernn/data/demo_sensor.csv" "$ROOTFS/root/proof/"
cp -r "$SRC/tests" "$SRC/firmware_models" "$SRC/deploy" "$SRC/pyproject.toml" "$ROOTFS/root/proof/src/"
cat > "$ROOTFS/root/proof/run.sh" <<EOF
set -eu
T0=\$(date +%s)
log() { printf '[%s +%4ss] arm64: %s\n' "\$(date -u +%H:%M:%S)" "\$(( \$(date +%s) - T0 ))" "\$*"; }
cd /root/proof
log "\$(uname -m), \$(python3 --version), QEMU_CPU=\$QEMU_CPU, cpu: \$(grep -m1 'CPU part' /proc/cpuinfo)"
log "Pi guide: python3 -m venv /opt/edgernn/venv && pip install '$(basename "$SDIST")[onnx,tflite]'"
V=/opt/edgernn/venv/bin
sum=\$(sha256sum "$(basename "$SDIST")" | cut -c1-64)
if [ "\$(cat /opt/edgernn/venv/.sdist-sha256 2>/dev/null)" = "\$sum" ]; then
    log "this sdist is installed already (kept; rm -rf /opt/edgernn/venv to reinstall)"
else
    python3 -m venv /opt/edgernn/venv
    \$V/pip install -q "$(basename "$SDIST")[onnx,tflite]" pytest 2>&1 | grep -v 'is ignored' || true
    \$V/python -c "import edgernn" && echo "\$sum" > /opt/edgernn/venv/.sdist-sha256
fi
log "compiled kernel: \$(cd /opt/edgernn/venv/lib/python3*/site-packages/edgernn && ls *.so 2>/dev/null || echo 'none: plain Python')"
log "installed: \$(du -sh /opt/edgernn/venv | cut -f1) venv"
log "edgernn demo (from /tmp, a directory without the repository)"
(cd /tmp && \$V/edgernn demo --sensors 6 --readings 400) > demo.txt 2>&1 || { cat demo.txt; exit 1; }
tail -12 demo.txt
for b in $BACKENDS; do
    \$V/edgernn replay demo_sensor.csv --model univariate --backend \$b --out replay-\$b.csv --quiet \
        > replay-\$b.txt 2>&1 || { cat replay-\$b.txt; exit 1; }
    log "replay \$b: \$(tail -1 replay-\$b.txt)"
done
log "bench (every backend, batch 1 and 64)"
\$V/edgernn bench --model univariate --backend all --batch 1,64 --seconds 0.5 --rounds 3 --no-peers \
    --json bench.json 2>&1 | tail -20
log "unit tests under emulation: $TESTS"
# the compiled-module staleness check compares file times, which pip does not keep: run apart
cd src && timeout -s INT \${EDGERNN_ARM64_TEST_TIMEOUT:-1800} \$V/python -m pytest $TESTS -q -p no:cacheprovider \
    -k "not not_older_than_its_source" 2>&1 | tail -15
\$V/python -m pytest $TESTS -q -p no:cacheprovider -k not_older_than_its_source 2>&1 | tail -3 || true
log "done"
EOF

log "running inside the arm64 rootfs (qemu-user, QEMU_CPU=$QEMU_CPU)"
{ rc=0; chroot_run "$ROOTFS" sh /root/proof/run.sh || rc=$?; echo $rc > "$OUT/rc"; } 2>&1 | tee "$OUT/arm64.log"
[ "$(cat "$OUT/rc")" = 0 ] || die "the run inside the arm64 rootfs failed (exit $(cat "$OUT/rc"))"
cp "$ROOTFS"/root/proof/replay-*.csv "$ROOTFS"/root/proof/bench.json "$OUT/" 2>/dev/null || true
# the aarch64 wheel pip built from the sdist (kernel compiled): installable on a Pi without a compiler
find "$ROOTFS/root/.cache/pip/wheels" -name 'edgernn-*aarch64*.whl' -exec cp {} "$DIST/" \; 2>/dev/null || true
log "aarch64 wheel: $(cd "$DIST" && ls edgernn-*aarch64*.whl 2>/dev/null || echo none)"

log "the same replays on this x86 host, then the alert events compared"
for b in $BACKENDS; do
    (cd "$SRC" && PYTHONPATH=$SRC OPENBLAS_NUM_THREADS=1 nice ${EDGERNN_X86_PYTHON:-python3} -m edgernn replay \
        edgernn/data/demo_sensor.csv --model univariate --backend "$b" --out "$OUT/x86-$b.csv" --quiet >/dev/null)
done
python3 "$SRC/deploy/compare_replays.py" "$OUT" $BACKENDS
log "all done; logs and CSVs in $OUT"
