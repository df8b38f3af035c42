"""The volunteers' pages over HTTP, signed in as the demo's volunteer (林晨星) and librarian."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest

from library.app import create_app
from library.clock import set_clock
from library.demo import load_demo
from library.settings import load_settings
from library.volunteers.tables import Shift, ShiftSignUp
from tests.support import client_for, csrf_token_from, sign_in_staff

FROZEN_NOW = dt.datetime(2026, 11, 28, 1, 0, tzinfo=dt.timezone.utc)  # Saturday 09:00 in Jiaxing


@pytest.fixture(autouse=True)
def frozen_clock():
    set_clock(lambda: FROZEN_NOW)
    yield
    set_clock(None)


@pytest.fixture
async def client():
    await load_demo(dt.date(2026, 11, 28), books=False)
    async with client_for(create_app(load_settings())) as client:
        yield client


async def volunteer(client):
    answer = await sign_in_staff(client, "volunteer", "volunteer-demo")
    assert answer.status_code in (302, 303), answer.text[:300]


async def test_a_volunteer_signs_up_for_an_after_school_shift_and_sees_it(client):
    await volunteer(client)
    page = await client.get("/volunteer/", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    free = await Shift.select(Shift.uuid).where((Shift.kind == "after_school") & (Shift.taken == 0)).first()
    assert f'action="/volunteer/shifts/{free["uuid"]}/sign-up"' in page.text
    token = csrf_token_from(page.text)
    answer = await client.post(f"/volunteer/shifts/{free['uuid']}/sign-up", data={"_csrf_token": token})
    assert answer.status_code == 303
    page = await client.get("/volunteer/")
    block = re.search(rf'data-shift="{free["uuid"]}".*?</li>', page.text, re.S).group(0)
    assert "data-mine=" in block and 'data-action="withdraw"' in block
    # The same button again: refused with the reason on the page, the count unchanged.
    again = await client.post(f"/volunteer/shifts/{free['uuid']}/sign-up", data={"_csrf_token": token})
    assert again.status_code == 409 and 'role="alert"' in again.text
    assert (await Shift.select(Shift.taken).where(Shift.uuid == free["uuid"]).first())["taken"] == 1


async def test_a_volunteer_poking_at_the_librarians_pages_is_refused(client):
    await volunteer(client)
    for path in ("/staff/volunteers/", "/staff/volunteers/hours", "/staff/volunteers/hours.csv",
                 "/staff/volunteers/certificate/volunteer"):
        answer = await client.get(path)
        assert answer.status_code == 403, path
    page = await client.get("/volunteer/")
    sign_up = await ShiftSignUp.select(ShiftSignUp.uuid).first()
    answer = await client.post(f"/staff/volunteers/sign-ups/{sign_up['uuid']}/times",
                               data={"_csrf_token": csrf_token_from(page.text), "day": "2026-11-29", "in": "08:00",
                                     "out": "20:00"})
    assert answer.status_code == 403
    assert (await ShiftSignUp.select(ShiftSignUp.checked_in_at).where(
        ShiftSignUp.uuid == sign_up["uuid"]).first())["checked_in_at"] is None


async def test_signed_out_nobody_sees_the_shifts(client):
    for path in ("/volunteer/", "/volunteer/certificate", "/staff/volunteers/"):
        answer = await client.get(path, follow_redirects=False)
        assert answer.status_code in (401, 302, 303), path


async def test_the_librarian_plans_a_shift_and_a_wrong_one_comes_back_with_the_message(client):
    await sign_in_staff(client)
    page = await client.get("/staff/volunteers/", headers={"Accept-Language": "en"})
    assert page.status_code == 200 and 'data-form="plan-shift"' in page.text
    helper = await Shift.select(Shift.occurrence.uuid.as_alias("session")).where(
        Shift.kind == "activity_helper").first()
    assert f'<option value="{helper["session"]}"' in page.text  # a session to plan helpers for
    token = csrf_token_from(page.text)
    before = await Shift.count()
    bad = await client.post("/staff/volunteers/shifts", headers={"Accept-Language": "en"}, data={
        "_csrf_token": token, "branch": "ZX", "kind": "after_school", "day": "2026-12-01", "start": "17:30",
        "end": "15:30", "needed": "2", "note": "晚班"})
    assert bad.status_code == 422 and "班次须在同一天内，结束时间晚于开始时间。" in bad.text and 'value="晚班"' in bad.text
    good = await client.post("/staff/volunteers/shifts", data={
        "_csrf_token": token, "branch": "ZX", "kind": "after_school", "day": "2026-12-01", "start": "15:30",
        "end": "17:30", "needed": "2", "note": "晚班"})
    assert good.status_code == 303
    assert await Shift.count() == before + 1


async def test_hours_csv_and_certificate(client):
    sign_up = await ShiftSignUp.select(ShiftSignUp.uuid, ShiftSignUp.shift.local_start.as_alias("start")).first()
    await sign_in_staff(client)
    page = await client.get("/staff/volunteers/")
    day = sign_up["start"].date().isoformat()
    answer = await client.post(f"/staff/volunteers/sign-ups/{sign_up['uuid']}/times", data={
        "_csrf_token": csrf_token_from(page.text), "day": day, "in": "15:00", "out": "17:30"})
    assert answer.status_code == 303
    month = sign_up["start"].strftime("%Y-%m")
    download = await client.get(f"/staff/volunteers/hours.csv?branch=ZX&month={month}",
                                headers={"Accept-Language": "en"})
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(download.text.removeprefix("\ufeff"))))
    assert rows[0] == ["场馆", "月", "志愿者", "班次", "服务时长（小时）"]  # the librarian reads Chinese
    assert rows[1][:3] == ["ZX", month, "林晨星"] and rows[1][4] == "2.5"
    certificate = await client.get(f"/staff/volunteers/certificate/volunteer?from={month}-01&to={day}")
    assert certificate.status_code == 200
    assert 'data-total-hours="2.5"' in certificate.text and "林晨星" in certificate.text
    assert "志愿服务证明" in certificate.text  # the staff read it in Chinese
    # No inline script: the only script is the site's own file.
    assert re.findall(r"<script[^>]*>", certificate.text) == ['<script src="/static/library.js" defer>']
    # The annual return reads the same hours.
    annual = await client.get(f"/staff/reports/annual?year={month[:4]}&branch=ZX")
    assert re.search(r"志愿服务时长</th><td>2\.5<", annual.text)


async def test_the_session_page_shows_its_helpers(client):
    helper = await Shift.select(Shift.occurrence.uuid.as_alias("session")).where(
        Shift.kind == "activity_helper").first()
    assert helper is not None and await ShiftSignUp.exists().where(ShiftSignUp.shift.kind == "activity_helper")
    anonymous = await client.get(f"/activities/sessions/{helper['session']}", headers={"Accept-Language": "en"})
    assert 'data-section="helpers"' in anonymous.text and "1 volunteer helps at this session." in anonymous.text
    assert "林晨星" not in anonymous.text  # a visitor learns how many, not who
    await sign_in_staff(client)
    staff = await client.get(f"/activities/sessions/{helper['session']}")
    assert '<span data-helper>林晨星</span>' in staff.text


async def test_a_volunteer_is_linked_to_their_reader_card_and_a_form_without_a_name_is_refused(client):
    """The profile keeps the link to the card, nothing of the reader's details; a form that names
    no volunteer is the librarian's slip (400 with the field), not a refusal of their rights."""
    from library.accounts.tables import Patron
    from library.volunteers.tables import VolunteerProfile

    await sign_in_staff(client)
    token = csrf_token_from((await client.get("/staff/volunteers/")).text)
    card = (await Patron.select(Patron.card_number).where(Patron.home_branch.code == "ZX").first())["card_number"]
    answer = await client.post("/staff/volunteers/profiles", data={
        "_csrf_token": token, "branch": "ZX", "username": "volunteer", "card_number": card.lower()})
    assert answer.status_code == 303, answer.text[:300]
    linked = await VolunteerProfile.select(VolunteerProfile.patron.card_number.as_alias("card")).first()
    assert linked["card"] == card
    empty = await client.post("/staff/volunteers/profiles",
                              data={"_csrf_token": token, "branch": "ZX", "username": "", "card_number": ""})
    assert empty.status_code in (400, 422) and "此项为必填项。" in empty.text  # the librarian's language
    assert (await VolunteerProfile.select(VolunteerProfile.patron.card_number.as_alias("card")).first()) == linked
