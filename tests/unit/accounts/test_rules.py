import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from library.accounts import rules

NOW = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.timezone.utc)


def ago(seconds: float) -> dt.datetime:
    return NOW - dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("failures", "limit", "allowed", "retry_after"),
    [
        ([], 5, True, 0),
        ([ago(10)] * 4, 5, True, 0),
        ([ago(50), ago(40), ago(30), ago(20), ago(10)], 5, False, 10),  # the oldest leaves in 10 s
        ([ago(120)] * 5, 5, True, 0),  # all outside the minute
        ([ago(59.5)] * 5, 5, False, 1),  # never "retry in 0 seconds"
        ([ago(70), ago(30), ago(20), ago(10), ago(5)], 5, True, 0),
    ],
)
def test_throttle(failures, limit, allowed, retry_after):
    decision = rules.throttle(failures, NOW, limit)
    assert (decision.allowed, decision.retry_after_seconds) == (allowed, retry_after)


@given(st.lists(st.floats(0, 300), max_size=30), st.integers(1, 10))
def test_throttle_never_counts_more_than_a_minute(seconds_ago, limit):
    decision = rules.throttle([ago(s) for s in seconds_ago], NOW, limit)
    in_window = sum(1 for s in seconds_ago if s < 60)
    assert decision.allowed == (in_window < limit)
    if not decision.allowed:
        assert 1 <= decision.retry_after_seconds <= 60


@pytest.mark.parametrize(
    ("pin", "problem"),
    [("1234", None), ("123456789012", None), ("123", "pin_format"), ("12a4", "pin_format"),
     ("", "pin_format"), ("1234567890123", "pin_format"), ("１２３４", "pin_format")],
)
def test_pin_format(pin, problem):
    assert rules.pin_problem(pin) == problem


def test_a_guardian_acts_for_linked_children_only():
    assert rules.may_act_for(1, 1, [])
    assert rules.may_act_for(1, 2, [2, 3])
    assert not rules.may_act_for(1, 4, [2, 3])


@pytest.mark.parametrize(
    ("guardian", "category", "child", "problem"),
    [(1, "adult", 2, None), (1, "senior", 2, None), (1, "child", 2, "guardian_must_be_adult"),
     (1, "adult", 1, "guardian_of_self")],
)
def test_guardian_link(guardian, category, child, problem):
    assert rules.guardian_link_problem(guardian, category, child) == problem


@pytest.mark.parametrize(
    ("birth", "day", "age"),
    [(dt.date(2021, 3, 8), dt.date(2026, 3, 7), 4), (dt.date(2021, 3, 8), dt.date(2026, 3, 8), 5),
     (dt.date(2020, 2, 29), dt.date(2025, 2, 28), 4), (dt.date(2020, 2, 29), dt.date(2025, 3, 1), 5)],
)
def test_age_on(birth, day, age):
    assert rules.age_on(birth, day) == age


def test_default_card_expiry():
    assert rules.default_card_expiry(dt.date(2026, 11, 28)) == dt.date(2029, 11, 28)
    assert rules.default_card_expiry(dt.date(2028, 2, 29)) == dt.date(2031, 2, 28)
