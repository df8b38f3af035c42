"""A whole series in one step over HTTP (issue 18, part 3), and the reader's page of notice
choices (part 2), in Chinese and English."""

from library.activities.tables import Event, Occurrence, Registration
from library.notices.tables import NoticeChoice
from tests.support import csrf_token_from, sign_in_patron


async def club() -> tuple[str, list[str]]:
    event = await Event.select(Event.uuid).where(Event.title_zh == "周六绘本俱乐部").first()
    rows = await Occurrence.select(Occurrence.uuid).where(Occurrence.event.title_zh == "周六绘本俱乐部").order_by(
        Occurrence.starts_at)
    return str(event["uuid"]), [str(row["uuid"]) for row in rows]


async def test_a_parent_previews_then_registers_her_daughter_for_the_whole_club(client):
    event, sessions = await club()
    await sign_in_patron(client)
    session_page = await client.get(f"/activities/sessions/{sessions[0]}")
    assert f'href="/activities/series/{event}/register"' in session_page.text
    choose = await client.get(f"/activities/series/{event}/register")
    assert choose.status_code == 200 and "data-rule" in choose.text and 'data-form="choose"' in choose.text
    assert choose.text.count('name="session"') == len(sessions)
    preview = await client.get(f"/activities/series/{event}/register",
                               params={"card": "ZX10000002", "chosen": "1", "session": sessions})
    assert preview.status_code == 200 and "data-preview" in preview.text
    assert preview.text.count('data-outcome="seat"') == len(sessions)
    assert await Registration.count() == 0, "a preview writes nothing"
    done = await client.post(f"/activities/series/{event}/register",
                             data={"_csrf_token": csrf_token_from(preview.text), "card": "ZX10000002",
                                   "session": sessions})
    assert done.status_code == 200 and "data-done" in done.text
    assert await Registration.count() == len(sessions)


async def test_the_toddler_is_refused_before_confirming_and_nobody_is_registered(client):
    event, sessions = await club()
    await sign_in_patron(client)
    preview = await client.get(f"/activities/series/{event}/register",
                               params={"card": ["ZX10000002", "ZX10000003"]})
    assert "data-refusals" in preview.text and 'data-action="confirm"' not in preview.text
    token = csrf_token_from(preview.text)
    refused = await client.post(f"/activities/series/{event}/register",
                                data={"_csrf_token": token, "card": ["ZX10000002", "ZX10000003"],
                                      "session": sessions})
    assert refused.status_code == 409 and "data-refused" in refused.text
    assert await Registration.count() == 0


async def test_a_forged_session_list_or_someone_else_s_child_registers_nobody(client):
    """The adversary edits the form: a session of another event, or a child not linked to them."""
    event, sessions = await club()
    other = await Occurrence.select(Occurrence.uuid).where(Occurrence.event.title_zh == "亲子编织课").first()
    await sign_in_patron(client)
    token = csrf_token_from((await client.get(f"/activities/series/{event}/register")).text)
    forged = await client.post(f"/activities/series/{event}/register",
                               data={"_csrf_token": token, "card": "ZX10000002",
                                     "session": [sessions[0], str(other["uuid"])]})
    assert forged.status_code == 422 and "role=\"alert\"" in forged.text
    await client.post("/signout", data={"_csrf_token": token})
    await sign_in_patron(client, "JX20000001")
    headers = {"X-CSRFToken": client.cookies["library_csrf"]}
    stranger = await client.post(f"/api/activities/series/{event}/registrations",
                                 json={"card_numbers": ["ZX10000002"]}, headers=headers)
    assert stranger.status_code == 403
    assert await Registration.count() == 0


async def test_the_api_registers_a_child_for_the_sessions_named(client):
    event, sessions = await club()
    await sign_in_patron(client)
    headers = {"X-CSRFToken": client.cookies["library_csrf"]}
    answer = await client.post(f"/api/activities/series/{event}/registrations",
                               json={"card_numbers": ["ZX10000002"], "sessions": sessions[:2]}, headers=headers)
    assert answer.status_code == 201
    assert [(line["session"], line["status"]) for line in answer.json()] == [(s, "confirmed") for s in sessions[:2]]
    again = await client.post(f"/api/activities/series/{event}/registrations",
                              json={"card_numbers": ["ZX10000002"], "sessions": sessions[:3]}, headers=headers)
    assert [line["status"] for line in again.json()] == ["already", "already", "confirmed"]


async def test_a_reader_turns_off_reminders_on_the_notices_page_in_either_language(client):
    await sign_in_patron(client)
    page = await client.get("/account/notices")
    assert page.status_code == 200 and 'data-kind="session_reminder"' in page.text and "提醒" in page.text
    kept = ["registration_confirmed", "session_cancelled"]
    saved = await client.post("/account/notices", data={"_csrf_token": csrf_token_from(page.text), "receive": kept})
    assert saved.status_code == 303
    rows = {row["kind"]: row["receive"] for row in await NoticeChoice.select(NoticeChoice.kind, NoticeChoice.receive)}
    assert rows["session_reminder"] is False and rows["registration_confirmed"] is True
    forged = await client.post("/account/notices", data={"_csrf_token": csrf_token_from(page.text),
                                                          "receive": ["overdue"]})
    assert forged.status_code == 422 and "role=\"alert\"" in forged.text
    english = await client.get("/account/notices", headers={"Accept-Language": "en"}, params={"lang": "en"})
    assert english.status_code == 200


async def test_the_notices_page_is_for_readers_only(client):
    anonymous = await client.get("/account/notices")
    assert anonymous.status_code in (303, 401, 403) or "signin" in anonymous.text
