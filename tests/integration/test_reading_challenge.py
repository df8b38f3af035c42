"""The reading challenge: logging, badges, goals per age group, loans counted on opt-in, masked standings."""

import csv
import datetime as dt
import io

import pytest

from library.accounts.service import load_principal
from library.accounts.tables import Patron
from library.activities import challenge
from library.activities.challenge import ProgrammeInput
from library.demo import _NETWORK_ADMIN, load_demo
from library.errors import InvalidInput, NotPermitted
from library.loans import service as loans

TODAY = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
async def programme():
    await load_demo(TODAY)
    return await challenge.create_programme(_NETWORK_ADMIN, ProgrammeInput(
        title_zh="暑期阅读挑战", starts_on=TODAY, ends_on=TODAY + dt.timedelta(days=60),
        goals=[{"min": 0, "max": 6, "goal": 3}, {"min": 7, "max": 120, "goal": 10}], badges=[1, 3]))


async def mother():
    row = await Patron.select(Patron.id).where(Patron.card_number == "ZX10000001").first()
    return await load_principal("patron", row["id"])


async def test_a_child_logs_books_earns_badges_and_finishes(programme):
    guardian = await mother()
    for title in ("好饿的毛毛虫", "猜猜我有多爱你"):
        await challenge.log_reading(guardian, programme, "ZX10000002", title, TODAY)
    halfway = await challenge.progress(guardian, programme, "ZX10000002", TODAY)
    assert (halfway["total"], halfway["goal"], halfway["badges"], halfway["finished"]) == (2, 3, [1], False)
    await challenge.log_reading(guardian, programme, "ZX10000002", "团圆", TODAY + dt.timedelta(days=1))
    done = await challenge.progress(guardian, programme, "ZX10000002", TODAY)
    assert done["finished"] and done["badges"] == [1, 3] and done["age_group"] == "0-6"


async def test_bad_logs_are_refused(programme):
    guardian = await mother()
    with pytest.raises(InvalidInput) as outside:
        await challenge.log_reading(guardian, programme, "ZX10000002", "好饿的毛毛虫", TODAY - dt.timedelta(days=1))
    assert outside.value.code == "outside_programme"
    with pytest.raises(InvalidInput):
        await challenge.log_reading(guardian, programme, "ZX10000002", "  ", TODAY)
    stranger = await load_principal("patron", (await Patron.select(Patron.id).where(
        Patron.card_number == "JX20000001").first())["id"])
    with pytest.raises(NotPermitted):
        await challenge.log_reading(stranger, programme, "ZX10000002", "好饿的毛毛虫", TODAY)


async def test_borrowed_books_count_once_when_the_guardian_opts_in(programme):
    guardian = await mother()
    from library.catalog.tables import Item

    [barcode] = [row["barcode"] for row in await Item.select(Item.barcode).where(
        (Item.status == "available") & (Item.home_branch.code == "ZX")).order_by(Item.barcode).limit(1)]
    await loans.checkout(_NETWORK_ADMIN, "ZX", "ZX10000002", barcode, NOW)
    before = await challenge.progress(guardian, programme, "ZX10000002", TODAY)
    assert before["total"] == 0  # not opted in
    await challenge.set_log_loans(guardian, programme, "ZX10000002", True)
    after = await challenge.progress(guardian, programme, "ZX10000002", TODAY)
    again = await challenge.progress(guardian, programme, "ZX10000002", TODAY)
    assert after["total"] == again["total"] == 1 and after["logs"][0]["source"] == "loan"


async def test_the_standings_show_no_full_names_and_staff_get_the_csv(programme):
    guardian = await mother()
    await challenge.log_reading(guardian, programme, "ZX10000002", "好饿的毛毛虫", TODAY)
    await challenge.log_reading(guardian, programme, "ZX10000001", "小王子", TODAY)
    data = await challenge.standings(programme)
    shown = [person["shown"] for group in data["groups"].values() for person in group]
    assert "李** (…02)" in shown and all("李小米" not in name for name in shown)
    text = await challenge.standings_csv(_NETWORK_ADMIN, programme)
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert rows[0][:2] == ["card_number", "name"] and ["ZX10000002", "李小米", "0-6", "1", "3", "no"] in rows
    with pytest.raises(NotPermitted):
        await challenge.standings_csv(guardian, programme)
