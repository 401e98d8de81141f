#!/bin/sh
# Install edgernn as a systemd service (Debian / Raspberry Pi OS). Run as root from the repo root:
#   sudo deploy/install.sh [MODEL_DIR]
set -eu
MODEL=${1:-firmware_models/univariate}
apt-get install -y python3-venv build-essential python3-dev mosquitto  # compiler: the fast per-reading path (edgernn/scalar.py)
python3 -m venv /opt/edgernn/venv
/opt/edgernn/venv/bin/pip install --upgrade pip
/opt/edgernn/venv/bin/pip install .
mkdir -p /opt/edgernn/models /etc/edgernn
cp -r "$MODEL" /opt/edgernn/models/
[ -f /etc/edgernn/edgernn.yaml ] || sed "s|^node: pi-1 .*|node: $(hostname -s)|; s|client_id: edgernn-pi-1 .*|client_id: edgernn-$(hostname -s)|" \
    deploy/edgernn.example.yaml > /etc/edgernn/edgernn.yaml
[ -f /etc/edgernn/mqtt-password ] || install -m 0600 /dev/null /etc/edgernn/mqtt-password
install -m 0644 deploy/edgernn.service /etc/systemd/system/edgernn.service
/opt/edgernn/venv/bin/edgernn check-config /etc/edgernn/edgernn.yaml
systemctl daemon-reload
systemctl enable --now edgernn
systemctl --no-pager status edgernn
