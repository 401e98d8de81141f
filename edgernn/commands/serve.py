"""Run the MQTT daemon: subscribe to sensor topics, score every reading, publish alerts.

    edgernn serve -c /etc/edgernn/edgernn.yaml

Topics (prefix edgernn/{node}): alerts on .../alerts/{stream} (QoS 1), retained online/offline
on .../status (last will), stats every stats.interval_s on .../stats. SIGTERM or Ctrl-C: finish the
batch, snapshot the state, publish offline, exit 0. Under systemd (Type=notify) it sends READY,
WATCHDOG, STOPPING and a STATUS line (running, or why the broker cannot be reached). Validate a
config without running: edgernn check-config CONFIG.yaml

Several pipelines may subscribe to the same or overlapping filters (a Zigbee2MQTT / Tasmota device
reporting several fields in one payload: one pipeline per field): the broker gets one subscription
per filter, and every pipeline whose filter matches gets each message once.

Exit status: 0 stopped cleanly; 1 stopped but the final snapshot could not be written (logged at
ERROR); 2 a configuration error that a restart cannot fix (bad config, model, TLS file that is not
PEM or a key that does not match its certificate, a state.dir where snapshots cannot be written):
one line naming the file, line and key, no traceback. A unit should not restart on 2
(RestartPreventExitStatus=2). An unreachable broker or a failed TLS handshake (unknown CA) is not
an exit: it is logged with its reason and retried with backoff while the daemon stays up.
"""

from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("-c", "--config", required=True, help="daemon config (YAML)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                        help="override log.level from the config")
    from .common import add_setting_arguments

    add_setting_arguments(parser, title="detector settings of every pipeline",
                          note="override the config's pipelines[] keys of the same name (precedence: the schema "
                               "default < the model's detector_defaults < the config < these flags)")


def run(args) -> int:
    from dataclasses import replace

    from ..config import ConfigError, load_config
    from .common import settings_from_args

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        for line in exc.messages:  # every problem of the file, one line each
            print(f"edgernn serve: {line}", file=sys.stderr)
        return 2
    overrides = settings_from_args(args, "serve")
    if overrides:
        cfg = replace(cfg, pipelines=tuple(p.with_overrides(overrides) for p in cfg.pipelines))
    from ..logs import setup_logging

    setup_logging(args.log_level or cfg.log.level)
    from ..daemon import Daemon
    from .common import build_pipelines

    pipes, errors = build_pipelines(cfg, "edgernn serve")
    if errors:
        return 2
    try:
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"edgernn serve: {cfg.where('state.dir')}: state.dir: cannot create {cfg.state_dir}: {exc.strerror}",
              file=sys.stderr)
        return 2
    from ..metrics import MetricsUnavailable
    from ..tls import TlsFileError

    try:
        daemon = Daemon(cfg, pipelines=pipes)
    except (TlsFileError, MetricsUnavailable) as exc:  # permanent: no traceback and no restart loop
        print(f"edgernn serve: {cfg.where(exc.key)}: {exc.key}: {exc}", file=sys.stderr)
        return 2
    for _pipe, why in daemon.check_state():
        print(f"edgernn serve: {cfg.where('state.dir')}: state.dir: {why}", file=sys.stderr)
        return 2
    return daemon.run()
