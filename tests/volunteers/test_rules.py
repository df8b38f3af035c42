"""The pure decisions about shifts, as tables of cases (no database)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from library.volunteers import rules

UTC = dt.timezone.utc
ZONE = ZoneInfo("Asia/Shanghai")
START = dt.datetime(2026, 6, 22, 7, 30, tzinfo=UTC)  # 15:30 in Jiaxing
END = START + dt.timedelta(hours=2)
LOCAL = dt.datetime(2026, 6, 22, 15, 30)


@pytest.mark.parametrize("kind, start, end, needed, code", [
    ("desk", LOCAL, LOCAL + dt.timedelta(hours=3), 1, None),
    ("after_school", LOCAL, LOCAL + dt.timedelta(hours=2), 50, None),
    ("cleaning", LOCAL, LOCAL + dt.timedelta(hours=2), 1, "shift_bad_kind"),
    ("desk", LOCAL, LOCAL, 1, "shift_bad_times"),
    ("desk", LOCAL, LOCAL - dt.timedelta(minutes=1), 1, "shift_bad_times"),
    ("desk", LOCAL, LOCAL + dt.timedelta(hours=9), 1, "shift_bad_times"),  # past midnight
    ("desk", LOCAL, LOCAL + dt.timedelta(hours=1), 0, "shift_bad_head_count"),
    ("desk", LOCAL, LOCAL + dt.timedelta(hours=1), 51, "shift_bad_head_count"),
])
def test_planning(kind, start, end, needed, code):
    refusal = rules.plan_refusal(kind, start, end, needed)
    assert (refusal.code if refusal else None) == code


@pytest.mark.parametrize("now, checked_in, code", [
    (START - dt.timedelta(minutes=31), None, "shift_check_in_closed"),
    (START - dt.timedelta(minutes=30), None, None),
    (START + dt.timedelta(hours=1), None, None),
    (END, None, None),
    (END + dt.timedelta(seconds=1), None, "shift_check_in_closed"),
    (START, START - dt.timedelta(minutes=5), "shift_checked_in_already"),
])
def test_check_in_window(now, checked_in, code):
    refusal = rules.check_in_refusal(START, END, checked_in, now, ZONE)
    assert (refusal.code if refusal else None) == code


def test_the_time_of_an_earlier_check_in_is_told_on_the_branch_clock():
    refusal = rules.check_in_refusal(START, END, START, START, ZONE)
    assert refusal.params == {"time": "15:30"}


@pytest.mark.parametrize("checked_in, checked_out, minutes", [
    (None, None, 0), (START, None, 0), (START, START + dt.timedelta(minutes=59, seconds=59), 59),
    (START, START + dt.timedelta(hours=2, minutes=10), 130), (START, START - dt.timedelta(minutes=1), 0),
])
def test_served_minutes(checked_in, checked_out, minutes):
    assert rules.served_minutes(checked_in, checked_out) == minutes


@pytest.mark.parametrize("minutes, hours", [(0, 0.0), (2, 0.0), (3, 0.1), (90, 1.5), (130, 2.2), (135, 2.3)])
def test_hours_are_tenths_rounded_half_up(minutes, hours):
    assert rules.hours(minutes) == hours


@pytest.mark.parametrize("checked_out, code", [
    (None, None), (START, None), (START + dt.timedelta(hours=16), None),
    (START + dt.timedelta(hours=16, minutes=1), "shift_bad_correction"), (START - dt.timedelta(minutes=1),
                                                                             "shift_bad_correction"),
])
def test_corrections(checked_out, code):
    refusal = rules.correction_refusal(START, checked_out)
    assert (refusal.code if refusal else None) == code


def test_hours_by_person_and_month_sum_each_volunteer_once_a_month():
    rows = [{"volunteer": 1, "name": "甲", "month": "2026-06", "minutes": 60},
            {"volunteer": 1, "name": "甲", "month": "2026-06", "minutes": 30},
            {"volunteer": 2, "name": "乙", "month": "2026-06", "minutes": 45},
            {"volunteer": 1, "name": "甲", "month": "2026-07", "minutes": 120}]
    lines = rules.hours_by_person_and_month(rows)
    assert [(l["month"], l["name"], l["shifts"], l["hours"]) for l in lines] == [
        ("2026-06", "乙", 1, 0.8), ("2026-06", "甲", 2, 1.5), ("2026-07", "甲", 1, 2.0)]
