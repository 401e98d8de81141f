#!/bin/sh
# Install edgernn as a systemd service on Debian / Raspberry Pi OS, from a built wheel or sdist.
#
#   sudo deploy/install.sh                                # the newest dist/ wheel for this CPU (or sdist)
#   sudo deploy/install.sh --wheel edgernn-0.1.0-cp311-cp311-linux_x86_64.whl
#   sudo deploy/install.sh --model ./my_model --with-broker
#
# Options:
#   --wheel FILE      the wheel (or sdist: then a C compiler is installed to build the fast kernel)
#   --model DIR       your own model bundle: copied to /opt/edgernn/models/<name>/ and the config's
#                     pipelines pointed at it (default: the shipped model `univariate`, by name)
#   --with-broker     also install the mosquitto broker (when it is not installed yet)
#   --extras LIST     optional runtimes, e.g. onnx,tflite (default: none; numpy runs every model)
#   --no-start        install and check, but do not enable/start the service (images, containers)
# Safe to run again: it upgrades edgernn, keeps your config (see --model), restarts the service.
set -eu
PREFIX=/opt/edgernn
ETC=/etc/edgernn
HERE=$(cd "$(dirname "$0")" && pwd)
WHEEL="" MODEL="" BROKER=no EXTRAS="" START=yes
usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case $1 in
        --wheel) WHEEL=${2:?--wheel needs a file}; shift ;;
        --model) MODEL=${2:?--model needs a directory}; shift ;;
        --with-broker) BROKER=yes ;;
        --extras) EXTRAS=${2:?--extras needs a list, e.g. onnx,tflite}; shift ;;
        --no-start) START=no ;;
        -h|--help) usage ;;
        *) echo "install.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
say() { echo "install.sh: $*"; }
fail() { echo "install.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (sudo $0 ...)"

if [ -z "$WHEEL" ]; then  # the newest wheel for this machine in the checkout's dist/, else the sdist
    WHEEL=$(ls -t "$HERE"/../dist/edgernn-*-linux_"$(uname -m)".whl "$HERE"/../dist/edgernn-*.tar.gz \
        2>/dev/null | head -1) || true
    [ -n "$WHEEL" ] || fail "no dist/edgernn-*.whl: build one (python3 -m build) or pass --wheel FILE"
fi
[ -f "$WHEEL" ] || fail "--wheel: no such file: $WHEEL"
if [ -n "$MODEL" ]; then
    [ -f "$MODEL/manifest.yaml" ] || fail "--model $MODEL: not a model bundle (no manifest.yaml in it)"
    MODEL=$(cd "$MODEL" && pwd)
fi

# system packages: apt only for what is missing
pkgs="python3-venv"
case $WHEEL in *.tar.gz) pkgs="$pkgs build-essential python3-dev" ;; esac  # the compiled kernel
[ "$BROKER" = yes ] && pkgs="$pkgs mosquitto"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    say "apt-get install$missing"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
fi

# the venv and edgernn (the same version again is reinstalled: a rebuilt wheel takes effect)
[ -x $PREFIX/venv/bin/python ] || python3 -m venv $PREFIX/venv
spec=$WHEEL
[ -n "$EXTRAS" ] && spec="$WHEEL[$EXTRAS]"
$PREFIX/venv/bin/pip install -q --disable-pip-version-check "$spec"
$PREFIX/venv/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps "$WHEEL"
say "installed $($PREFIX/venv/bin/edgernn --version 2>/dev/null || basename "$WHEEL") in $PREFIX/venv"

# the model: a custom bundle is copied; the reference written into the config is where it went
ref=univariate
if [ -n "$MODEL" ]; then
    ref=$PREFIX/models/$(basename "$MODEL")
    mkdir -p $PREFIX/models
    rm -rf "$ref.new" && cp -r "$MODEL" "$ref.new" && chmod -R a+rX "$ref.new"
    rm -rf "$ref" && mv "$ref.new" "$ref"
    say "model copied to $ref"
fi

# the config: written once from the example; rewritten for --model only while it is still ours
mkdir -p $ETC
MARK="# written by deploy/install.sh"
if [ ! -f $ETC/edgernn.yaml ] || { [ -n "$MODEL" ] && head -1 $ETC/edgernn.yaml | grep -qx "$MARK"; }; then
    host=$(hostname -s)
    { echo "$MARK"; echo "# (once you edit it, remove the line above: install.sh then leaves this file alone)"
      sed "s|^node: pi-1 .*|node: $host|; s|client_id: edgernn-pi-1 .*|client_id: edgernn-$host|
           s|^    model: univariate .*|    model: $ref|" "$HERE/edgernn.example.yaml"
    } > $ETC/edgernn.yaml.new
    [ -f $ETC/edgernn.yaml ] && cp $ETC/edgernn.yaml $ETC/edgernn.yaml.bak
    mv $ETC/edgernn.yaml.new $ETC/edgernn.yaml
    say "config $ETC/edgernn.yaml (model: $ref)"
elif [ -n "$MODEL" ]; then
    say "WARNING: $ETC/edgernn.yaml is yours: set its pipelines' model: $ref by hand"
fi
[ -f $ETC/mqtt-password ] || install -m 0600 /dev/null $ETC/mqtt-password
install -m 0644 "$HERE/edgernn.service" /etc/systemd/system/edgernn.service
$PREFIX/venv/bin/edgernn check-config $ETC/edgernn.yaml

[ "$START" = yes ] || { say "not started (--no-start): systemctl enable --now edgernn"; exit 0; }
systemctl daemon-reload
systemctl enable edgernn
systemctl restart edgernn
systemctl --no-pager status edgernn || true
say "logs: journalctl -u edgernn -f"
