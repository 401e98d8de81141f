"""Validate a daemon config and exit: 0 when it is usable, 2 with FILE:LINE: key: message when not.

Checks the YAML, every key and value, that the password source is readable (the password itself is
never printed), TLS files, topic templates, and that every pipeline's model bundle loads (sha256
verified), its backend is available and the payload fields fit the model's features.
"""

from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("config", help="daemon config (YAML)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing when the config is fine")


def run(args) -> int:
    from ..config import ConfigError, load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from ..daemon import PipelineError, build_pipeline

    errors = 0
    for i, p in enumerate(cfg.pipelines):
        try:
            build_pipeline(cfg, p, cfg.limits)
        except PipelineError as exc:
            key = exc.key
            print(f"error: {cfg.where(f'pipelines[{i}].{key}')}: pipelines[{i}].{key}: {exc}", file=sys.stderr)
            errors += 1
    if errors:
        return 2
    if not args.quiet:
        print(f"{args.config}: OK")
        for line in cfg.summary():
            print(f"  {line}")
    return 0
