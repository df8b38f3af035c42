"""Activities over HTTP: the public calendar, a session page, registration by a guardian, staff planning."""

import datetime as dt

from icalendar import Calendar

from library.activities.tables import Event, Occurrence
from tests.support import csrf_token_from, sign_in_patron, sign_in_staff


async def first_session(title: str) -> str:
    row = await Occurrence.select(Occurrence.uuid).where(Occurrence.event.title_zh == title).order_by(
        Occurrence.starts_at).first()
    return str(row["uuid"])


async def test_the_calendar_lists_the_demo_sessions_with_seats(client):
    page = await client.get("/activities", params={"branch": "ZX", "age": "5"})
    assert page.status_code == 200
    assert "周六绘本俱乐部" in page.text and "亲子编织课" not in page.text  # the weaving class is for 6–12
    assert 'data-seats="25"' in page.text
    month = await client.get("/activities", params={"view": "month"})
    assert month.status_code == 200 and 'data-view="month"' in month.text


async def test_a_guardian_registers_one_child_and_the_toddler_is_refused(client):
    session = await first_session("周六绘本俱乐部")
    await sign_in_patron(client)
    page = await client.get(f"/activities/sessions/{session}")
    assert 'name="card" value="ZX10000002"' in page.text and 'name="card" value="ZX10000003"' in page.text
    token = csrf_token_from(page.text)
    both = await client.post(f"/activities/sessions/{session}/register",
                             data={"_csrf_token": token, "card": ["ZX10000002", "ZX10000003"]})
    assert both.status_code == 409 and "李小宇 3 岁" in both.text
    one = await client.post(f"/activities/sessions/{session}/register",
                            data={"_csrf_token": token, "card": ["ZX10000002"]})
    assert one.status_code == 200 and 'data-outcome="ZX10000002"' in one.text and 'class="ok"' in one.text
    feed_link = next(part for part in one.text.split('"') if part.startswith("/activities/feeds/readers/"))
    feed = await client.get(feed_link.replace("&amp;", "&"))
    assert feed.status_code == 200 and len(Calendar.from_ical(feed.content).walk("VEVENT")) == 1
    wrong = await client.get(feed_link.split("?")[0] + "?token=nope")
    assert wrong.status_code == 404


async def test_the_api_registers_and_refuses_a_child_not_linked(client):
    session = await first_session("周六绘本俱乐部")
    await client.get("/")
    headers = {"X-CSRFToken": client.cookies["library_csrf"]}
    await client.post("/api/session", json={"kind": "patron", "login": "JX20000001", "secret": "123456"},
                      headers=headers)
    headers = {"X-CSRFToken": client.cookies["library_csrf"]}  # signing in changed the token
    refused = await client.post(f"/api/activities/sessions/{session}/registrations",
                                json={"card_numbers": ["ZX10000002"]}, headers=headers)
    assert refused.status_code == 403
    unknown = await client.post("/api/activities/sessions/not-a-session/registrations",
                                json={"card_numbers": ["JX20000001"]}, headers=headers)
    assert unknown.status_code == 404
    sessions = (await client.get("/api/activities/sessions", params={"branch": "ZX"})).json()
    assert sessions and all(s["branch"] == "ZX" for s in sessions)


async def test_a_librarian_plans_a_series_and_is_refused_an_overlap_by_name(client):
    await sign_in_staff(client)
    page = await client.get("/staff/activities/")
    token = csrf_token_from(page.text)
    saturday = (await Occurrence.select(Occurrence.local_start).where(
        Occurrence.event.title_zh == "周六绘本俱乐部").order_by(Occurrence.starts_at).first())["local_start"]
    form = {"_csrf_token": token, "branch": "ZX", "room": "KIDS", "kind": "lecture", "title_zh": "故事妈妈",
            "day": saturday.date().isoformat(), "start": "10:30", "end": "11:30", "capacity": "20",
            "repeat": "weekly", "until": (saturday.date() + dt.timedelta(weeks=3)).isoformat(),
            "registration_required": "1"}
    clash = await client.post("/staff/activities/", data=form)
    assert clash.status_code == 409 and "周六绘本俱乐部" in clash.text and 'data-refused' in clash.text
    too_big = await client.post("/staff/activities/", data={**form, "room": "CRAFT", "capacity": "40"})
    assert too_big.status_code == 409 and "40" in too_big.text
    fine = await client.post("/staff/activities/", data={**form, "room": "STUDY", "start": "10:00", "end": "11:00"})
    assert fine.status_code == 303
    assert await Event.count().where(Event.title_zh == "故事妈妈") == 1
    assert await Occurrence.count().where(Occurrence.event.title_zh == "故事妈妈") == 4
    rooms = await client.get("/staff/activities/rooms", params={
        "branch": "ZX", "day": saturday.date().isoformat(), "start": "10:00", "end": "11:00", "people": "15"})
    assert 'data-room="CRAFT"' in rooms.text and 'data-room="KIDS"' not in rooms.text
    week = await client.get("/staff/activities/week", params={"branch": "ZX", "start": saturday.date().isoformat()})
    assert week.status_code == 200 and "故事妈妈" in week.text


async def test_the_branch_feed_is_valid_icalendar(client):
    feed = await client.get("/activities/feeds/ZX.ics")
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    calendar = Calendar.from_ical(feed.content)
    assert {str(v["SUMMARY"]).split(" / ")[0] for v in calendar.walk("VEVENT")} >= {"周六绘本俱乐部", "亲子编织课"}


async def test_a_child_logs_a_book_in_the_winter_challenge(client):
    from library.activities.tables import Programme

    programme = str((await Programme.select(Programme.uuid).first())["uuid"])
    await sign_in_patron(client)
    board = await client.get(f"/activities/challenges/{programme}")
    assert board.status_code == 200 and 'data-progress="ZX10000002"' in board.text
    page = await client.get(f"/account/challenges/{programme}", params={"card": "ZX10000002"})
    logged = await client.post(f"/account/challenges/{programme}/log", data={
        "_csrf_token": csrf_token_from(page.text), "card": "ZX10000002", "title": "好饿的毛毛虫",
        "read_on": "2026-11-28"})
    assert logged.status_code == 303
    progress = await client.get(f"/account/challenges/{programme}", params={"card": "ZX10000002"})
    assert 'data-total="1"' in progress.text and "好饿的毛毛虫" in progress.text
    early = await client.get(f"/account/challenges/{programme}/certificate", params={"card": "ZX10000002"})
    assert early.status_code == 422
    board = await client.get(f"/activities/challenges/{programme}")
    assert "李** (…02)" in board.text and "李小米" not in board.text.split("Leaderboard")[-1].split("排行榜")[-1]
    someone_else = await client.get(f"/account/challenges/{programme}", params={"card": "JX20000001"})
    assert someone_else.status_code == 403


async def test_the_week_and_month_views_go_back_and_forth_and_name_the_weekdays(client):
    """Issue 18, part 4: from a week, the next week is one tap away with the filters kept; the
    month view names the weekdays, marks the month's own days and has its arrows too."""
    import html
    import re

    from library.activities.tables import Occurrence

    starts = sorted(row["local_start"] for row in await Occurrence.select(Occurrence.local_start))
    first = starts[0].date()
    monday = first - dt.timedelta(days=first.weekday())
    week = await client.get("/activities", params={"view": "week", "from": first.isoformat(), "branch": "ZX"})
    assert week.status_code == 200
    days = re.findall(r'data-day="([0-9-]+)"', week.text)
    assert days == [(monday + dt.timedelta(days=n)).isoformat() for n in range(7)]
    following = html.unescape(re.search(r'href="([^"]+)" rel="next"', week.text).group(1))
    assert "branch=ZX" in following and "view=week" in following
    assert f"from={(monday + dt.timedelta(days=7)).isoformat()}" in following
    next_week = await client.get(following)
    shown = re.findall(r'data-day="([0-9-]+)"', next_week.text)
    assert shown[0] == (monday + dt.timedelta(days=7)).isoformat() and len(shown) == 7
    due = [s for s in starts if monday + dt.timedelta(days=7) <= s.date() < monday + dt.timedelta(days=14)]
    assert due and all(f"{s:%H:%M}" in next_week.text for s in due)

    month = await client.get("/activities", params={"view": "month", "from": first.isoformat()})
    assert all(name in month.text for name in ("星期一", "星期三", "星期日"))
    month_days = re.findall(r'data-day="([0-9-]+)"', month.text)
    assert len(month_days) % 7 == 0 and dt.date.fromisoformat(month_days[0]).weekday() == 0
    assert first.replace(day=1).isoformat() in month_days and 'rel="prev"' in month.text
    english = await client.get("/activities", params={"view": "month", "from": first.isoformat()},
                               headers={"Accept-Language": "en"})
    assert "Monday" in english.text and "Next month" in english.text

    assert (await client.get("/activities", params={"view": "week", "from": "9999-12-31"})).status_code == 422
    assert (await client.get("/activities", params={"view": "week", "from": "2026-13-45"})).status_code == 422


async def test_planning_a_series_over_a_holiday_lists_the_days_left_out(client):
    """Issue 18, part 5 at the planning form: the series is planned, the page after it names the
    closed Saturdays it left out; ticking "also on closed days" gets the refusal instead."""
    await sign_in_staff(client)
    token = csrf_token_from((await client.get("/staff/activities/")).text)
    form = {"_csrf_token": token, "branch": "ZX", "room": "STUDY", "kind": "lecture", "title_zh": "秋季故事会",
            "day": "2026-09-19", "start": "15:00", "end": "16:00", "capacity": "20", "repeat": "weekly",
            "until": "2026-10-17"}
    planned = await client.post("/staff/activities/", data=form)
    assert planned.status_code == 303 and "skipped=2026-09-26,2026-10-03" in planned.headers["location"]
    shown = await client.get(planned.headers["location"])
    assert 'data-skipped' in shown.text and 'datetime="2026-10-03"' in shown.text and "闭馆日" in shown.text
    assert await Occurrence.count().where(Occurrence.event.title_zh == "秋季故事会") == 3
    refused = await client.post("/staff/activities/", data={**form, "title_zh": "秋季故事会二", "start": "17:00",
                                                            "end": "18:00", "on_closed_days": "on"})
    assert refused.status_code == 409 and "2026-10-03 17:00" in refused.text
