"""Circulation decisions as tables of cases, plus properties: which rule applies, who may
borrow, due dates on open days, renewals, where a returned copy goes, holds and fines."""

import datetime as dt
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from library.branches.public_holidays import public_calendar
from library.branches.rules import BranchCalendar, LocalException, Period, day_status
from library.errors import MESSAGES
from library.loans import rules
from library.loans.rules import (
    OVERRIDABLE,
    UNAVAILABLE_REASONS,
    ItemFacts,
    LoanFacts,
    PatronFacts,
    Refusal,
    Route,
    Terms,
    WaitingHold,
    anonymise_before,
    blocking,
    checkout_refusals,
    choose_rule,
    due_date,
    fine_cents,
    hold_refusals,
    hold_shelf_expiry,
    overdue_days,
    renewal,
    route_returned_copy,
    scope_of,
)

D = dt.date
T = dt.time
HOURS = (Period(T(9, 0), T(17, 0)),)
PUBLIC = public_calendar(D(2025, 1, 1), D(2028, 12, 31))

# Zhenxing: open Tuesday to Sunday, closed Mondays and on public holidays.
ZHENXING = BranchCalendar(weekly={weekday: HOURS for weekday in range(1, 7)})
# Office hours, Monday to Friday: open on make-up working Saturdays and Sundays.
OFFICE = BranchCalendar(weekly={weekday: HOURS for weekday in range(5)})
# The central library stays open through public holidays.
CENTRAL = BranchCalendar(weekly={weekday: HOURS for weekday in range(7)}, closes_on_public_holidays=False)
# Closed for works: no opening hours at all.
NO_HOURS = BranchCalendar(weekly={})

TODAY = D(2026, 11, 24)  # a Tuesday
READER = 1
OTHER_READER = 2
ZX = 7  # the Zhenxing branch's id
CENTRAL_ID = 1


def patron(**changes) -> PatronFacts:
    values = {"id": READER, "category": "adult", "expires_on": D(2030, 1, 1), "block_reason": None, "open_loans": 0}
    return PatronFacts(**{**values, **changes})


def terms(**changes) -> Terms:
    return Terms(**{"id": 1, "scope": "*|*|*", **changes})


def codes(refusals) -> list[str]:
    return [refusal.code for refusal in refusals]


# Every code a table below expects, so the last test can prove each code of the module is tested.
COVERED: set[str] = set()


def expecting(table):
    for row in table:
        COVERED.update(row[-1])
    return table


# --- which rule applies ---------------------------------------------------------------

def rule(id_, branch_code=None, category=None, item_type=None) -> Terms:
    branch_id = {"ZX": ZX, "OT": 8}.get(branch_code) if branch_code else None
    return Terms(id=id_, scope=scope_of(branch_code, category, item_type), branch_id=branch_id,
                 patron_category=category, item_type=item_type)


NETWORK = rule(1)
ALL_RULES = [
    NETWORK,
    rule(2, item_type="picture_book"),
    rule(3, category="child"),
    rule(4, category="child", item_type="picture_book"),
    rule(5, "ZX"),
    rule(6, "ZX", item_type="picture_book"),
    rule(7, "ZX", category="child"),
    rule(8, "ZX", "child", "picture_book"),
    rule(9, "OT", "child", "picture_book"),
]


@pytest.mark.parametrize(
    ("name", "available", "branch_id", "category", "item_type", "chosen"),
    [
        ("the exact rule", ALL_RULES, ZX, "child", "picture_book", "ZX|child|picture_book"),
        ("branch and category", ALL_RULES, ZX, "child", "board_book", "ZX|child|*"),
        ("branch and item type", ALL_RULES, ZX, "adult", "picture_book", "ZX|*|picture_book"),
        ("the branch alone", ALL_RULES, ZX, "adult", "board_book", "ZX|*|*"),
        ("another branch: category and type", ALL_RULES, 99, "child", "picture_book", "*|child|picture_book"),
        ("category outweighs item type", ALL_RULES[:4], 99, "child", "board_book", "*|child|*"),
        ("category outweighs item type (both match)", [NETWORK, ALL_RULES[1], ALL_RULES[2]], 99, "child",
         "picture_book", "*|child|*"),
        ("branch outweighs category and type", [NETWORK, ALL_RULES[3], ALL_RULES[4]], ZX, "child", "picture_book",
         "ZX|*|*"),
        ("the network rule as last resort", ALL_RULES, 99, "adult", "board_book", "*|*|*"),
        ("nothing matches", [rule(9, "OT")], ZX, "adult", "board_book", None),
        ("no rules at all", [], ZX, "adult", "board_book", None),
    ],
)
def test_choose_rule(name, available, branch_id, category, item_type, chosen):
    result = choose_rule(available, branch_id, category, item_type)
    assert (result.terms.scope if result else None) == chosen, name


def test_choose_rule_lists_every_matching_rule_most_specific_first():
    result = choose_rule(reversed(ALL_RULES), ZX, "child", "picture_book")
    assert result.considered == (
        "ZX|child|picture_book", "ZX|child|*", "ZX|*|picture_book", "ZX|*|*",
        "*|child|picture_book", "*|child|*", "*|*|picture_book", "*|*|*",
    )
    assert "OT|child|picture_book" not in result.considered


rule_shapes = st.builds(
    lambda branch, category, item_type: (branch, category, item_type),
    st.sampled_from([None, "ZX", "OT"]), st.sampled_from([None, "adult", "child"]),
    st.sampled_from([None, "picture_book", "board_book"]),
)


@settings(max_examples=200, deadline=None)
@given(shapes=st.lists(rule_shapes, unique=True, max_size=12), branch_id=st.sampled_from([ZX, 8, 99]),
       category=st.sampled_from(["adult", "child", "senior"]),
       item_type=st.sampled_from(["picture_book", "board_book", "dvd"]), data=st.data())
def test_choose_rule_has_no_ties_and_ignores_order(shapes, branch_id, category, item_type, data):
    available = [rule(number, *shape) for number, shape in enumerate(shapes, start=1)]
    matching = [r for r in available if r.matches(branch_id, category, item_type)]
    # Rules with distinct scopes that match the same loan never weigh the same.
    assert len({r.specificity() for r in matching}) == len(matching)
    result = choose_rule(available, branch_id, category, item_type)
    if not matching:
        assert result is None
        return
    assert result.terms.specificity() == max(r.specificity() for r in matching)
    assert sorted(result.considered) == sorted(r.scope for r in matching)
    assert result.considered[0] == result.terms.scope
    shuffled = data.draw(st.permutations(available))
    assert choose_rule(shuffled, branch_id, category, item_type) == result


# --- may this reader borrow this copy --------------------------------------------------

CHECKOUT_CASES = expecting([
    ("an available copy", patron(), ItemFacts("available", "picture_book"), terms(), []),
    ("a copy still in processing", patron(), ItemFacts("in_processing", "picture_book"), terms(), []),
    ("a card expiring today still works", patron(expires_on=TODAY), ItemFacts("available", "picture_book"),
     terms(), []),
    ("one loan below the limit", patron(open_loans=9), ItemFacts("available", "picture_book"), terms(max_loans=10),
     []),
    ("on the hold shelf for this very reader", patron(),
     ItemFacts("on_hold_shelf", "picture_book", held_for_patron_id=READER), terms(), []),
    ("a blocked card", patron(block_reason="lost card"), ItemFacts("available", "picture_book"), terms(),
     ["card_blocked"]),
    ("an expired card", patron(expires_on=TODAY - dt.timedelta(days=1)), ItemFacts("available", "picture_book"),
     terms(), ["card_expired"]),
    ("at the loan limit", patron(open_loans=10), ItemFacts("available", "picture_book"), terms(max_loans=10),
     ["loan_limit"]),
    ("over the loan limit", patron(open_loans=12), ItemFacts("available", "picture_book"), terms(max_loans=10),
     ["loan_limit"]),
    ("reference only", patron(), ItemFacts("available", "picture_book"), terms(loanable=False),
     ["item_not_loanable"]),
    ("on the hold shelf for another reader", patron(),
     ItemFacts("on_hold_shelf", "picture_book", held_for_patron_id=OTHER_READER), terms(), ["item_held_for_other"]),
    ("already on loan", patron(), ItemFacts("on_loan", "picture_book"), terms(), ["item_on_loan"]),
    ("in transit", patron(), ItemFacts("in_transit", "picture_book"), terms(), ["item_in_transit"]),
    ("withdrawn", patron(), ItemFacts("withdrawn", "picture_book"), terms(), ["item_withdrawn"]),
    ("missing", patron(), ItemFacts("missing", "picture_book"), terms(), ["item_unavailable"]),
    ("lost", patron(), ItemFacts("lost", "picture_book"), terms(), ["item_unavailable"]),
    ("damaged", patron(), ItemFacts("damaged", "picture_book"), terms(), ["item_unavailable"]),
    ("on the hold shelf, nobody named", patron(), ItemFacts("on_hold_shelf", "picture_book"), terms(),
     ["item_unavailable"]),
    ("every reader and policy reason at once, copy held for another",
     patron(block_reason="unpaid fines", expires_on=TODAY - dt.timedelta(days=30), open_loans=3),
     ItemFacts("on_hold_shelf", "picture_book", held_for_patron_id=OTHER_READER), terms(max_loans=3, loanable=False),
     ["card_blocked", "card_expired", "loan_limit", "item_not_loanable", "item_held_for_other"]),
    ("every reader and policy reason at once, copy on loan",
     patron(block_reason="unpaid fines", expires_on=TODAY - dt.timedelta(days=1), open_loans=5),
     ItemFacts("on_loan", "picture_book"), terms(max_loans=2, loanable=False),
     ["card_blocked", "card_expired", "loan_limit", "item_not_loanable", "item_on_loan"]),
    ("an expired card and a withdrawn copy", patron(expires_on=D(2020, 1, 1)), ItemFacts("withdrawn", "dvd"),
     terms(), ["card_expired", "item_withdrawn"]),
])


@pytest.mark.parametrize(("name", "reader", "item", "policy", "expected"), CHECKOUT_CASES)
def test_checkout_refusals(name, reader, item, policy, expected):
    assert codes(checkout_refusals(reader, item, policy, TODAY)) == expected, name


def test_checkout_refusals_carry_their_details():
    refusals = checkout_refusals(
        patron(block_reason="lost card", expires_on=D(2026, 11, 1), open_loans=4),
        ItemFacts("available", "picture_book"), terms(max_loans=4), TODAY)
    assert refusals == [
        Refusal("card_blocked", {"reason": "lost card"}),
        Refusal("card_expired", {"day": "2026-11-01"}),
        Refusal("loan_limit", {"limit": 4}),
    ]


# --- overrides -------------------------------------------------------------------------

def test_the_overridable_reasons_are_exactly_these():
    assert OVERRIDABLE == {"card_expired", "loan_limit", "item_not_loanable", "renewal_limit", "too_overdue"}


@pytest.mark.parametrize("code", sorted(OVERRIDABLE))
@pytest.mark.parametrize(("comment", "set_aside"), [
    ("Reader renews the card tomorrow", True), ("  x  ", True), (None, False), ("", False), ("   \n\t", False),
])
def test_blocking_sets_aside_overridable_reasons_only_with_a_written_comment(code, comment, set_aside):
    assert blocking([Refusal(code)], comment) == ([] if set_aside else [Refusal(code)])


NEVER_OVERRIDABLE = ["hold_waiting", "item_held_for_other", "card_blocked", "item_on_loan", "item_in_transit",
                     "item_withdrawn", "item_unavailable", "renewal_not_needed"]


@pytest.mark.parametrize("code", NEVER_OVERRIDABLE)
def test_blocking_never_sets_aside_holds_blocks_or_missing_copies(code):
    assert not Refusal(code).overridable
    assert blocking([Refusal(code)], "The manager says yes") == [Refusal(code)]


def test_blocking_keeps_the_standing_reasons_in_order():
    refusals = [Refusal("card_blocked", {"reason": "x"}), Refusal("card_expired"), Refusal("loan_limit"),
                Refusal("item_held_for_other"), Refusal("hold_waiting")]
    assert codes(blocking(refusals, "ok")) == ["card_blocked", "item_held_for_other", "hold_waiting"]
    assert blocking(refusals, None) == refusals
    assert blocking([], "ok") == []


@given(chosen=st.lists(st.sampled_from(sorted(OVERRIDABLE) + NEVER_OVERRIDABLE)), comment=st.none() | st.text())
def test_blocking_never_invents_or_reorders_reasons(chosen, comment):
    refusals = [Refusal(code) for code in chosen]
    standing = blocking(refusals, comment)
    assert standing == [r for r in refusals if r in standing]  # a subsequence, in order
    assert all(r in standing for r in refusals if not r.overridable)
    if not (comment and comment.strip()):
        assert standing == refusals


# --- due dates -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "start", "days", "calendar", "expected"),
    [
        ("lands on an open Tuesday", D(2026, 11, 3), 21, ZHENXING, D(2026, 11, 24)),
        ("lands on the weekly Monday closing", D(2026, 11, 3), 6, ZHENXING, D(2026, 11, 10)),
        ("lands on a Sunday, open at Zhenxing", D(2026, 11, 1), 28, ZHENXING, D(2026, 11, 29)),
        ("no days: due today", TODAY, 0, ZHENXING, TODAY),
        ("National Day 1 October", D(2026, 9, 3), 28, ZHENXING, D(2026, 10, 8)),
        ("the Sunday inside the Golden Week", D(2026, 9, 6), 28, ZHENXING, D(2026, 10, 8)),
        ("the last day of the Golden Week", D(2026, 9, 9), 28, ZHENXING, D(2026, 10, 8)),
        ("the day after the Golden Week", D(2026, 9, 10), 28, ZHENXING, D(2026, 10, 8)),
        ("National Day at a branch that stays open", D(2026, 9, 3), 28, CENTRAL, D(2026, 10, 1)),
        ("a make-up Saturday is open at an office-hours branch", D(2026, 9, 12), 28, OFFICE, D(2026, 10, 10)),
        ("a make-up Sunday is open at an office-hours branch", D(2026, 8, 23), 28, OFFICE, D(2026, 9, 20)),
        ("an ordinary Saturday is not", D(2026, 10, 31), 28, OFFICE, D(2026, 11, 30)),
        ("Golden Week at an office-hours branch", D(2026, 9, 3), 28, OFFICE, D(2026, 10, 8)),
        ("a local closure", TODAY, 7, BranchCalendar(ZHENXING.weekly, {
            D(2026, 12, 1): LocalException(False, "停电", "Power cut"),
            D(2026, 12, 2): LocalException(False, "停电", "Power cut"),
        }), D(2026, 12, 3)),
        ("a local closure before a Monday", D(2026, 11, 1), 28, BranchCalendar(ZHENXING.weekly, {
            D(2026, 11, 29): LocalException(False)}), D(2026, 12, 1)),
        ("a special opening on a Monday", TODAY, 6, BranchCalendar(ZHENXING.weekly, {
            D(2026, 11, 30): LocalException(True, "盘点", "Stocktaking")}), D(2026, 11, 30)),
        ("a special opening inside the Golden Week", D(2026, 9, 3), 30, BranchCalendar(ZHENXING.weekly, {
            D(2026, 10, 3): LocalException(True)}), D(2026, 10, 3)),
        ("a branch with no hours keeps the plain date", D(2026, 11, 2), 28, NO_HOURS, D(2026, 11, 30)),
        ("no hours, even on National Day", D(2026, 9, 3), 28, NO_HOURS, D(2026, 10, 1)),
    ],
)
def test_due_date(name, start, days, calendar, expected):
    assert due_date(start, days, calendar, PUBLIC) == expected, name


weekdays_open = st.sets(st.integers(0, 6), min_size=1)


@st.composite
def calendars(draw, around: dt.date):
    """Weekly hours with at least one open weekday, some local exceptions near `around`."""
    weekly = {weekday: HOURS for weekday in draw(weekdays_open)}
    exceptions = draw(st.dictionaries(
        st.dates(around - dt.timedelta(days=10), around + dt.timedelta(days=60)),
        st.builds(LocalException, st.booleans()), max_size=15))
    return BranchCalendar(weekly, exceptions, closes_on_public_holidays=draw(st.booleans()))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), start=st.dates(D(2025, 1, 1), D(2027, 12, 31)), days=st.integers(0, 120))
def test_a_due_date_is_an_open_day_never_early(data, start, days):
    plain = start + dt.timedelta(days=days)
    calendar = data.draw(calendars(plain))
    due = due_date(start, days, calendar, PUBLIC)
    assert due >= plain >= start
    assert day_status(due, calendar, PUBLIC).is_open
    skipped = (plain + dt.timedelta(days=n) for n in range((due - plain).days))
    assert not any(day_status(day, calendar, PUBLIC).is_open for day in skipped)


# --- renewals --------------------------------------------------------------------------

def loan(due_in: int, renewals: int = 0) -> LoanFacts:
    return LoanFacts(TODAY + dt.timedelta(days=due_in), renewals)


RENEWAL_CASES = expecting([
    # name, loan, reader, policy, others waiting, new due date, refusals
    ("renewed 28 days from today", loan(3), patron(), terms(), 0, D(2026, 12, 22), []),
    ("overdue but within the limit", loan(-30), patron(), terms(), 0, D(2026, 12, 22), []),
    ("the last renewal allowed", loan(3, renewals=1), patron(), terms(max_renewals=2), 0, D(2026, 12, 22), []),
    ("someone is waiting", loan(3), patron(), terms(), 2, D(2026, 12, 22), ["hold_waiting"]),
    ("renewed too often", loan(3, renewals=2), patron(), terms(max_renewals=2), 0, D(2026, 12, 22),
     ["renewal_limit"]),
    ("no renewals at all", loan(3), patron(), terms(max_renewals=0), 0, D(2026, 12, 22), ["renewal_limit"]),
    ("too overdue", loan(-31), patron(), terms(), 0, D(2026, 12, 22), ["too_overdue"]),
    ("a blocked card", loan(3), patron(block_reason="lost card"), terms(), 0, D(2026, 12, 22), ["card_blocked"]),
    ("an expired card", loan(3), patron(expires_on=TODAY - dt.timedelta(days=1)), terms(), 0, D(2026, 12, 22),
     ["card_expired"]),
    ("the copy became reference only", loan(3), patron(), terms(loanable=False), 0, D(2026, 12, 22),
     ["item_not_loanable"]),
    ("renewing on the day of checkout", loan(28), patron(), terms(), 0, D(2026, 12, 22), ["renewal_not_needed"]),
    ("an early renewal never shortens a loan", loan(40), patron(), terms(), 0, D(2027, 1, 3),
     ["renewal_not_needed"]),
    ("every reason at once, overdue",
     loan(-45, renewals=3), patron(block_reason="unpaid fines", expires_on=D(2026, 1, 1)),
     terms(max_renewals=3, loanable=False), 1, D(2026, 12, 22),
     ["card_blocked", "card_expired", "hold_waiting", "renewal_limit", "too_overdue", "item_not_loanable"]),
    ("every reason at once, too early",
     loan(35, renewals=2), patron(block_reason="unpaid fines", expires_on=D(2026, 1, 1)),
     terms(max_renewals=2, loanable=False), 4, D(2026, 12, 29),
     ["card_blocked", "card_expired", "hold_waiting", "renewal_limit", "item_not_loanable", "renewal_not_needed"]),
    ("from the due date while it is ahead", loan(3), patron(), terms(renew_from="due_date"), 0, D(2026, 12, 25),
     []),
    ("from the due date, due today", loan(0), patron(), terms(renew_from="due_date"), 0, D(2026, 12, 22), []),
    ("from the due date, but overdue: from today", loan(-5), patron(), terms(renew_from="due_date"), 0,
     D(2026, 12, 22), []),
    ("overdue renews from today", loan(-20), patron(), terms(renewal_days=14), 0, D(2026, 12, 8), []),
    ("a renewal landing on a Monday moves to Tuesday", loan(3), patron(), terms(renewal_days=27), 0,
     D(2026, 12, 22), []),
])


@pytest.mark.parametrize(("name", "old", "reader", "policy", "waiting", "new_due_on", "expected"), RENEWAL_CASES)
def test_renewal(name, old, reader, policy, waiting, new_due_on, expected):
    decision = renewal(old, reader, policy, waiting, TODAY, ZHENXING, PUBLIC)
    assert (codes(decision.refusals), decision.new_due_on) == (expected, new_due_on), name
    assert decision.allowed == (not expected)


def test_a_renewal_into_the_golden_week_moves_past_it():
    decision = renewal(LoanFacts(D(2026, 9, 12), 0), patron(), terms(renewal_days=21), 0, D(2026, 9, 10),
                       ZHENXING, PUBLIC)
    assert decision.allowed and decision.new_due_on == D(2026, 10, 8)


def test_renewal_refusals_carry_their_details():
    decision = renewal(loan(-40, renewals=2), patron(), terms(max_renewals=2), 3, TODAY, ZHENXING, PUBLIC)
    assert decision.refusals == (
        Refusal("hold_waiting", {"count": 3}),
        Refusal("renewal_limit", {"count": 2, "limit": 2}),
        Refusal("too_overdue", {"days": 40, "limit": 30}),
    )
    early = renewal(loan(40), patron(), terms(), 0, TODAY, ZHENXING, PUBLIC)
    assert early.refusals == (Refusal("renewal_not_needed", {"day": "2027-01-03"}),)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), today=st.dates(D(2025, 1, 1), D(2027, 12, 31)), due_in=st.integers(-60, 60),
       renewals=st.integers(0, 4), max_renewals=st.integers(0, 4), renewal_days=st.integers(0, 60),
       renew_from=st.sampled_from(["today", "due_date"]), waiting=st.integers(0, 2))
def test_a_renewal_never_shortens_a_loan_nor_ends_in_the_past(data, today, due_in, renewals, max_renewals,
                                                             renewal_days, renew_from, waiting):
    calendar = data.draw(calendars(today))
    old = LoanFacts(today + dt.timedelta(days=due_in), renewals)
    policy = terms(renewal_days=renewal_days, max_renewals=max_renewals, renew_from=renew_from)
    decision = renewal(old, patron(), policy, waiting, today, calendar, PUBLIC)
    assert decision.new_due_on >= old.due_on
    assert ("renewal_not_needed" in codes(decision.refusals)) == (decision.new_due_on == old.due_on)
    if decision.allowed:
        assert decision.new_due_on > old.due_on
        assert decision.new_due_on >= today + dt.timedelta(days=renewal_days)
        assert day_status(decision.new_due_on, calendar, PUBLIC).is_open


# --- where a returned copy goes --------------------------------------------------------

def hold(id_, pickup, minute) -> WaitingHold:
    return WaitingHold(id_, 100 + id_, pickup, dt.datetime(2026, 11, 1, 9, minute, tzinfo=dt.UTC))


@pytest.mark.parametrize(
    ("name", "here", "home", "waiting", "holds_allowed", "expected"),
    [
        ("home, nobody waiting: shelve", ZX, ZX, [], True, Route("shelve", ZX)),
        ("away from home, nobody waiting: back home", ZX, CENTRAL_ID, [], True, Route("transit_home", CENTRAL_ID)),
        ("a hold picked up here", ZX, CENTRAL_ID, [hold(1, ZX, 0)], True, Route("hold_shelf", ZX, 1)),
        ("a hold picked up elsewhere", ZX, ZX, [hold(1, 9, 0)], True, Route("hold_transit", 9, 1)),
        ("a hold picked up at the home branch", ZX, CENTRAL_ID, [hold(1, CENTRAL_ID, 0)], True,
         Route("hold_transit", CENTRAL_ID, 1)),
        ("the oldest hold wins, though a newer one is here", ZX, ZX, [hold(2, ZX, 30), hold(1, 9, 10)], True,
         Route("hold_transit", 9, 1)),
        ("the oldest hold wins, listed last", ZX, ZX, [hold(3, 9, 50), hold(2, 9, 30), hold(1, ZX, 10)], True,
         Route("hold_shelf", ZX, 1)),
        ("same moment: the lower id wins", ZX, ZX, [hold(5, ZX, 0), hold(3, 9, 0)], True,
         Route("hold_transit", 9, 3)),
        ("holds not allowed: waiting holds are ignored, home", ZX, ZX, [hold(1, 9, 0)], False, Route("shelve", ZX)),
        ("holds not allowed: waiting holds are ignored, away", ZX, CENTRAL_ID, [hold(1, ZX, 0)], False,
         Route("transit_home", CENTRAL_ID)),
    ],
)
def test_route_returned_copy(name, here, home, waiting, holds_allowed, expected):
    assert route_returned_copy(here, home, iter(waiting), holds_allowed) == expected, name


@given(here=st.integers(1, 4), home=st.integers(1, 4), data=st.data(),
       waiting=st.lists(st.tuples(st.integers(1, 4), st.integers(0, 5)), max_size=8))
def test_the_first_come_is_the_first_served(here, home, data, waiting):
    holds = [hold(number, pickup, minute) for number, (pickup, minute) in enumerate(waiting, start=1)]
    route = route_returned_copy(here, home, data.draw(st.permutations(holds)))
    if not holds:
        assert route == (Route("shelve", here) if here == home else Route("transit_home", home))
        return
    first = min(holds, key=lambda h: (h.placed_at, h.id))
    assert route.hold_id == first.id and route.to_branch_id == first.pickup_branch_id
    assert route.kind == ("hold_shelf" if first.pickup_branch_id == here else "hold_transit")


# --- holds -----------------------------------------------------------------------------

HOLD_CASES = expecting([
    # name, reader, policy, loanable copies, has a copy on loan, already holding, refusals
    ("a hold may be placed", patron(), terms(), 2, False, False, []),
    ("a blocked card", patron(block_reason="x"), terms(), 2, False, False, ["card_blocked"]),
    ("an expired card", patron(expires_on=D(2026, 1, 1)), terms(), 2, False, False, ["card_expired"]),
    ("the policy allows no holds", patron(), terms(holds_allowed=False), 2, False, False, ["holds_not_allowed"]),
    ("reference only: no holds", patron(), terms(loanable=False), 2, False, False, ["holds_not_allowed"]),
    ("no copy to lend", patron(), terms(), 0, False, False, ["no_copies_to_hold"]),
    ("a copy on loan to the reader", patron(), terms(), 2, True, False, ["already_borrowed"]),
    ("a hold already placed", patron(), terms(), 2, False, True, ["hold_exists"]),
    ("every reason at once", patron(block_reason="x", expires_on=D(2026, 1, 1)), terms(holds_allowed=False), 0,
     True, True, ["card_blocked", "card_expired", "holds_not_allowed", "no_copies_to_hold", "already_borrowed",
                  "hold_exists"]),
])


@pytest.mark.parametrize(("name", "reader", "policy", "copies", "on_loan", "holding", "expected"), HOLD_CASES)
def test_hold_refusals(name, reader, policy, copies, on_loan, holding, expected):
    assert codes(hold_refusals(reader, policy, TODAY, copies, on_loan, holding)) == expected, name


@pytest.mark.parametrize(
    ("name", "ready_on", "days", "calendar", "expected"),
    [
        ("a week, ending on a Monday: the Tuesday", TODAY, 7, ZHENXING, D(2026, 12, 1)),
        ("a week, ending on a Sunday", D(2026, 11, 23), 7, ZHENXING, D(2026, 11, 29)),
        ("a week into the Golden Week", D(2026, 9, 28), 7, ZHENXING, D(2026, 10, 8)),
        ("one day, open", TODAY, 1, ZHENXING, TODAY),
        ("one day, ready on a Monday", D(2026, 11, 30), 1, ZHENXING, D(2026, 12, 1)),
        ("no days, ready on a Monday", D(2026, 11, 30), 0, ZHENXING, D(2026, 12, 1)),
        ("two days over the weekend at an office-hours branch", D(2026, 11, 27), 2, OFFICE, D(2026, 11, 30)),
        ("no hours keeps the plain date", TODAY, 7, NO_HOURS, D(2026, 11, 30)),
        ("no hours, one day", TODAY, 1, NO_HOURS, TODAY),
    ],
)
def test_hold_shelf_expiry(name, ready_on, days, calendar, expected):
    assert hold_shelf_expiry(ready_on, terms(hold_shelf_days=days), calendar, PUBLIC) == expected, name


@settings(max_examples=200, deadline=None)
@given(data=st.data(), ready_on=st.dates(D(2025, 1, 1), D(2027, 12, 31)), days=st.integers(0, 21))
def test_a_hold_shelf_wait_ends_on_an_open_day(data, ready_on, days):
    calendar = data.draw(calendars(ready_on))
    last = hold_shelf_expiry(ready_on, terms(hold_shelf_days=days), calendar, PUBLIC)
    assert last >= ready_on + dt.timedelta(days=max(days - 1, 0))
    assert day_status(last, calendar, PUBLIC).is_open


# --- fines and overdue days ------------------------------------------------------------

@pytest.mark.parametrize(
    ("due_on", "on", "days", "cents_per_day", "cents"),
    [
        (TODAY, TODAY, 0, 10, 0),
        (TODAY, TODAY - dt.timedelta(days=3), 0, 10, 0),
        (TODAY, TODAY + dt.timedelta(days=1), 1, 10, 10),
        (TODAY, TODAY + dt.timedelta(days=5), 5, 10, 50),
        (D(2026, 12, 30), D(2027, 1, 2), 3, 25, 75),
        (TODAY, TODAY + dt.timedelta(days=40), 40, 0, 0),
    ],
)
def test_overdue_days_and_fines(due_on, on, days, cents_per_day, cents):
    assert overdue_days(due_on, on) == days
    assert fine_cents(due_on, on, terms(fine_cents_per_day=cents_per_day)) == cents


def test_anonymise_before():
    assert anonymise_before(TODAY, 90) == D(2026, 8, 26)


# --- every reason code has a message, and a test ----------------------------------------

def codes_in_module() -> set[str]:
    source = Path(rules.__file__).read_text(encoding="utf-8")
    found = set(re.findall(r'Refusal\(\s*"([a-z_]+)"', source))
    found |= set(re.findall(r'UNAVAILABLE_REASONS\.get\([^)]*,\s*"([a-z_]+)"\)', source))
    return found | set(UNAVAILABLE_REASONS.values())


def test_the_module_source_is_read_for_codes():
    assert {"card_blocked", "hold_waiting", "item_on_loan", "item_unavailable", "hold_exists"} <= codes_in_module()


def test_every_reason_code_has_a_message():
    assert codes_in_module() - MESSAGES.keys() == set()
    assert OVERRIDABLE <= codes_in_module()


def test_every_reason_code_is_tested():
    assert codes_in_module() - COVERED == set()


def _all_refusals():
    for _, reader, item, policy, _ in CHECKOUT_CASES:
        yield from checkout_refusals(reader, item, policy, TODAY)
    for _, old, reader, policy, waiting, _, _ in RENEWAL_CASES:
        yield from renewal(old, reader, policy, waiting, TODAY, ZHENXING, PUBLIC).refusals
    for _, reader, policy, copies, on_loan, holding, _ in HOLD_CASES:
        yield from hold_refusals(reader, policy, TODAY, copies, on_loan, holding)


def test_every_refusal_fills_its_message():
    for refusal in _all_refusals():
        assert "{" not in MESSAGES[refusal.code].format(**refusal.params), refusal
