"""Yearly closures over HTTP: staff see and change the holidays their branch closes on every year
where they enter closures today; readers see them on the branch page and in the calendar API, in
Chinese and in English."""

from tests.support import csrf_token_from, sign_in_patron, sign_in_staff


async def test_an_administrator_closes_the_central_library_for_the_spring_festival_break(client):
    await sign_in_staff(client, "admin", "admin-demo-pass")
    page = await client.get("/staff/branches/JX/calendar")
    assert page.status_code == 200 and "data-yearly-closures" in page.text
    # The demo's rule, checked, with the days it closes next (除夕 and 初一 of 2027).
    assert 'value="spring_festival_eve_and_day" checked' in page.text and "除夕、正月初一闭馆" in page.text
    assert 'name="closes_on_public_holidays" value="1" >' in page.text  # the central library opens on holidays
    saved = await client.post("/staff/branches/JX/calendar/yearly", data={
        "_csrf_token": csrf_token_from(page.text), "yearly_closures": ["spring_festival", "mid_autumn"]})
    assert saved.status_code == 303
    again = await client.get("/staff/branches/JX/calendar")
    assert 'value="spring_festival" checked' in again.text and 'value="mid_autumn" checked' in again.text
    assert 'value="spring_festival_eve_and_day" checked' not in again.text
    days = (await client.get("/api/branches/JX/calendar", params={"start": "2027-02-04", "days": 8})).json()
    assert [day["is_open"] for day in days] == [True] + [False] * 6 + [True]  # 5 to 10 February 2027
    assert days[1]["note_zh"] == "春节假期闭馆" and days[1]["note_en"] == "Closed for the Spring Festival holiday"
    assert (await client.get("/api/branches/JX")).json()["yearly_closures"] == ["spring_festival", "mid_autumn"]
    await client.get("/language", params={"lang": "en", "next": "/"})
    english = await client.get("/branches/JX")
    assert "data-yearly-closures" in english.text and "Closed for the Spring Festival holiday" in english.text
    assert "春节假期闭馆" not in english.text
    staff_english = await client.get("/staff/branches/JX/calendar")
    assert "Closed for the Mid-Autumn Festival holiday" in staff_english.text


async def test_the_branch_page_names_the_yearly_closure_in_chinese(client):
    page = await client.get("/branches/JX")
    assert page.status_code == 200 and "data-yearly-closures" in page.text and "除夕、正月初一闭馆" in page.text
    # Zhenxing closes on every public holiday and keeps no yearly rule of its own.
    assert "data-yearly-closures" not in (await client.get("/branches/ZX")).text


async def test_a_librarian_may_not_change_another_branchs_rules(client):
    await sign_in_staff(client)  # Zhenxing's librarian
    page = await client.get("/staff/branches/JX/calendar")
    assert 'name="yearly_closures"' not in page.text and "除夕、正月初一闭馆" in page.text  # shown, not editable
    token = csrf_token_from((await client.get("/staff/branches/ZX/calendar")).text)
    refused = await client.post("/staff/branches/JX/calendar/yearly", data={"_csrf_token": token,
                                                                         "yearly_closures": ["national_day"]})
    assert refused.status_code == 403 and "您不是场馆 JX 的工作人员" in refused.text
    assert (await client.get("/api/branches/JX")).json()["yearly_closures"] == ["spring_festival_eve_and_day"]


async def test_a_forged_rule_is_refused_with_the_form_reshown(client):
    """A hand-made form (a broken client, or someone probing) sends a value no checkbox offers."""
    await sign_in_staff(client)
    page = await client.get("/staff/branches/ZX/calendar")
    refused = await client.post("/staff/branches/ZX/calendar/yearly", data={
        "_csrf_token": csrf_token_from(page.text), "closes_on_public_holidays": "1",
        "yearly_closures": ["<b>every_day</b>"]})
    assert refused.status_code == 422 and "data-yearly-closures" in refused.text
    assert "<b>every_day</b>" not in refused.text
    assert (await client.get("/api/branches/ZX")).json()["closes_on_public_holidays"] is True


async def test_a_reader_cannot_post_the_rules(client):
    await sign_in_patron(client)
    page = await client.get("/account")
    response = await client.post("/staff/branches/ZX/calendar/yearly", data={
        "_csrf_token": csrf_token_from(page.text), "yearly_closures": ["national_day"]})
    assert response.status_code in (303, 403)
    assert (await client.get("/api/branches/ZX")).json()["yearly_closures"] == []
