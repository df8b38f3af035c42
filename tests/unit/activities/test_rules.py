"""Scheduling against rooms and registration decisions, as tables of cases (no database)."""

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from library.activities.rules import (Booking, Registrant, RoomFacts, SessionFacts, Waiting, booking_refusals,
                                      conflicts, free_rooms, overlaps, promote, registration_refusals,
                                      within_opening_hours)
from library.branches.rules import BranchCalendar, Period, PublicCalendar

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 7, 4, 2, 0, tzinfo=UTC)  # Saturday 10:00 in Jiaxing
H = dt.timedelta(hours=1)
M15 = dt.timedelta(minutes=15)
KIDS = RoomFacts(1, 30, "邻乐空间")
STUDY = RoomFacts(2, 40, "自习室")
CRAFT = RoomFacts(3, 20, "手工教室")


def club(start=T0, end=T0 + H, room=1, setup=dt.timedelta(0), teardown=dt.timedelta(0), key=None):
    return Booking(room, start, end, setup, teardown, label="绘本俱乐部", key=key)


@pytest.mark.parametrize("case, other, clash", [
    ("before", club(T0 - 2 * H, T0 - H), False),
    ("touching the start", club(T0 - H, T0), False),
    ("overlapping start", club(T0 - H / 2, T0 + H / 2), True),
    ("inside", club(T0 + M15, T0 + 2 * M15), True),
    ("around", club(T0 - H, T0 + 2 * H), True),
    ("overlapping end", club(T0 + H / 2, T0 + 2 * H), True),
    ("touching the end", club(T0 + H, T0 + 2 * H), False),
    ("after", club(T0 + 2 * H, T0 + 3 * H), False),
    ("same time, other room", club(room=2), False),
    ("teardown reaches the next", club(T0 - 2 * H, T0 - H, teardown=H), False),
    ("teardown into the next", club(T0 - 2 * H, T0 - H, teardown=H + M15), True),
    ("setup reaches back", club(T0 + H, T0 + 2 * H, setup=M15), True),
])
def test_overlaps(case, other, clash):
    assert overlaps(club(), other) is clash
    assert overlaps(other, club()) is clash


@given(a=st.integers(0, 200), b=st.integers(1, 120), c=st.integers(0, 200), d=st.integers(1, 120))
def test_overlap_is_symmetric(a, b, c, d):
    first = club(T0 + dt.timedelta(minutes=a), T0 + dt.timedelta(minutes=a + b))
    second = club(T0 + dt.timedelta(minutes=c), T0 + dt.timedelta(minutes=c + d))
    assert overlaps(first, second) == overlaps(second, first)


def test_a_session_being_moved_does_not_clash_with_itself():
    assert conflicts(club(key="o1"), [club(key="o1")]) == []
    assert len(conflicts(club(key="o2"), [club(key="o1")])) == 1


def test_every_booking_problem_is_listed():
    lecture = Booking(1, T0 + M15, T0 + H, label="知识讲堂")
    refusals = booking_refusals(club(), 40, KIDS, [lecture], confirmed=35, opening_hours_ok=False)
    assert [r.code for r in refusals] == ["over_room_capacity", "fewer_seats_than_registered", "room_taken",
                                          "outside_opening_hours"]
    assert refusals[2].params["other"] == "知识讲堂" and refusals[0].params["room_capacity"] == 30
    assert [r.overridable for r in refusals] == [False, False, False, True]


def test_a_fitting_booking_has_no_refusal():
    assert booking_refusals(club(), 25, KIDS, [Booking(1, T0 + H, T0 + 2 * H)]) == []


def test_find_a_room_for_25_on_friday_evening():
    friday = dt.datetime(2026, 7, 10, 11, 0, tzinfo=UTC)  # 19:00 local
    busy = [Booking(2, friday, friday + H, label="知识讲堂")]
    assert free_rooms([KIDS, STUDY, CRAFT], busy, friday, friday + H, 25) == [KIDS]
    assert free_rooms([KIDS, STUDY, CRAFT], [], friday, friday + H, 25) == [KIDS, STUDY]
    assert free_rooms([KIDS, STUDY, CRAFT], [], friday, friday + H, 50) == []


ZX_HOURS = BranchCalendar(weekly={d: (Period(dt.time(9), dt.time(20, 30)),) for d in range(1, 7)})


@pytest.mark.parametrize("start, end, ok", [
    (dt.datetime(2026, 7, 4, 10), dt.datetime(2026, 7, 4, 11), True),
    (dt.datetime(2026, 7, 4, 8, 30), dt.datetime(2026, 7, 4, 9, 30), False),  # before opening
    (dt.datetime(2026, 7, 4, 20), dt.datetime(2026, 7, 4, 21), False),  # after closing
    (dt.datetime(2026, 7, 6, 10), dt.datetime(2026, 7, 6, 11), False),  # Monday: closed
    (dt.datetime(2026, 7, 4, 20), dt.datetime(2026, 7, 5, 10), False),  # overnight
])
def test_opening_hours(start, end, ok):
    assert within_opening_hours(start, end, ZX_HOURS, PublicCalendar()) is ok


SESSION = SessionFacts(status="scheduled", starts_at=T0, age_min=4, age_max=6, registration_required=True,
                       opens_at=T0 - dt.timedelta(days=7), closes_at=T0 - H)
NOW = T0 - dt.timedelta(days=3)


def mi(age=5, **changes):
    return Registrant(patron_id=2, name="李小米", age_on_day=age, **changes)


@pytest.mark.parametrize("session, person, now, codes", [
    (SESSION, mi(), NOW, []),
    (SESSION, mi(3), NOW, ["too_young"]),
    (SESSION, mi(7), NOW, ["too_old"]),
    (SESSION, mi(None), NOW, ["age_unknown"]),
    (SESSION, mi(already_registered=True), NOW, ["already_registered"]),
    (SESSION, mi(), T0 - dt.timedelta(days=8), ["registration_not_open"]),
    (SESSION, mi(), T0 - M15, ["registration_closed"]),
    (SESSION, mi(), T0 + H, ["session_past", "registration_closed"]),
    (SessionFacts(**{**SESSION.__dict__, "status": "cancelled"}), mi(), NOW, ["session_cancelled"]),
    (SessionFacts(**{**SESSION.__dict__, "registration_required": False}), mi(), NOW, ["no_registration_needed"]),
    (SessionFacts(**{**SESSION.__dict__, "per_person_limit": 2}), mi(sessions_in_programme=2), NOW,
     ["session_limit"]),
    (SessionFacts(**{**SESSION.__dict__, "status": "cancelled"}), mi(3, already_registered=True), NOW,
     ["session_cancelled", "too_young", "already_registered"]),
])
def test_registration_refusals(session, person, now, codes):
    assert [r.code for r in registration_refusals(session, person, now)] == codes


def test_the_waitlist_moves_first_come_first_served():
    waiting = [Waiting(7, (T0, 3)), Waiting(5, (T0, 1)), Waiting(6, (T0, 2)), Waiting(9, (T0 + H, 0))]
    assert promote(waiting, 2) == [5, 6]
    assert promote(waiting, 0) == []
    assert promote(waiting, 10) == [5, 6, 7, 9]
