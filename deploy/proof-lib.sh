# Shared by prove-systemd.sh and prove-arm64.sh (sourced, not run). Needs root on a Debian host.
#
# Mount safety: every mount into a root filesystem happens inside a private mount namespace
# (`unshare -m --propagation private`), so it disappears with that namespace and can never
# unmount or shadow anything of the host. Nothing here runs `umount`.

PROOF_DIR=${EDGERNN_PROOF_DIR:-/var/tmp/edgernn-proof}   # rootfs cache + artifacts (reused between runs)
MIRROR=${EDGERNN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
T0=$(date +%s)

log() {  # a line with the wall clock and the seconds since the script started
    printf '[%s +%4ss] %s\n' "$(date -u +%H:%M:%S)" "$(( $(date +%s) - T0 ))" "$*"
}

die() { log "FAIL: $*"; exit 1; }

need_host_tools() {  # PACKAGE:COMMAND ...; installs the missing ones with apt
    missing=""
    for pc in "$@"; do
        command -v "${pc#*:}" >/dev/null 2>&1 || missing="$missing ${pc%%:*}"
    done
    [ -z "$missing" ] && return 0
    log "installing host tools:$missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
}

in_private_ns() {  # run "$@" in a private mount namespace: its mounts never reach the host
    unshare -m --propagation private -- "$@"
}

# chroot_run ROOTFS CMD...: run CMD in ROOTFS with /proc, /sys, /dev (and a CPUINFO override,
# if $CPUINFO names a file) mounted inside a private namespace only.
chroot_run() {
    rootfs=$1; shift
    in_private_ns sh -eu -c '
        r=$1; shift
        mount -t proc proc "$r/proc"
        mount -t sysfs sysfs "$r/sys"
        mount --rbind /dev "$r/dev"
        if [ -n "${CPUINFO:-}" ]; then mount --bind "$CPUINFO" "$r/proc/cpuinfo"; fi
        exec chroot "$r" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            HOME=/root LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
            PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
            OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 QEMU_CPU="${QEMU_CPU:-}" "$@"
    ' chroot_run "$rootfs" "$@"
}

copy_host_ca() {  # pip inside the rootfs must trust what the host trusts (proxies re-sign TLS here)
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/ca-certificates.crt"
    mkdir -p "$1/etc"
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$1/etc/pip.conf"
}

build_artifacts() {  # SRC OUT: the wheel and the sdist of the checkout SRC, built into OUT (kept if present)
    src=$1; out=$2
    if ls "$out"/edgernn-*.whl "$out"/edgernn-*.tar.gz >/dev/null 2>&1; then
        log "artifacts: $(cd "$out" && ls edgernn-*.whl edgernn-*.tar.gz | tr '\n' ' ')(kept; delete $out to rebuild)"
        return 0
    fi
    env=$PROOF_DIR/buildenv
    [ -x "$env/bin/python" ] && "$env/bin/python" -c "import build" 2>/dev/null || {
        log "a venv with the build frontend: $env"
        python3 -m venv "$env" && "$env/bin/pip" install -q build >/dev/null || die "cannot install build"
    }
    log "building the sdist, and the wheel from it: python -m build $src"
    mkdir -p "$out"
    (cd "$src" && nice "$env/bin/python" -m build --outdir "$out" . >"$out/build.log" 2>&1) \
        || die "build failed, see $out/build.log"
    log "artifacts: $(cd "$out" && ls edgernn-*.whl edgernn-*.tar.gz | tr '\n' ' ')"
}

# build_rootfs ARCH DIR PACKAGES: a Debian bookworm rootfs in DIR (cached: reused when DIR/.complete
# exists). Foreign architectures go through debootstrap --foreign + qemu-user-static (binfmt_misc).
build_rootfs() {
    arch=$1; dir=$2; pkgs=$3
    if [ -f "$dir/.complete" ]; then log "rootfs $dir ($arch): cached"; return 0; fi
    rm -rf "$dir.tmp"; mkdir -p "$(dirname "$dir")"
    if [ "$arch" = "$(dpkg --print-architecture)" ]; then
        log "debootstrap $SUITE $arch -> $dir (a few minutes)"
        in_private_ns debootstrap --variant=minbase --include="$pkgs" "$SUITE" "$dir.tmp" "$MIRROR" \
            >"$dir.log" 2>&1 || die "debootstrap failed, see $dir.log"
    else
        enable_binfmt "$arch"
        log "debootstrap --foreign $SUITE $arch -> $dir (first stage)"
        in_private_ns debootstrap --foreign --arch="$arch" --variant=minbase --include="$pkgs" \
            "$SUITE" "$dir.tmp" "$MIRROR" >"$dir.log" 2>&1 || die "debootstrap failed, see $dir.log"
        cp "$(command -v qemu-aarch64-static)" "$dir.tmp/usr/bin/"
        log "second stage under emulation (slow)"
        in_private_ns chroot "$dir.tmp" /debootstrap/debootstrap --second-stage >>"$dir.log" 2>&1 \
            || die "second stage failed, see $dir.log"
    fi
    copy_host_ca "$dir.tmp"
    echo "deb $MIRROR $SUITE main" > "$dir.tmp/etc/apt/sources.list"
    touch "$dir.tmp/.complete"
    mv "$dir.tmp" "$dir"
    log "rootfs $dir ready ($(du -sh "$dir" | cut -f1))"
}

enable_binfmt() {  # ARCH: let the kernel run foreign binaries through qemu-user-static
    [ "$1" = arm64 ] || die "only arm64 is wired here"
    need_host_tools qemu-user-static:qemu-aarch64-static binfmt-support:update-binfmts
    [ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null \
        || die "binfmt_misc has no enabled qemu-aarch64 entry"
}
