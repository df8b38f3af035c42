"""rules.programme_plan: what each child gets at each session, decided before confirming."""

import datetime as dt

import pytest

from library.activities.rules import ProgrammeSession, Registrant, SessionFacts, programme_plan

NOW = dt.datetime(2026, 6, 20, 1, 0, tzinfo=dt.timezone.utc)


def session(key: str, seats: int, waiting: int = 0, limit: int | None = None, age_min: int | None = None):
    return ProgrammeSession(key, SessionFacts("scheduled", NOW + dt.timedelta(days=7), age_min, None, True, None,
                                              None, per_person_limit=limit), seats, waiting)


def plan(sessions, children=((1, "米"), (2, "宇")), already=frozenset(), ages=None, held=None):
    def registrant(key, patron):
        return Registrant(patron, dict(children)[patron], (ages or {}).get(patron, 5),
                          already_registered=(key, patron) in already)

    return [(line.session, line.patron_id, line.outcome, line.position)
            for line in programme_plan(list(sessions), list(children), registrant, held or {}, NOW)]


@pytest.mark.parametrize("sessions, expected", [
    ("seats for both", [("a", 1, "seat", None), ("a", 2, "seat", None)]),
    ("one seat left", [("a", 1, "seat", None), ("a", 2, "waitlist", 4)]),
    ("full", [("a", 1, "waitlist", 4), ("a", 2, "waitlist", 5)]),
])
def test_seats_go_in_the_order_the_children_are_given(sessions, expected):
    seats = {"seats for both": 5, "one seat left": 1, "full": 0}[sessions]
    assert plan([session("a", seats, waiting=3)]) == expected


def test_a_session_held_already_is_left_and_does_not_take_a_seat():
    assert plan([session("a", 1)], already={("a", 1)}) == [("a", 1, "already", None), ("a", 2, "seat", None)]


def test_the_limit_counts_sessions_held_and_planned():
    lines = plan([session(k, 9, limit=2) for k in "abc"], children=((1, "米"),), held={1: 1})
    assert [outcome for _, _, outcome, _ in lines] == ["seat", "refused", "refused"]


def test_a_refused_child_takes_no_seat_from_the_next():
    assert plan([session("a", 1, age_min=4)], ages={1: 3, 2: 5}) == [("a", 1, "refused", None),
                                                                     ("a", 2, "seat", None)]
