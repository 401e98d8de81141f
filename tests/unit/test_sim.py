"""The demo's judge: a fault is caught only by an alert raised inside it; everything else is a false alert."""

from __future__ import annotations

import pytest

from edgernn.sim import GRACE, Fault, Fleet


@pytest.fixture
def fleet():
    f = Fleet(n_sensors=6, n_readings=500, seed=3, first_fault=300)
    assert len(f.faults) == 3 and len(f.clean) == 3
    return f


def test_inside_the_fault_is_caught_with_its_delay(fleet):
    f = next(x for x in fleet.faults if x.end > x.start)
    v = fleet.judge(f.stream, f.start + 4)
    assert v.kind == "caught" and v.fault == f and v.delay == 4 and not v.false
    assert "4 reading(s) (40 s) after it started" in v.describe(fleet.period_s)
    assert fleet.judge(f.stream, f.end).kind == "caught"


def test_before_a_fault_and_after_it_ended_are_false_alerts(fleet):
    f = next(x for x in fleet.faults if x.end > x.start + GRACE)
    before = fleet.judge(f.stream, f.start - 1)
    assert before.kind == "before" and before.false and before.delay == 1
    after = fleet.judge(f.stream, f.end + 1)  # the return to normal of a stuck / drift fault
    assert after.kind == "after" and after.false and "return to normal" in after.describe(10.0)


def test_clean_streams_only_have_false_alerts(fleet):
    v = fleet.judge(fleet.clean[0], 400)
    assert v.kind == "clean" and v.false and "nothing injected" in v.describe(10.0)


def test_a_spike_has_a_short_stated_grace():
    spike = Fault("s", "spike", 100, 100)
    assert spike.catches(100) and spike.catches(100 + GRACE) and not spike.catches(101 + GRACE)
    assert not spike.catches(99)


@pytest.mark.parametrize("n", [1, 81, 5000])
def test_faults_stay_inside_the_recording(n):
    f = Fleet(n_sensors=4, n_readings=n + 300, seed=1, first_fault=300)
    assert all(0 <= x.start <= x.end < f.T for x in f.faults)
