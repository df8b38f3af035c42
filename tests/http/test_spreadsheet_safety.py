"""Spreadsheet safety over HTTP: the CSV files staff and readers download carry a hostile name or
title as text, never as a formula, and the phone numbers and numbers in them as they were."""

import csv
import datetime as dt
import io

from library.accounts.service import load_principal
from library.accounts.tables import Patron
from library.activities import challenge
from library.activities.tables import Event, Programme
from tests.support import csrf_token_from, sign_in_patron, sign_in_staff

TODAY = dt.date(2026, 11, 28)
HOSTILE_NAME = '=HYPERLINK("http://evil","click")'


def _rows(response) -> list[list[str]]:
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


async def _programme() -> str:
    return str((await Programme.select(Programme.uuid).where(Programme.title_zh == "寒假阅读挑战").first())["uuid"])


async def _log(card_number: str, *titles: str) -> None:
    mother = await Patron.select(Patron.id).where(Patron.card_number == "ZX10000001").first()
    guardian = await load_principal("patron", mother["id"])
    for title in titles:
        await challenge.log_reading(guardian, await _programme(), card_number, title, TODAY)


async def test_staff_exports_show_a_hostile_name_and_title_as_text(client):
    await Patron.update({Patron.name: HOSTILE_NAME}).where(Patron.card_number == "ZX10000002")
    await _log("ZX10000002", "好饿的毛毛虫")
    await Event.update({Event.title_zh: "-1 的故事"}).where(Event.title_zh == "周六绘本俱乐部")
    event = (await Event.select(Event.uuid).where(Event.title_zh == "-1 的故事").first())["uuid"]
    await sign_in_staff(client)

    standings = _rows(await client.get(f"/staff/activities/challenges/{await _programme()}/export"))
    assert ["ZX10000002", "'" + HOSTILE_NAME, "0-6", "1", "5", "no"] in standings
    attendance = _rows(await client.get(f"/staff/activities/events/{event}/attendance"))
    assert {row[0] for row in attendance[1:]} == {"'-1 的故事"}
    assert all(row[3] == "25" for row in attendance[1:])  # the capacity, a number cell as before


async def test_a_readers_download_neutralises_her_name_and_keeps_her_phone_and_a_number(client):
    await Patron.update({Patron.name: "@SUM(1+1)"}).where(Patron.card_number == "ZX10000001")
    await _log("ZX10000001", "-12.5", "+cmd|' /C calc'!A0")
    await sign_in_patron(client)
    token = csrf_token_from((await client.get("/account/data")).text)
    saved = await client.post("/account/contact", data={"_csrf_token": token, "email": "",
                                                         "phone": "+86 138 0013 8000", "language": "zh_CN"})
    assert saved.status_code == 303

    rows = _rows(await client.get("/account/data.csv"))
    assert ["profile", "name", "'@SUM(1+1)"] in rows
    assert ["profile", "phone", "+86 138 0013 8000"] in rows
    titles = {row[2] for row in rows if row[0].startswith("reading_logs[") and row[1] == "title"}
    assert titles == {"-12.5", "'+cmd|' /C calc'!A0"}
