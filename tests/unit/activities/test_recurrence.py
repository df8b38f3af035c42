"""Series expansion: bounded, in wall-clock time, with cancelled and moved sessions."""

import datetime as dt

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from library.activities.recurrence import MAX_OCCURRENCES, Moved, RecurrenceProblem, expand, to_utc

SAT_4_JULY = dt.datetime(2026, 7, 4, 10, 0)
HOUR = dt.timedelta(hours=1)


def test_the_summer_reading_club_every_saturday_with_one_session_moved_to_sunday():
    sessions = expand(SAT_4_JULY, HOUR, "FREQ=WEEKLY;BYDAY=SA;UNTIL=20260829T235959", room_id=1,
                      moved={dt.datetime(2026, 8, 1, 10, 0): Moved(dt.datetime(2026, 8, 2, 10, 0))})
    starts = [s.start for s in sessions]
    assert len(starts) == 9 and starts[0] == SAT_4_JULY and starts[-1] == dt.datetime(2026, 8, 29, 10, 0)
    assert dt.datetime(2026, 8, 1, 10, 0) not in starts and dt.datetime(2026, 8, 2, 10, 0) in starts
    sunday = next(s for s in sessions if s.moved)
    assert sunday.original_start == dt.datetime(2026, 8, 1, 10, 0) and sunday.end == dt.datetime(2026, 8, 2, 11, 0)
    assert all(s.start.time() == dt.time(10, 0) for s in sessions)


def test_a_cancelled_date_is_left_out():
    sessions = expand(SAT_4_JULY, HOUR, "FREQ=WEEKLY;COUNT=3", 1, cancelled=frozenset({dt.datetime(2026, 7, 11, 10)}))
    assert [s.start.day for s in sessions] == [4, 18]


def test_a_one_off_event_is_one_session():
    [only] = expand(SAT_4_JULY, HOUR, None, 7)
    assert only.start == SAT_4_JULY and only.room_id == 7 and not only.moved


@pytest.mark.parametrize("rule, code", [
    ("FREQ=DAILY", "rrule_unbounded"),
    ("FREQ=DAILY;COUNT=5000", "rrule_too_many"),
    ("FREQ=MINUTELY;UNTIL=20300101", "rrule_too_many"),
    ("FREQ=SOMETIMES;COUNT=3", "rrule_invalid"),
    ("FREQ=WEEKLY;BYDAY=SA;UNTIL=20260101", "rrule_empty"),
])
def test_series_that_never_end_or_are_huge_are_refused(rule, code):
    with pytest.raises(RecurrenceProblem) as problem:
        expand(SAT_4_JULY, HOUR, rule, 1)
    assert problem.value.code == code


def test_an_end_before_the_start_is_refused():
    with pytest.raises(RecurrenceProblem) as problem:
        expand(SAT_4_JULY, -HOUR, None, 1)
    assert problem.value.code == "ends_before_start"


def test_wall_clock_time_is_kept_across_an_offset_change():
    # A Berlin club at 10:00 is 08:00 UTC in summer and 09:00 UTC in winter.
    sessions = expand(dt.datetime(2026, 10, 17, 10, 0), HOUR, "FREQ=WEEKLY;COUNT=3", 1)
    assert [s.start_utc("Europe/Berlin").hour for s in sessions] == [8, 8, 9]
    assert {s.start.hour for s in sessions} == {10}
    assert to_utc(SAT_4_JULY, "Asia/Shanghai") == dt.datetime(2026, 7, 4, 2, 0, tzinfo=dt.timezone.utc)


@given(count=st.integers(1, MAX_OCCURRENCES), interval=st.integers(1, 4))
def test_every_session_keeps_its_length_and_order(count, interval):
    assume((count - 1) * interval * 7 <= 3 * 366)  # within the longest series allowed
    sessions = expand(SAT_4_JULY, HOUR, f"FREQ=WEEKLY;INTERVAL={interval};COUNT={count}", 1)
    assert len(sessions) == count
    assert all(s.end - s.start == HOUR for s in sessions)
    assert all(a.start < b.start for a, b in zip(sessions, sessions[1:]))
