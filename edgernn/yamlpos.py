"""YAML with the line of every key: what config errors (``FILE:LINE: key.path: message``) and a
model's ``detector_defaults`` errors point at. Below both config.py and settings.py."""

from __future__ import annotations

import re
from typing import Any

import yaml


class ConfigError(ValueError):
    """Config problems, one line each: ``FILE:LINE: key.path: message`` (``.messages``)."""

    def __init__(self, messages):
        self.messages = [messages] if isinstance(messages, str) else list(messages)
        super().__init__("\n".join(self.messages))


def file_line(source: str, lines: dict, path: str) -> str:
    """``FILE:LINE`` of a dotted key path (``pipelines[0].alerts.k``), from ``yaml_lines``' map."""
    probe = path
    while probe and probe not in lines:  # fall back to the nearest parent key that has a line
        parent = re.sub(r"(\.[^.\[\]]+|\[\d+\])$", "", probe)
        if parent == probe:
            break
        probe = parent
    return f"{source}:{lines.get(probe, 1)}"


def yaml_lines(text: str, source: str) -> tuple[Any, dict]:
    """Parse like ``yaml.safe_load`` and record the line of every key path."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError(f"{source}:{line}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}:1: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    lines: dict[str, int] = {}

    def walk(n, path):
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                p = f"{path}.{k.value}" if path else str(k.value)
                lines[p] = k.start_mark.line + 1
                walk(v, p)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                p = f"{path}[{i}]"
                lines[p] = v.start_mark.line + 1
                walk(v, p)

    if node is not None:
        walk(node, "")
    return data, lines
