"""Validate a daemon config and exit: 0 when it is usable, 2 with one ``FILE:LINE: key: message``
line per problem (every problem of the file, not only the first) when not.

Checks the YAML, every key and value, that the password source is readable (the password itself is
never printed), TLS files (the CA bundle is PEM, the client certificate and key load and match),
topic templates, and that every pipeline's model bundle loads (sha256 verified), its backend is
available, its detector settings and the model's detector_defaults are in range, and the payload
fields fit the model's features.

  edgernn check-config /etc/edgernn/edgernn.yaml
  edgernn check-config --schema > edgernn.schema.json     JSON Schema (draft 2020-12) for editors
"""

from __future__ import annotations

import json
import sys


def add_arguments(parser) -> None:
    parser.add_argument("config", nargs="?", help="daemon config (YAML)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing when the config is fine")
    parser.add_argument("--schema", action="store_true",
                        help="print the JSON Schema (draft 2020-12) of the config file and exit: point your "
                             "editor's YAML language server at it for completion and validation")


def run(args) -> int:
    from ..config import ConfigError, json_schema, load_config

    if getattr(args, "schema", False):
        print(json.dumps(json_schema(), indent=2))
        return 0
    if not args.config:
        print("edgernn check-config: give a config file (or --schema)", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        for line in exc.messages:
            print(f"error: {line}", file=sys.stderr)
        return 2
    from .common import build_pipelines, settings_origin

    pipes, errors = build_pipelines(cfg, "error")
    if errors:
        return 2
    if not args.quiet:
        print(f"{args.config}: OK")
        for line in cfg.summary():
            print(f"  {line}")
        for p in pipes:
            print(f"  pipeline {p.cfg.name!r} detector settings: {settings_origin(p)}")
    return 0
