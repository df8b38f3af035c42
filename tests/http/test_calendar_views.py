"""Issue 18, part 4: the public calendar's list reads as an agenda (a heading per day, weekday
named, today marked), the week and month views mark today, and every link of the calendar keeps
the filters a parent chose (branch, kind, age) in its address."""

from __future__ import annotations

import datetime as dt
import html
import re
from urllib.parse import parse_qs, urlsplit

from library.activities import service
from library.activities.service import EventInput
from tests.http.conftest import FROZEN_NOW
from tests.http.families import LIBRARIAN

TODAY = dt.date(2026, 11, 28)  # a Saturday: FROZEN_NOW in Jiaxing
FILTERS = {"branch": "ZX", "kind": "reading_club", "age": "5"}


def calendar_links(page: str) -> list[dict[str, list[str]]]:
    return [parse_qs(urlsplit(html.unescape(href)).query)
            for href in re.findall(r'href="(/activities\?[^"]*)"', page)]


def view_links(page: str) -> dict[str, dict[str, list[str]]]:
    return {view: parse_qs(urlsplit(html.unescape(href)).query)
            for href, view in re.findall(r'<a href="([^"]+)" data-view-link="(\w+)"', page)}


async def story_time_today() -> None:
    await service.schedule_event(LIBRARIAN, EventInput(
        branch_code="ZX", title_zh="今日故事会", title_en="Story time today", kind="reading_club", capacity=10,
        age_min=3, age_max=8, first_start=dt.datetime.combine(TODAY, dt.time(15, 0)), duration_minutes=45,
        room_code="TALK"), FROZEN_NOW)


async def test_the_list_is_an_agenda_with_a_heading_per_day_and_today_marked(client):
    await story_time_today()
    page = await client.get("/activities", params={"branch": "ZX"})
    assert page.status_code == 200
    days = re.findall(r'data-agenda-day="([0-9-]+)"', page.text)
    assert days == sorted(set(days)) and days[0] == TODAY.isoformat()
    assert dt.date(2026, 12, 5).isoformat() in days and dt.date(2026, 12, 6).isoformat() not in days  # no Sunday session
    heading = re.search(r'<h2 class="agenda-day today" data-agenda-day="2026-11-28" aria-current="date">(.*?)</h2>',
                        page.text).group(1)
    assert "今天" in heading and "11月28日 星期六" in heading
    saturday = page.text.split('data-agenda-day="2026-12-05"')[1].split("data-agenda-day")[0]
    assert "10:00–11:00" in saturday and "周六绘本俱乐部" in saturday and "亲子编织课" not in saturday

    english = await client.get("/activities", params={"branch": "ZX"}, headers={"Accept-Language": "en"})
    assert "Saturday 5 December" in english.text and "Today" in english.text

    nothing = await client.get("/activities", params={"branch": "ZX", "kind": "performance"})
    assert "data-agenda-day" not in nothing.text and "这段时间没有活动" in nothing.text


async def test_the_week_and_month_views_mark_today(client):
    await story_time_today()
    for view in ("week", "month"):
        page = await client.get("/activities", params={"view": view, "branch": "ZX"})
        today = re.findall(r'<div class="day([^"]*)" data-day="([0-9-]+)"( aria-current="date")?>', page.text)
        marked = [day for classes, day, current in today if "today" in classes and current]
        assert marked == [TODAY.isoformat()], view
        assert "今日故事会" in page.text.split('data-day="2026-11-28"')[1].split('data-day=')[0]
    following = await client.get("/activities", params={"view": "week", "from": "2026-12-07"})
    assert "aria-current=\"date\"" not in following.text and 'class="day today' not in following.text


async def test_every_calendar_link_keeps_the_filters(client):
    for view, shown in (("list", None), ("week", "2026-12-09"), ("month", "2026-12-09")):
        params = {**FILTERS, "view": view, **({"from": shown} if shown else {})}
        page = await client.get("/activities", params=params)
        links = calendar_links(page.text)
        assert len(links) >= (3 if view == "list" else 6), view
        for query in links:
            assert {key: query.get(key) for key in FILTERS} == {key: [value] for key, value in FILTERS.items()}, query
        # The form that changes them keeps the days shown too.
        if shown:
            assert re.search(r'<input type="hidden" name="from" value="2026-12-0[17]">', page.text), view

    # Switching views keeps the days shown: the month of the week, the week of the month's first.
    week = await client.get("/activities", params={**FILTERS, "view": "week", "from": "2026-12-09"})
    switch = view_links(week.text)
    assert "from" not in switch["list"] and switch["month"]["from"] == ["2026-12-07"]
    month = await client.get("/activities", params={**FILTERS, "view": "month", "from": "2026-12-09"})
    assert view_links(month.text)["week"]["from"] == ["2026-12-01"]

    # The feed offered is the chosen branch's.
    page = await client.get("/activities", params=FILTERS)
    assert re.findall(r'data-feed="(\w+)"', page.text) == ["ZX"]
    assert len(re.findall(r'data-feed="(\w+)"', (await client.get("/activities")).text)) >= 3
