"""The development / validation split of the public benchmark files (issue 11's protocol).

Rule: group the files by the folder part of their benchmark name (NAB: the category of
"realKnownCause/nyc_taxi.csv"; SKAB: "valve1", "valve2", "other" of "valve1/3.csv"), order each
group by sha256 of the full name (hex), and put the first ceil(n / 2) of each group in the
development part, the rest in the validation part. No list to keep, balanced per group, the same on
every machine. Choices (settings, models, thresholds) are made on the development part; the
validation part is run once per decision and reported (docs/QUALITY.md lists both parts).
"""

from __future__ import annotations

import hashlib

PARTS = ("all", "dev", "validation")


def parts(names) -> dict:
    """{name: 'dev' | 'validation'} for benchmark file names (see the module's rule)."""
    groups: dict[str, list[str]] = {}
    for n in dict.fromkeys(names):
        groups.setdefault(n.split("/")[0] if "/" in n else "", []).append(n)
    out = {}
    for members in groups.values():
        ordered = sorted(members, key=lambda n: hashlib.sha256(n.encode("utf-8")).hexdigest())
        cut = (len(ordered) + 1) // 2
        out.update({n: ("dev" if i < cut else "validation") for i, n in enumerate(ordered)})
    return out


def select(items: list, part: str, name=lambda item: item.name) -> list:
    """The items of ``part`` ('all', 'dev' or 'validation'), in their order."""
    if part not in PARTS:
        raise ValueError(f"part {part!r}: choose one of {', '.join(PARTS)}")
    if part == "all":
        return list(items)
    which = parts(name(it) for it in items)
    return [it for it in items if which[name(it)] == part]
