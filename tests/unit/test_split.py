"""The fixed development / validation split: balanced per group, stable, order-free."""

from __future__ import annotations

import pytest

from edgernn.evaluate.split import parts, select


def test_balanced_per_group_and_independent_of_order():
    names = [f"catA/f{i}.csv" for i in range(7)] + [f"catB/g{i}.csv" for i in range(4)]
    p = parts(names)
    assert sum(p[n] == "dev" for n in names if n.startswith("catA")) == 4  # ceil(7 / 2)
    assert sum(p[n] == "dev" for n in names if n.startswith("catB")) == 2
    assert parts(reversed(names)) == p
    assert parts(names[:7]) == {n: p[n] for n in names[:7]}  # another group's files change nothing


def test_known_assignments_do_not_drift():
    # pinned so that a change of the rule is a visible decision (docs/QUALITY.md lists the parts)
    p = parts(["valve2/0.csv", "valve2/1.csv", "valve2/2.csv", "valve2/3.csv"])
    assert [n for n, v in sorted(p.items()) if v == "dev"] == ["valve2/0.csv", "valve2/1.csv"]


def test_select():
    class F:
        def __init__(self, name):
            self.name = name

    files = [F(f"c/{i}.csv") for i in range(5)]
    dev, val = select(files, "dev"), select(files, "validation")
    assert len(dev) == 3 and len(val) == 2 and not {f.name for f in dev} & {f.name for f in val}
    assert select(files, "all") == files
    with pytest.raises(ValueError, match="choose one of"):
        select(files, "test")
