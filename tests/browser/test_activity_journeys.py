"""Activities in a real browser: planning against rooms, a family registering, the waitlist moving."""

import datetime as dt

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def next_weekday(weekday: int, weeks_ahead: int = 3) -> dt.date:
    """A day well after the demo's first sessions, on the given weekday (0 = Monday)."""
    today = dt.date.today()
    day = today + dt.timedelta(weeks=weeks_ahead)
    return day + dt.timedelta(days=(weekday - day.weekday()) % 7)


def sign_in_staff(page):
    page.goto("/staff/signin")
    page.fill("input[name=username]", "librarian")
    page.fill("input[name=password]", "librarian-demo")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_be_visible()


def sign_in_reader(page, card):
    page.goto("/signin")
    page.fill("input[name=card_number]", card)
    page.fill("input[name=pin]", "123456")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("我的账户")


def plan(page, title, day, start, end, room, capacity, weekly_until=None, age_min="", age_max=""):
    page.goto("/staff/activities/")
    form = page.locator("[data-form=event]")
    form.locator("select[name=branch]").select_option("ZX")
    form.locator("select[name=room]").select_option(room)
    form.locator("input[name=title_zh]").fill(title)
    form.locator("input[name=day]").fill(day.isoformat())
    form.locator("input[name=start]").fill(start)
    form.locator("input[name=end]").fill(end)
    form.locator("input[name=capacity]").fill(str(capacity))
    form.locator("input[name=age_min]").fill(age_min)
    form.locator("input[name=age_max]").fill(age_max)
    if weekly_until:
        form.locator("select[name=repeat]").select_option("weekly")
        form.locator("input[name=until]").fill(weekly_until.isoformat())
    form.locator("button[type=submit]").click()


def test_a_librarian_schedules_a_weekly_club_and_is_refused_an_overlap(desktop):
    page = desktop
    sign_in_staff(page)
    thursday = next_weekday(3)
    plan(page, "周四故事会", thursday, "16:00", "17:00", "KIDS", 20, weekly_until=thursday + dt.timedelta(weeks=3))
    expect(page.locator("h1")).to_have_text("周四故事会")
    plan(page, "周四手偶剧", thursday + dt.timedelta(weeks=1), "16:30", "17:30", "KIDS", 20)
    refused = page.locator("[data-refused]")
    expect(refused).to_contain_text("邻乐空间")
    expect(refused).to_contain_text("周四故事会")
    page.goto(f"/staff/activities/week?branch=ZX&start={thursday.isoformat()}")
    expect(page.locator("table.week tr[data-room=KIDS]")).to_contain_text("周四故事会")


def test_a_mother_registers_her_children_and_the_three_year_old_is_told_why_not(phone):
    page = phone
    sign_in_reader(page, "ZX10000001")
    page.goto("/activities?branch=ZX&kind=reading_club")
    page.locator("ul.sessions li a").first.click()
    expect(page.locator("h1")).to_have_text("周六绘本俱乐部")
    page.check("input[name=card][value=ZX10000002]")
    page.check("input[name=card][value=ZX10000003]")
    page.click("[data-action=register]")
    expect(page.locator("[data-refused]")).to_contain_text("李小宇 3 岁；本场活动适合 4 至 6 岁。")
    page.check("input[name=card][value=ZX10000002]")
    page.click("[data-action=register]")
    expect(page.locator("[data-outcome=ZX10000002]")).to_contain_text("李小米")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0


def test_a_cancellation_gives_the_seat_to_the_first_on_the_waitlist(browser, server):
    def new_page():
        context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 800}, locale="zh-CN")
        return context, context.new_page()

    staff_context, staff = new_page()
    sign_in_staff(staff)
    tuesday = next_weekday(1)
    plan(staff, "一人手工体验", tuesday, "15:00", "16:00", "CRAFT", 1)
    session_url = staff.url.split("?")[0]

    mother_context, mother = new_page()
    sign_in_reader(mother, "ZX10000001")
    mother.goto(session_url)
    mother.check("input[name=card][value=ZX10000002]")
    mother.click("[data-action=register]")
    expect(mother.locator("[data-outcome=ZX10000002]")).to_have_class("ok")

    grandpa_context, grandpa = new_page()
    sign_in_reader(grandpa, "JX20000001")
    grandpa.goto(session_url)
    grandpa.click("[data-action=register]")
    expect(grandpa.locator("[data-outcome=JX20000001]")).to_contain_text("候补")

    mother.goto(session_url)
    mother.locator("[data-registration=ZX10000002] button").click()
    expect(mother.locator("[role=status]")).to_contain_text("已取消")

    grandpa.goto(session_url)
    expect(grandpa.locator("[data-registration=JX20000001]")).to_contain_text("已报名")
    for context in (staff_context, mother_context, grandpa_context):
        context.close()
