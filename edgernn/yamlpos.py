"""YAML with the line of every key: what config errors (``FILE:LINE: key.path: message``) and a
model's ``detector_defaults`` errors point at. Below both config.py and settings.py.

A config file is small and flat, so what a hand-written one never needs is refused with one line
instead of a crash or a hang: a duplicate key (PyYAML lets the last one win), nesting deeper than
``MAX_DEPTH``, an alias inside its own anchor (``a: &a [*a]``), and anchors / aliases that expand
to more than ``MAX_VALUES`` values (a "billion laughs" file). Plain anchors and merge keys
(``<<: *base``) stay allowed.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

MAX_DEPTH = 64  # levels of nesting (a config file has about 5)
MAX_VALUES = 100_000  # keys, values and list items once aliases are expanded


class ConfigError(ValueError):
    """Config problems, one line each: ``FILE:LINE: key.path: message`` (``.messages``)."""

    def __init__(self, messages):
        self.messages = [messages] if isinstance(messages, str) else list(messages)
        super().__init__("\n".join(self.messages))


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that no config file needs (too deep, an alias bomb): one line, no traceback."""


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` whose composer refuses nesting deeper than MAX_DEPTH (PyYAML's composer is
    recursive: a few thousand ``[`` would end in a RecursionError)."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(problem=f"nested deeper than {MAX_DEPTH} levels",
                               problem_mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _one_line(text) -> str:
    return " ".join(str(text).split())


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
    """Parse like ``yaml.safe_load`` and record the line of every key path. Raises ConfigError (one
    line per problem) for invalid YAML, duplicate keys, and what no config file needs (see above)."""
    loader = None
    try:
        loader = _Loader(text)  # the reader checks every character here: a NUL byte is a ReaderError
        node = loader.get_single_node()
        lines = _walk(loader, node, source)  # before constructing: refuses alias bombs and cycles
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        raise ConfigError(f"{source}:{exc.problem_mark.line + 1}: {exc.problem} (refused in a config file)") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError(f"{source}:{line}: not valid YAML: {_one_line(exc.problem or exc)}") from None
    except yaml.reader.ReaderError as exc:  # no mark: its position is a character index
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        what = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        raise ConfigError(f"{source}:{line}: not valid YAML: unacceptable character {what} ({exc.reason})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}:1: not valid YAML: {_one_line(exc)}") from None
    except RecursionError:  # the limits make this unreachable; never a traceback all the same
        raise ConfigError(f"{source}:1: nested too deeply (refused in a config file)") from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines


_MERGE = "tag:yaml.org,2002:merge"


def _walk(loader: _Loader, root, source: str) -> dict:
    """The line of every key path, aliases expanded (at most MAX_VALUES values, MAX_DEPTH levels, no
    cycle); a duplicate key of a mapping is a ConfigError naming its line and path."""
    lines: dict[str, int] = {}
    dups: dict[str, None] = {}  # messages, in order, once each (an aliased mapping is walked again)
    on_path: set[int] = set()  # the nodes being walked: meeting one again is a cycle
    count = 0

    def refuse(path: str, what: str):  # at the top-level key: deeper lines are where the anchors are
        top = re.match(r"[^.\[]*", path).group()
        where = f"{source}:{lines[top]}: {top}" if top in lines else f"{source}:1"
        raise ConfigError(f"{where}: {what} (refused in a config file)")

    def walk(n, path, depth):
        nonlocal count
        count += 1
        if count > MAX_VALUES:
            refuse(path, f"anchors and aliases expand to more than {MAX_VALUES} values")
        if depth > MAX_DEPTH:
            refuse(path, f"aliases nest deeper than {MAX_DEPTH} levels")
        if id(n) in on_path:
            refuse(path, "an alias inside its own anchor (a structure that contains itself)")
        if isinstance(n, yaml.MappingNode):
            on_path.add(id(n))
            seen: dict = {}
            for k, v in n.value:
                p = f"{path}.{k.value}" if path else str(k.value)
                line = lines[p] = k.start_mark.line + 1
                key = loader.construct_object(k) if isinstance(k, yaml.ScalarNode) and k.tag != _MERGE else None
                try:
                    if key is not None and key in seen:
                        dups[f"{source}:{line}: {p}: duplicate key (first on line {seen[key]}); "
                             "YAML would silently keep only the last"] = None
                    elif key is not None:
                        seen[key] = line
                except TypeError:  # unhashable: the constructor reports it
                    pass
                walk(v, p, depth + 1)
            on_path.discard(id(n))
        elif isinstance(n, yaml.SequenceNode):
            on_path.add(id(n))
            for i, v in enumerate(n.value):
                p = f"{path}[{i}]"
                lines[p] = v.start_mark.line + 1
                walk(v, p, depth + 1)
            on_path.discard(id(n))

    if root is not None:
        walk(root, "", 0)
    if dups:
        raise ConfigError(list(dups))
    return lines
