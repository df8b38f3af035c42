"""Who manages a reader's data: the reader from 14, a linked guardian always (no database)."""

import datetime as dt

import pytest

from library.privacy import rules

TODAY = dt.date(2026, 12, 7)
MOTHER = rules.Reader(1, "adult", dt.date(1988, 5, 12))
CHILD_5 = rules.Reader(2, "child", dt.date(2021, 3, 8))
TEEN_14 = rules.Reader(3, "child", dt.date(2012, 12, 7))      # 14 today
TEEN_13 = rules.Reader(4, "child", dt.date(2012, 12, 8))      # 14 tomorrow
CHILD_NO_BIRTHDAY = rules.Reader(5, "child", None)


@pytest.mark.parametrize("actor, subject, children, refusal", [
    (MOTHER, 1, frozenset(), None),                        # herself
    (MOTHER, 2, frozenset({2}), None),                     # her linked child
    (MOTHER, 9, frozenset({2}), "not_guardian"),           # someone else's child
    (CHILD_5, 2, frozenset(), "managed_by_guardian"),      # a 5-year-old's own sign-in
    (TEEN_13, 4, frozenset(), "managed_by_guardian"),
    (TEEN_14, 3, frozenset(), None),                       # from 14 on, their own
    (CHILD_NO_BIRTHDAY, 5, frozenset(), "managed_by_guardian"),
])
def test_who_may_change_a_readers_details_and_choices(actor, subject, children, refusal):
    assert rules.may_manage(actor, subject, children, TODAY) == refusal


def test_a_young_child_still_sees_their_own_data():
    assert rules.may_see(CHILD_5, 2, frozenset())
    assert not rules.may_see(CHILD_5, 1, frozenset())


def test_an_account_closes_only_when_the_books_are_back():
    assert rules.closure_problem(0) is None
    assert rules.closure_problem(2) == "closure_loans_open"
