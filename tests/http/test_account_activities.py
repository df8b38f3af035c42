"""Issue 18, part 1: "My account" shows what a family is signed up for — the reader's sessions
and each child's, with their status (a seat, a waitlist place and its number, a seat offered
and until when), cancel and accept there, what happened at past sessions, each child's reading
challenge, and the family's private calendar feed."""

from __future__ import annotations

import datetime as dt
import html
import re

from library.activities import rules, service
from library.activities.service import EventInput
from library.activities.tables import Registration
from library.clock import set_clock
from tests.http.conftest import FROZEN_NOW
from tests.http.families import LIBRARIAN, register, session_at, sessions_of, signed_in
from tests.support import csrf_token_from, sign_in_patron

SATURDAY = dt.date(2026, 12, 5)  # the picture-book club's first session (the demo is planned from 28 November)


def registration_items(page: str) -> dict[str, str]:
    """The account page's list of sessions to come: registration uuid -> its item's text."""
    section = page.split('data-list="upcoming"')[1].split("</ul>")[0] if 'data-list="upcoming"' in page else ""
    return {match.group(1): re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.unescape(match.group(2))))
            for match in re.finditer(r'<li data-registration="([0-9a-f-]+)"(.*?)</li>', section, re.S)}


async def one_seat_talk(offer_minutes: int | None = None) -> str:
    """A one-seat evening talk in the discussion area on Wednesday 9 December, 19:00."""
    await service.schedule_event(LIBRARIAN, EventInput(
        branch_code="ZX", title_zh="家长沙龙", title_en="Parents' evening", kind="lecture", capacity=1,
        first_start=dt.datetime(2026, 12, 9, 19, 0), duration_minutes=60, room_code="TALK",
        offer_minutes=offer_minutes), FROZEN_NOW)
    return await session_at("家长沙龙")


async def uuid_of(card: str, session: str) -> str:
    row = await Registration.select(Registration.uuid).where(
        (Registration.patron.card_number == card) & (Registration.occurrence.uuid == session)).first()
    return str(row["uuid"])


async def test_a_mother_sees_her_children_sessions_with_time_room_and_status(app, client):
    club = await session_at("周六绘本俱乐部")
    talk = await one_seat_talk()
    async with signed_in(app, "ZX10000004") as other:  # 陈静 takes the one seat
        await register(other, talk, "ZX10000004")
    async with signed_in(app, "JX20000001") as other:  # 张建国 is first on the waitlist
        await register(other, talk, "JX20000001")
    await sign_in_patron(client)
    await register(client, club, "ZX10000002")
    await register(client, talk, "ZX10000001")

    page = await client.get("/account")
    assert page.status_code == 200
    items = registration_items(page.text)
    daughter, mother = items[await uuid_of("ZX10000002", club)], items[await uuid_of("ZX10000001", talk)]
    assert "周六绘本俱乐部" in daughter and "10:00–11:00" in daughter and "邻乐空间" in daughter
    assert "2026年12月5日星期六" in daughter and "李小米：" in daughter and "已确认" in daughter
    assert "家长沙龙" in mother and "19:00–20:00" in mother and "王芳：" in mother and "候补第 2 位" in mother
    assert list(items)[0] == await uuid_of("ZX10000002", club)  # soonest first: Saturday 5th before Wednesday 9th
    assert page.text.count('data-action="cancel-registration"') == 2 and 'data-action="accept"' not in page.text

    await client.get("/language", params={"lang": "en", "next": "/account"})
    english = await client.get("/account")
    items = registration_items(english.text)
    assert "Confirmed" in items[await uuid_of("ZX10000002", club)]
    assert "waitlist number 2" in items[await uuid_of("ZX10000001", talk)]

    # The family's feed: the daughter's seat in it, the mother's waitlist place not (no appointment yet).
    feed = html.unescape(re.search(r'href="(/activities/feeds/readers/[^"]+)" data-link="feed"', page.text).group(1))
    answer = await client.get(feed)
    assert answer.status_code == 200 and "周六绘本俱乐部" in answer.text and "家长沙龙" not in answer.text


async def test_cancelling_from_the_account_page_returns_to_it_without_the_session(app, client):
    club = await sessions_of("周六绘本俱乐部")
    await sign_in_patron(client)
    await register(client, str(club[0]["uuid"]), "ZX10000002")
    await register(client, str(club[1]["uuid"]), "ZX10000002")
    page = await client.get("/account")
    first = await uuid_of("ZX10000002", str(club[0]["uuid"]))
    assert set(registration_items(page.text)) == {first, await uuid_of("ZX10000002", str(club[1]["uuid"]))}

    # The adversary: another mother who read the registration's address off a shared screen.
    async with signed_in(app, "ZX10000004") as other:
        token = csrf_token_from((await other.get("/account")).text)
        refused = await other.post(f"/activities/registrations/{first}/cancel", data={"_csrf_token": token})
        assert refused.status_code == 404
    assert first in registration_items((await client.get("/account")).text)

    answer = await client.post(f"/activities/registrations/{first}/cancel",
                               data={"_csrf_token": csrf_token_from(page.text)})
    assert answer.status_code == 303 and answer.headers["location"] == "/account?done=registration_cancelled#activities"
    back = await client.get("/account?done=registration_cancelled")
    assert "报名已取消" in back.text or "The registration is cancelled." in back.text
    after = registration_items(back.text)
    assert first not in after and len(after) == 1


async def test_a_seat_offered_from_the_waitlist_shows_its_deadline_and_is_taken_there(app, client):
    talk = await one_seat_talk(offer_minutes=30)
    async with signed_in(app, "ZX10000004") as other:
        await register(other, talk, "ZX10000004")
        await sign_in_patron(client)
        await register(client, talk, "ZX10000001")
        token = csrf_token_from((await other.get("/account")).text)
        gone = await other.post(f"/activities/registrations/{await uuid_of('ZX10000004', talk)}/cancel",
                                data={"_csrf_token": token})
        assert gone.status_code == 303
    mine = await uuid_of("ZX10000001", talk)
    page = await client.get("/account")
    offered = registration_items(page.text)[mine]
    # Offered at 09:00 in Jiaxing (01:00 UTC), for 30 minutes: the deadline on the branch's clock.
    assert "王芳：" in offered and "09:30" in offered and "10:00" not in offered
    accept = re.search(r'<form method="post" action="(/activities/registrations/[^"]+/accept)"', page.text).group(1)
    assert accept == f"/activities/registrations/{mine}/accept"
    form = re.search(r'<form method="post" action="/activities/registrations/[^"]+/accept".*?</form>', page.text,
                     re.S).group(0)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
    assert fields["session"] == talk and fields["from"] == "account"
    taken = await client.post(accept, data=fields)
    assert taken.status_code == 303 and taken.headers["location"] == "/account?done=offer_taken#activities"
    assert "已确认" in registration_items((await client.get("/account")).text)[mine]


async def test_past_sessions_say_who_came_and_who_did_not(client):
    club = await sessions_of("周六绘本俱乐部")
    await sign_in_patron(client)
    await register(client, str(club[0]["uuid"]), "ZX10000002")
    await register(client, str(club[1]["uuid"]), "ZX10000002")
    at_the_door = dt.datetime.combine(SATURDAY, dt.time(1, 55), tzinfo=dt.timezone.utc)  # 09:55 in Jiaxing
    await service.check_in(LIBRARIAN, str(club[0]["uuid"]), "ZX10000002", at_the_door, rules.CheckInWindow())
    set_clock(lambda: FROZEN_NOW + dt.timedelta(days=16))  # after the second Saturday, which she missed
    page = await client.get("/account")
    past = page.text.split('data-list="past"')[1].split("</ul>")[0]
    came = re.findall(r'data-attendance="(\w+)" data-reader="(\w+)"', past)
    assert came == [("no_show", "ZX10000002"), ("attended", "ZX10000002")]  # the latest first
    assert "出席" in past and "未到" in past and "李小米" in past
    assert 'data-list="upcoming"' not in page.text or await uuid_of("ZX10000002", str(club[0]["uuid"])) \
        not in registration_items(page.text)


async def test_a_session_the_library_cancels_stays_on_the_page_as_cancelled(client):
    club = await session_at("周六绘本俱乐部")
    await sign_in_patron(client)
    await register(client, club, "ZX10000002")
    await service.cancel_session(LIBRARIAN, club, FROZEN_NOW)
    page = await client.get("/account")
    item = registration_items(page.text)[await uuid_of("ZX10000002", club)]
    assert "活动已由图书馆取消" in item and 'data-status="session_cancelled"' in page.text
    assert 'data-action="cancel-registration"' not in page.text


async def test_each_child_has_a_link_to_the_running_reading_challenge(client):
    await sign_in_patron(client)
    page = await client.get("/account")
    links = re.findall(r'href="(/account/challenges/[0-9a-f-]+\?card=(\w+))" data-link="challenge"', page.text)
    assert sorted(card for _, card in links) == ["ZX10000002", "ZX10000003"]
    assert "李小米" in page.text.split('class="challenge-links"')[1] and "寒假阅读挑战" in page.text
    progress = await client.get(html.unescape(links[0][0]))
    assert progress.status_code == 200 and "寒假阅读挑战" in progress.text

    # After the challenge has ended, no link to it.
    set_clock(lambda: FROZEN_NOW + dt.timedelta(days=120))
    assert 'data-link="challenge"' not in (await client.get("/account")).text


async def test_a_reader_without_registrations_is_pointed_to_the_calendar(client):
    await sign_in_patron(client, "JX20000001")
    page = await client.get("/account")
    assert page.status_code == 200 and 'data-section="activities"' in page.text
    assert 'data-list="upcoming"' not in page.text and 'href="/activities"' in page.text
    assert 'data-link="challenge"' not in page.text  # an adult without children: nobody's challenge to follow
