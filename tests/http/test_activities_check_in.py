"""Check-in by card at the door, over HTTP: the staff page takes a card only within the window
around the session (LIBRARY_CHECKIN_OPENS_MINUTES_BEFORE, LIBRARY_CHECKIN_CLOSES_MINUTES_AFTER),
and a guardian's card checks in the family, listed on the page."""

import datetime as dt
import os

from library.accounts.service import load_principal
from library.accounts.tables import Patron
from library.activities import service
from library.activities.tables import Occurrence
from library.app import create_app
from library.clock import set_clock
from library.settings import load_settings
from tests.http.conftest import FROZEN_NOW
from tests.support import client_for, csrf_token_from, sign_in_patron, sign_in_staff

LECTURE = "知识讲堂：给孩子选好书"  # the demo's Friday lecture, 19:00–20:30, for every age
MOTHER, XIAOMI, XIAOYU = "ZX10000001", "ZX10000002", "ZX10000003"


async def family_at_the_lecture() -> tuple[str, dt.datetime]:
    """The mother registers herself and both children for the first lecture; its start (UTC)."""
    row = await Occurrence.select(Occurrence.uuid, Occurrence.starts_at).where(
        Occurrence.event.title_zh == LECTURE).order_by(Occurrence.starts_at).first()
    session = str(row["uuid"])
    mother = await load_principal("patron", (await Patron.select(Patron.id).where(
        Patron.card_number == MOTHER).first())["id"])
    await service.register(mother, session, [MOTHER, XIAOMI, XIAOYU], FROZEN_NOW)
    return session, row["starts_at"]


async def scan(client, session: str, card: str):
    page = await client.get(f"/staff/activities/sessions/{session}")
    return await client.post(f"/staff/activities/sessions/{session}/check-in",
                             data={"_csrf_token": csrf_token_from(page.text), "card": card})


async def test_the_door_takes_a_card_only_within_the_window_and_a_guardian_s_card_brings_the_family(client):
    session, starts = await family_at_the_lecture()
    await sign_in_staff(client)
    page = await client.get(f"/staff/activities/sessions/{session}")
    assert "18:00" in page.text.split("data-check-in-window")[1][:200]  # an hour before 19:00
    assert "21:00" in page.text.split("data-check-in-window")[1][:200]  # half an hour after 20:30

    early = await scan(client, session, MOTHER)  # today is 28 November, six days before
    assert early.status_code == 409 and "data-check-in-refused" in early.text
    assert 'data-reason="check_in_not_open"' in early.text and "18:00" in early.text
    assert "data-checked-in" not in early.text

    set_clock(lambda: starts - dt.timedelta(minutes=20))  # Friday 18:40 at the door
    await sign_in_staff(client)
    family = await scan(client, session, MOTHER.lower())
    assert family.status_code == 200
    for card in (MOTHER, XIAOMI, XIAOYU):
        assert f'data-checked-in="{card}"' in family.text
    assert "王芳" in family.text and "李小米" in family.text and "李小宇" in family.text
    assert '<tr data-card="ZX10000002"><td>2</td><td>李小米 (ZX10000002)</td><td>attended</td></tr>' in family.text

    again = await scan(client, session, XIAOMI)
    assert again.status_code == 200 and 'data-already="ZX10000002"' in again.text and "18:40" in again.text
    assert "data-checked-in=" not in again.text and 'role="alert"' not in again.text

    stranger = await scan(client, session, "JX20000001")
    assert stranger.status_code == 409 and 'data-reason="not_registered"' in stranger.text and "张建国" in stranger.text
    unknown = await scan(client, session, "ZX99999999")
    assert unknown.status_code == 404 and "ZX99999999" in unknown.text

    set_clock(lambda: starts + dt.timedelta(hours=3))  # 22:00, the lecture is over
    await sign_in_staff(client)
    late = await scan(client, session, XIAOYU)
    assert late.status_code == 409 and 'data-reason="check_in_closed"' in late.text and "21:00" in late.text


async def test_check_in_by_card_is_for_staff_only(client):
    session, _ = await family_at_the_lecture()
    await sign_in_patron(client)  # the mother, not the librarian
    page = await client.get(f"/activities/sessions/{session}")
    refused = await client.post(f"/staff/activities/sessions/{session}/check-in",
                                data={"_csrf_token": csrf_token_from(page.text), "card": MOTHER})
    assert refused.status_code == 403
    assert {r["status"] for r in await service.waitlist(session)} == {"confirmed"}


async def test_the_window_is_a_setting(demo):
    settings = load_settings({**os.environ, "LIBRARY_CHECKIN_OPENS_MINUTES_BEFORE": "15",
                              "LIBRARY_CHECKIN_CLOSES_MINUTES_AFTER": "0"})
    async with client_for(create_app(settings)) as client:
        session, starts = await family_at_the_lecture()
        set_clock(lambda: starts - dt.timedelta(minutes=20))  # 18:40: too early when the door opens at 18:45
        await sign_in_staff(client)
        page = await client.get(f"/staff/activities/sessions/{session}")
        window = page.text.split("data-check-in-window")[1][:200]
        assert "18:45" in window and "20:30" in window
        early = await scan(client, session, MOTHER)
        assert early.status_code == 409 and 'data-reason="check_in_not_open"' in early.text and "18:45" in early.text
        set_clock(lambda: starts - dt.timedelta(minutes=10))
        await sign_in_staff(client)
        family = await scan(client, session, MOTHER)
        assert family.status_code == 200 and f'data-checked-in="{XIAOYU}"' in family.text
