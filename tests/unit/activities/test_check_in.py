"""Check-in at the door, as a table of cases (no database): the window around the session,
a guardian's card, a second scan, a waitlisted or lapsed registration."""

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from library.activities.rules import Attendee, CheckInWindow, DoorSession, check_in

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 7, 4, 2, 0, tzinfo=UTC)  # Saturday 10:00 in Jiaxing, the club starts
MIN = dt.timedelta(minutes=1)
CLUB = DoorSession("scheduled", T0, T0 + 60 * MIN)
WINDOW = CheckInWindow(opens_before=60 * MIN, closes_after=30 * MIN)

MOTHER, XIAOMI, XIAOYU = 1, 2, 3
NAMES = {MOTHER: "王芳", XIAOMI: "李小米", XIAOYU: "李小宇"}


def seat(patron: int, status: str = "confirmed", registration: int | None = None,
         offer_expires_at: dt.datetime | None = None) -> Attendee:
    return Attendee(registration or patron * 10, patron, NAMES[patron], status, offer_expires_at)


@pytest.mark.parametrize("case, attendees, now, family, session, admit, already, turned_away, refusals", [
    # the window: from an hour before the start until half an hour after the end
    ("confirmed, a quarter of an hour early", [seat(XIAOMI)], T0 - 15 * MIN, False, CLUB, [XIAOMI], [], [], []),
    ("the minute check-in opens", [seat(XIAOMI)], T0 - 60 * MIN, False, CLUB, [XIAOMI], [], [], []),
    ("a minute before it opens", [seat(XIAOMI)], T0 - 61 * MIN, False, CLUB, [], [], [], ["check_in_not_open"]),
    ("eleven days before (the bug of issue 23)", [seat(XIAOMI)], T0 - dt.timedelta(days=11), False, CLUB,
     [], [], [], ["check_in_not_open"]),
    ("a late-comer while the session runs", [seat(XIAOMI)], T0 + 50 * MIN, False, CLUB, [XIAOMI], [], [], []),
    ("the last minute after the end", [seat(XIAOMI)], T0 + 90 * MIN, False, CLUB, [XIAOMI], [], [], []),
    ("a minute after check-in closed", [seat(XIAOMI)], T0 + 91 * MIN, False, CLUB, [], [], [], ["check_in_closed"]),
    ("the next day", [seat(XIAOMI)], T0 + dt.timedelta(days=1), False, CLUB, [], [], [], ["check_in_closed"]),
    # one reader
    ("scanned twice: in already, no error", [seat(XIAOMI, "attended")], T0, False, CLUB, [], [XIAOMI], [], []),
    ("waitlisted", [seat(XIAOMI, "waitlisted")], T0, False, CLUB, [], [], ["check_in_waitlisted"],
     ["check_in_waitlisted"]),
    ("not registered", [], T0, False, CLUB, [], [], [], ["not_registered"]),
    ("registration cancelled", [seat(XIAOMI, "cancelled")], T0, False, CLUB, [], [],
     ["check_in_registration_cancelled"], ["check_in_registration_cancelled"]),
    ("cancelled, then registered again", [seat(XIAOMI, "cancelled", 20), seat(XIAOMI, "confirmed", 21)], T0, False,
     CLUB, [XIAOMI], [], [], []),
    ("an offered seat still held is taken by coming", [seat(XIAOMI, "offered", offer_expires_at=T0 + MIN)], T0, False,
     CLUB, [XIAOMI], [], [], []),
    ("an offered seat that lapsed", [seat(XIAOMI, "offered", offer_expires_at=T0 - MIN)], T0, False, CLUB,
     [], [], ["check_in_offer_lapsed"], ["check_in_offer_lapsed"]),
    ("marked a no-show too early, then came", [seat(XIAOMI, "no_show")], T0 + 20 * MIN, False, CLUB,
     [XIAOMI], [], [], []),
    # a guardian's card
    ("guardian's card: both children", [seat(XIAOMI), seat(XIAOYU)], T0, True, CLUB, [XIAOMI, XIAOYU], [], [], []),
    ("guardian's card: the guardian and both children", [seat(MOTHER), seat(XIAOMI), seat(XIAOYU)], T0, True, CLUB,
     [MOTHER, XIAOMI, XIAOYU], [], [], []),
    ("guardian's card: one child in, the other waitlisted", [seat(XIAOMI), seat(XIAOYU, "waitlisted")], T0, True,
     CLUB, [XIAOMI], [], ["check_in_waitlisted"], []),
    ("guardian's card: one child in already, the other arrives", [seat(XIAOMI, "attended"), seat(XIAOYU)], T0, True,
     CLUB, [XIAOYU], [XIAOMI], [], []),
    ("guardian's card: nobody registered", [], T0, True, CLUB, [], [], [], ["not_registered_family"]),
    ("guardian's card: both children waitlisted", [seat(XIAOMI, "waitlisted"), seat(XIAOYU, "waitlisted")], T0, True,
     CLUB, [], [], ["check_in_waitlisted", "check_in_waitlisted"], ["check_in_waitlisted", "check_in_waitlisted"]),
    ("guardian's card after closing: nobody goes in, each hears why", [seat(XIAOMI), seat(XIAOYU, "waitlisted")],
     T0 + 2 * 60 * MIN, True, CLUB, [], [], ["check_in_waitlisted"], ["check_in_closed", "check_in_waitlisted"]),
    # the session
    ("session cancelled", [seat(XIAOMI)], T0, False, DoorSession("cancelled", T0, T0 + 60 * MIN), [], [], [],
     ["session_cancelled"]),
    ("session cancelled, and too early", [seat(XIAOMI)], T0 - 3 * 60 * MIN, False,
     DoorSession("cancelled", T0, T0 + 60 * MIN), [], [], [], ["session_cancelled", "check_in_not_open"]),
    ("a session without registration", [], T0, False, DoorSession("scheduled", T0, T0 + 60 * MIN, False), [], [], [],
     ["no_registration_needed"]),
    ("in already, but check-in has closed", [seat(XIAOMI, "attended")], T0 + 3 * 60 * MIN, False, CLUB, [], [], [],
     ["check_in_closed"]),
])
def test_who_a_card_checks_in(case, attendees, now, family, session, admit, already, turned_away, refusals):
    decision = check_in(session, WINDOW, "王芳" if family else "李小米", attendees, now, family=family)
    assert [a.patron_id for a in decision.admit] == admit, case
    assert [a.patron_id for a in decision.already] == already, case
    assert [r.code for r in decision.turned_away] == turned_away, case
    assert [r.code for r in decision.refusals] == refusals, case


def test_the_refusal_says_when_check_in_opens_and_when_it_closed():
    [early] = check_in(CLUB, WINDOW, "李小米", [seat(XIAOMI)], T0 - dt.timedelta(days=11)).refusals
    assert early.params == {"opens_at": T0 - 60 * MIN, "minutes": 60}
    [late] = check_in(CLUB, WINDOW, "李小米", [seat(XIAOMI)], T0 + 4 * 60 * MIN).refusals
    assert late.params == {"closed_at": T0 + 90 * MIN, "minutes": 30}


def test_a_refusal_names_the_reader():
    [nobody] = check_in(CLUB, WINDOW, "王芳", [], T0, family=True).refusals
    assert nobody.params == {"name": "王芳"}
    [waiting] = check_in(CLUB, WINDOW, "王芳", [seat(XIAOYU, "waitlisted")], T0, family=True).refusals
    assert waiting.params == {"name": "李小宇"}


def test_a_window_of_no_minutes_is_the_session_itself():
    exact = CheckInWindow(dt.timedelta(0), dt.timedelta(0))
    assert check_in(CLUB, exact, "李小米", [seat(XIAOMI)], T0).admit
    assert check_in(CLUB, exact, "李小米", [seat(XIAOMI)], T0 + 60 * MIN).admit
    assert check_in(CLUB, exact, "李小米", [seat(XIAOMI)], T0 - MIN).refusals[0].code == "check_in_not_open"


@given(offset=st.integers(min_value=-60 * 24 * 30, max_value=60 * 24 * 30),
       statuses=st.lists(st.sampled_from(["confirmed", "offered", "waitlisted", "attended", "no_show", "cancelled"]),
                         min_size=0, max_size=3))
def test_nobody_is_ever_checked_in_outside_the_window_or_without_a_seat(offset, statuses):
    now = T0 + offset * MIN
    attendees = [seat(patron, status) for patron, status in zip((MOTHER, XIAOMI, XIAOYU), statuses)]
    decision = check_in(CLUB, WINDOW, "王芳", attendees, now, family=True)
    if decision.admit or decision.already:
        assert WINDOW.opens_at(CLUB.starts_at) <= now <= WINDOW.closes_at(CLUB.ends_at)
        assert not decision.refusals
    else:
        assert decision.refusals
    assert all(a.status in ("confirmed", "offered", "no_show") for a in decision.admit)


def test_the_window_is_two_settings_an_hour_before_and_half_an_hour_after(tmp_path):
    from library.settings import SettingsError, load_settings

    defaults = load_settings({"LIBRARY_DATA_DIR": str(tmp_path)})
    assert (defaults.checkin_opens_minutes_before, defaults.checkin_closes_minutes_after) == (60, 30)
    chosen = load_settings({"LIBRARY_DATA_DIR": str(tmp_path), "LIBRARY_CHECKIN_OPENS_MINUTES_BEFORE": "15",
                            "LIBRARY_CHECKIN_CLOSES_MINUTES_AFTER": "0"})
    assert (chosen.checkin_opens_minutes_before, chosen.checkin_closes_minutes_after) == (15, 0)
    with pytest.raises(SettingsError, match="LIBRARY_CHECKIN_OPENS_MINUTES_BEFORE"):
        load_settings({"LIBRARY_DATA_DIR": str(tmp_path), "LIBRARY_CHECKIN_OPENS_MINUTES_BEFORE": "-5"})
    with pytest.raises(SettingsError, match="LIBRARY_CHECKIN_CLOSES_MINUTES_AFTER"):
        load_settings({"LIBRARY_DATA_DIR": str(tmp_path), "LIBRARY_CHECKIN_CLOSES_MINUTES_AFTER": "a while"})
