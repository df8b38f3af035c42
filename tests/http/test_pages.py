"""The pages people use: language, sign-in, rights, CSRF, sessions, friendly errors."""

import datetime as dt
import re
import time

from library.clock import set_clock
from library.web import auth
from tests.http.conftest import FROZEN_NOW
from tests.support import csrf_token_from, form_token, sign_in_patron, sign_in_staff


async def test_home_is_in_chinese_by_default(client):
    page = await client.get("/")
    assert page.status_code == 200
    assert '<html lang="zh-CN">' in page.text
    assert "身边的图书馆" in page.text and "振兴社区智慧书房" in page.text


async def test_home_follows_the_browser_language(client):
    page = await client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert "Libraries near you" in page.text and "Zhenxing Community Smart Study Room" in page.text


async def test_the_language_switch_is_remembered_and_stays_on_the_page(client):
    switched = await client.get("/language", params={"lang": "en", "next": "/branches/ZX"})
    assert switched.status_code == 303 and switched.headers["location"] == "/branches/ZX"
    page = await client.get("/branches/ZX")
    assert "Opening hours" in page.text and "Kids&#39; space (Linle)" in page.text


async def test_the_language_switch_never_redirects_off_site(client):
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = await client.get("/language", params={"lang": "en", "next": target})
        assert response.headers["location"] == "/"


async def test_branch_page_shows_closed_days_with_reasons(client):
    page = await client.get("/branches/ZX", headers={"Accept-Language": "en"})
    assert re.search(r'data-day="2026-..-..".*Closed \(regular closing day\)', page.text, re.S)
    assert "30 seats" in page.text


async def test_an_unknown_branch_is_a_friendly_404_in_the_readers_language(client):
    page = await client.get("/branches/NOPE")
    assert page.status_code == 404
    assert "没有代码为 NOPE 的场馆" in page.text and "Traceback" not in page.text


async def test_an_unknown_address_is_a_friendly_404(client):
    page = await client.get("/no/such/page", headers={"Accept-Language": "en"})
    assert page.status_code == 404
    assert "We could not find the page" in page.text and "<html" in page.text


async def test_a_reader_signs_in_and_sees_their_children(client):
    response = await sign_in_patron(client)
    assert response.status_code == 303 and response.headers["location"] == "/account"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    page = await client.get("/account")
    assert "王芳" in page.text and "李小米" in page.text and "李小宇" in page.text
    assert "5 岁" in page.text


async def test_a_wrong_pin_is_shown_on_the_form_in_chinese(client):
    response = await sign_in_patron(client, pin="000000")
    assert response.status_code == 401
    assert "读者证号或密码不正确" in response.text
    assert 'value="ZX10000001"' in response.text  # the card number is kept, the PIN is not


async def test_the_sixth_wrong_pin_in_a_minute_is_throttled(client):
    for _ in range(5):
        assert (await sign_in_patron(client, pin="000000")).status_code == 401
    throttled = await sign_in_patron(client, pin="123456")
    assert throttled.status_code == 429
    assert "登录失败次数过多" in throttled.text


async def test_the_throttled_sign_in_forms_say_when_to_try_again(client):
    """The README: beyond the limit the answer is 429 with Retry-After — the forms too, not only the API."""
    for _ in range(5):
        assert (await sign_in_patron(client, pin="000000")).status_code == 401
    throttled = await sign_in_patron(client)
    assert throttled.status_code == 429 and 'name="card_number"' in throttled.text
    # Every failure was at the frozen clock's instant: the oldest leaves the window in 60 s.
    assert throttled.headers["retry-after"] == "60" and "请 60 秒后再试" in throttled.text
    set_clock(lambda: FROZEN_NOW + dt.timedelta(seconds=45))
    later = await sign_in_patron(client)
    assert later.status_code == 429 and later.headers["retry-after"] == "15"

    for _ in range(5):
        assert (await sign_in_staff(client, password="wrong-password")).status_code == 401
    staff = await sign_in_staff(client)
    assert staff.status_code == 429 and 'name="username"' in staff.text
    assert staff.headers["retry-after"] == "60"
    # A refusal that is not a throttle says nothing about retrying.
    assert "retry-after" not in (await sign_in_patron(client, card="ZX10000002", pin="000000")).headers


async def test_a_blocked_reader_sees_why(client):
    await sign_in_patron(client, card="ZX10000004")
    assert "此读者证已冻结" in (await client.get("/account")).text


async def test_a_reader_cannot_open_staff_pages(client):
    await sign_in_patron(client)
    for path in ("/staff/", "/staff/patrons", "/staff/branches/ZX/calendar"):
        page = await client.get(path)
        assert page.status_code == 403, path
        assert "此页面仅供图书馆工作人员使用" in page.text


async def test_a_visitor_is_sent_to_the_staff_sign_in_and_back(client):
    response = await client.get("/staff/patrons")
    assert response.status_code == 303
    assert response.headers["location"] == "/staff/signin?next=%2Fstaff%2Fpatrons"


async def test_staff_sign_in_shows_the_staff_menu(client):
    response = await sign_in_staff(client)
    assert response.headers["location"] == "/staff/"
    page = await client.get("/staff/")
    assert 'data-menu="staff"' in page.text and "馆员工作台" in page.text
    assert "/staff/branches/ZX/calendar" in page.text and "/staff/branches/JX/calendar" not in page.text


async def test_a_form_post_without_the_csrf_token_is_refused_politely(client):
    response = await client.post("/signin", data={"card_number": "ZX10000001", "pin": "123456"})
    assert response.status_code == 403
    assert "表单已过期" in response.text
    assert "library_session" not in response.headers.get("set-cookie", "")


async def test_an_expired_session_asks_to_sign_in_again(client, monkeypatch):
    await sign_in_patron(client)
    assert (await client.get("/account")).status_code == 200
    later = time.time() + 9 * 3600
    monkeypatch.setattr(auth.time, "time", lambda: later)
    response = await client.get("/account")
    assert response.status_code == 303 and "expired=1" in response.headers["location"]
    page = await client.get(response.headers["location"])
    assert "登录已过期，请重新登录" in page.text


async def test_sign_out(client):
    await sign_in_patron(client)
    token = csrf_token_from((await client.get("/account")).text)
    response = await client.post("/signout", data={"_csrf_token": token})
    assert response.status_code == 303
    assert (await client.get("/account")).status_code == 303


async def test_staff_add_a_closure_and_see_it(client):
    await sign_in_staff(client)
    token = await form_token(client, "/staff/branches/ZX/calendar")
    response = await client.post("/staff/branches/ZX/calendar/", data={
        "_csrf_token": token, "day": "2026-12-22", "is_open": "closed", "reason_zh": "冬至活动布置", "reason_en": ""})
    assert response.status_code == 303
    page = await client.get("/branches/ZX")
    assert "冬至活动布置" not in page.text  # beyond the next two weeks
    calendar = await client.get("/staff/branches/ZX/calendar")
    assert 'data-day="2026-12-22"' in calendar.text and "冬至活动布置" in calendar.text


async def test_a_bad_closure_is_reshown_with_the_reason(client):
    await sign_in_staff(client)
    token = await form_token(client, "/staff/branches/ZX/calendar")
    response = await client.post("/staff/branches/ZX/calendar/", data={
        "_csrf_token": token, "day": "22/12/2026", "is_open": "closed", "reason_zh": "<script>x</script>"})
    assert response.status_code == 422
    assert "请按 YYYY-MM-DD 格式输入日期" in response.text
    assert "&lt;script&gt;x&lt;/script&gt;" in response.text and "<script>x" not in response.text


async def test_a_librarian_cannot_close_another_branch(client):
    await sign_in_staff(client)
    token = await form_token(client, "/staff/branches/JX/calendar")
    response = await client.post("/staff/branches/JX/calendar/", data={
        "_csrf_token": token, "day": "2026-12-22", "is_open": "closed", "reason_zh": "不行"})
    assert response.status_code == 403
    assert "您不是场馆 JX 的工作人员" in response.text


async def test_staff_register_a_child_for_a_guardian(client):
    await sign_in_staff(client)
    token = await form_token(client, "/staff/patrons/new")
    response = await client.post("/staff/patrons/new", data={
        "_csrf_token": token, "card_number": "ZX10000077", "name": "李小满", "birth_date": "2022-09-01",
        "category": "child", "home_branch": "ZX", "guardian_card_number": "ZX10000001", "language": "zh_CN",
        "pin": "8642"})
    assert response.status_code == 303
    assert "李小满" in (await client.get(response.headers["location"])).text


async def test_a_duplicate_card_is_reshown_with_the_values_kept(client):
    await sign_in_staff(client)
    token = await form_token(client, "/staff/patrons/new")
    response = await client.post("/staff/patrons/new", data={
        "_csrf_token": token, "card_number": "ZX10000001", "name": "重复", "category": "adult",
        "home_branch": "ZX", "language": "zh_CN", "pin": "8642"})
    assert response.status_code == 409
    assert "读者证号 ZX10000001 已被使用" in response.text and 'value="重复"' in response.text


async def test_an_unexpected_error_is_a_friendly_500(app, client):
    from litestar import get

    @get("/boom", include_in_schema=False, opt={"permission": "public"})
    async def boom() -> str:
        raise RuntimeError("secret internals")

    app.register(boom)
    page = await client.get("/boom")
    assert page.status_code == 500
    assert "系统出现了问题" in page.text and "secret internals" not in page.text


async def test_static_assets_are_served_locally(client):
    page = await client.get("/")
    for asset in re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text):
        assert (await client.get(asset)).status_code == 200
    assert "http://" not in page.text.replace("http://www.w3.org", "") and "https://" not in page.text


async def test_staff_block_a_card_and_the_reader_sees_the_reason(client):
    await sign_in_staff(client)
    token = await form_token(client, "/staff/patrons/ZX10000001")
    response = await client.post("/staff/patrons/ZX10000001/block", data={"_csrf_token": token,
                                                                        "block_reason": "逾期图书未还"})
    assert response.status_code == 303 and response.headers["location"].endswith("?done=blocked")
    client.cookies.clear()
    await sign_in_patron(client)
    assert "此读者证已冻结：逾期图书未还" in (await client.get("/account")).text


async def test_staff_reset_pin_with_a_bad_pin_is_explained(client):
    await sign_in_staff(client)
    token = await form_token(client, "/staff/patrons/ZX10000001")
    response = await client.post("/staff/patrons/ZX10000001/pin", data={"_csrf_token": token, "pin": "12"})
    assert response.status_code == 422 and "密码为 4 至 12 位数字" in response.text


async def test_an_unknown_card_at_the_desk(client):
    await sign_in_staff(client)
    page = await client.get("/staff/patrons/NOSUCH")
    assert page.status_code == 404 and "没有读者证号为 NOSUCH 的读者" in page.text


async def test_a_reader_changes_their_pin_on_the_page(client):
    await sign_in_patron(client)
    token = await form_token(client, "/account/pin")
    response = await client.post("/account/pin", data={"_csrf_token": token, "current_pin": "123456",
                                                       "new_pin": "2580", "repeated_pin": "2580"})
    assert response.status_code == 303
    assert "密码已修改" in (await client.get(response.headers["location"])).text


async def test_an_oversized_form_is_refused_with_a_page(client):
    token = await form_token(client, "/signin")
    response = await client.post("/signin", data={"_csrf_token": token, "card_number": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 413
    assert "提交的数据超过了系统允许的大小" in response.text


async def test_staff_are_told_next_years_holidays_are_not_published_yet(client):
    await sign_in_staff(client)
    page = await client.get("/staff/branches/ZX/calendar")
    assert 'data-notice="holiday-data"' in page.text and "2027 年的放假安排尚未收录" in page.text


async def test_home_shows_today_for_each_branch(client):
    page = await client.get("/", headers={"Accept-Language": "en"})
    # Saturday 28 November 2026: the Zhenxing room is open in two periods.
    assert "8:30 AM–11:30 AM, 1:30 PM–8:30 PM" in page.text.replace("\u202f", " ")
