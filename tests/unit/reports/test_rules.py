"""The pure rules of the statistics: local days, age bands, periods, the small-count rule, and
the SVG chart's accessibility, as tables of cases."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from library.reports import charts, rules

UTC = dt.timezone.utc


@pytest.mark.parametrize("moment, day", [
    (dt.datetime(2026, 3, 1, 15, 59, tzinfo=UTC), dt.date(2026, 3, 1)),  # 23:59 in Jiaxing
    (dt.datetime(2026, 3, 1, 16, 0, tzinfo=UTC), dt.date(2026, 3, 2)),  # midnight in Jiaxing
    (dt.datetime(2026, 12, 31, 16, 30, tzinfo=UTC), dt.date(2027, 1, 1)),  # counts for the next year
])
def test_a_moment_counts_on_the_branch_s_local_day(moment, day):
    assert rules.local_day(moment, "Asia/Shanghai") == day


@pytest.mark.parametrize("born, on, band", [
    (dt.date(2020, 6, 1), dt.date(2026, 5, 31), "0-6"),
    (dt.date(2019, 6, 1), dt.date(2026, 6, 1), "7-12"),  # the birthday itself
    (dt.date(2013, 6, 2), dt.date(2026, 6, 1), "7-12"),  # twelve until the day after
    (dt.date(2008, 1, 1), dt.date(2026, 1, 1), "18-59"),
    (dt.date(1960, 1, 1), dt.date(2026, 1, 1), "60+"),
    (None, dt.date(2026, 1, 1), "unknown"),
    (dt.date(2030, 1, 1), dt.date(2026, 1, 1), "unknown"),  # a birth date typed wrong
])
def test_age_bands(born, on, band):
    assert rules.age_band(born, on) == band


@pytest.mark.parametrize("cells, expected", [
    ({"adult": 12, "child": 7}, {"adult": 12, "child": 7}),
    # One small cell alone would be given away by the total: the next smallest goes with it.
    ({"adult": 12, "child": 2, "senior": 7}, {"adult": 12, "child": "<5", "senior": "<5"}),
    ({"adult": 12, "child": 2, "senior": 3}, {"adult": 12, "child": "<5", "senior": "<5"}),
    ({"adult": 0, "child": 3}, {"adult": 0, "child": "<5"}),  # zero identifies nobody
    ({"adult": 5, "child": 0}, {"adult": 5, "child": 0}),
    ({"child": 1}, {"child": "<5"}),
])
def test_the_small_count_rule(cells, expected):
    assert rules.shown(cells) == expected


def test_a_hidden_cell_cannot_be_worked_out_from_the_total():
    """The adversary: someone subtracting the shown cells from the shown total."""
    for cells in ({"a": 40, "b": 1, "c": 9}, {"a": 4, "b": 30}, {"a": 1, "b": 1, "c": 100}):
        shown = rules.shown(cells)
        hidden = [key for key, value in shown.items() if value == rules.HIDDEN]
        assert len(hidden) != 1 or not any(cells[key] > 0 for key in hidden)


@pytest.mark.parametrize("part, whole, shown", [(1, 4, "—"), (1, 5, "20.0%"), (0, 10, "0.0%")])
def test_a_rate_over_few_people_is_not_shown(part, whole, shown):
    assert rules.rate(part, whole) == shown


@pytest.mark.parametrize("kind, value, first, last, buckets", [
    ("year", "2026", dt.date(2026, 1, 1), dt.date(2026, 12, 31), 12),
    ("month", "2024-02", dt.date(2024, 2, 1), dt.date(2024, 2, 29), 29),
    ("month", "2026-12", dt.date(2026, 12, 1), dt.date(2026, 12, 31), 31),
    ("day", "2026-03-08", dt.date(2026, 3, 8), dt.date(2026, 3, 8), 1),
])
def test_periods(kind, value, first, last, buckets):
    period = rules.parse_period(kind, value)
    assert (period.first, period.last, len(period.buckets())) == (first, last, buckets)
    assert period.next().previous() == period


@pytest.mark.parametrize("kind, value", [("year", "26"), ("month", "2026-13"), ("month", "2026"), ("day", "2026-02-30"),
                                         ("week", "2026-01")])
def test_a_period_that_is_not_one_is_refused(kind, value):
    with pytest.raises(rules.BadPeriod):
        rules.parse_period(kind, value)


def test_a_year_typed_with_full_width_digits_is_understood():
    assert rules.parse_period("year", "２０２６").key == "2026"


def test_nothing_asked_is_this_year():
    assert rules.parse_period(None, None, dt.date(2026, 11, 28)).key == "2026"


def test_the_chart_is_readable_without_sight_and_escapes_its_text():
    svg = charts.bar_chart("c1", "外借 <b>", ["2026-01", "2026-02"], [3, 10], "desc & more")
    assert 'role="img"' in svg and 'aria-labelledby="c1-title c1-desc"' in svg
    assert "<title id=\"c1-title\">外借 &lt;b&gt;</title>" in svg and "desc &amp; more" in svg
    assert svg.count("<rect") == 2 and "<title>2026-02: 10</title>" in svg
    assert "style=" not in svg and "<script" not in svg  # the pages' CSP allows neither
    heights = [float(h) for h in re.findall(r'height="([\d.]+)"', svg)]
    assert heights[1] > heights[0] > 0


def test_an_empty_series_draws_an_empty_chart():
    svg = charts.bar_chart("c2", "t", ["a"], [0], "d")
    assert 'height="0.0"' in svg


@pytest.mark.parametrize("value, shown", [(0, 0), (1, "<5"), (4, "<5"), (5, 5)])
def test_a_count_of_people_on_its_own(value, shown):
    assert rules.count_of_people(value) == shown
