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
from tests.support import connection_pool

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


@pytest.mark.parametrize(("goal", "expected"), [
    (10, [(1, "seedling"), (4, "bookworm"), (7, "explorer"), (10, "star"), (20, "champion")]),
    (5, [(1, "seedling"), (2, "bookworm"), (4, "explorer"), (5, "star"), (10, "champion")]),
    # A small goal makes two points equal: the badge is left out, not given twice.
    (3, [(1, "seedling"), (2, "explorer"), (3, "star"), (6, "champion")]),
    (1, [(1, "seedling"), (2, "champion")]),
])
def test_without_thresholds_of_its_own_the_badges_sit_at_points_of_the_goal(goal, expected):
    assert [(at, badge.key) for at, badge in challenge.badge_thresholds([], goal)] == expected


def test_a_programmes_own_thresholds_are_named_in_ladder_order():
    assert [(at, badge.key) for at, badge in challenge.badge_thresholds([5, 1, 3, 3], 10)] == [
        (1, "seedling"), (3, "bookworm"), (5, "explorer")]


def test_every_badge_has_its_picture_and_both_names():
    from library.settings import PACKAGE_ROOT

    for badge in challenge.LADDER:
        svg = (PACKAGE_ROOT / "static" / badge.picture.removeprefix("/static/")).read_text()
        assert f"<title id=\"title\">{badge.name_zh} {badge.name_en}</title>" in svg and 'role="img"' in svg


async def test_too_many_badges_are_refused():
    with pytest.raises(InvalidInput):
        await challenge.create_programme(_NETWORK_ADMIN, ProgrammeInput(
            title_zh="太多徽章", starts_on=TODAY, ends_on=TODAY, badges=[1, 2, 3, 4, 5, 6]))


@pytest.fixture
async def winter():
    """The demo's programme: badges at points of each child's goal (5 books up to age 6)."""
    await load_demo(TODAY)
    return (await challenge.programmes())[0]["uuid"]


async def test_a_guardian_logs_one_book_for_both_children_and_sees_the_badges_it_earned(winter):
    guardian = await mother()
    logged = await challenge.log_reading_for(guardian, winter, ["ZX10000002", "zx10000003"], "团圆", TODAY)
    assert len(logged) == 2
    for card in ("ZX10000002", "ZX10000003"):
        assert (await challenge.progress(guardian, winter, card, TODAY))["total"] == 1
    shown = await challenge.just_logged(guardian, await challenge._programme(winter), logged)
    assert [(log["name"], log["title"]) for log in shown] == [("李小米", "团圆"), ("李小宇", "团圆")]
    assert [[badge["key"] for badge in log["earned"]] for log in shown] == [["seedling"], ["seedling"]]
    # The second book earns the Bookworm (at 2 of a goal of 5); the first one's moment does not repeat.
    second = await challenge.log_reading(guardian, winter, "ZX10000002", "猜猜我有多爱你", TODAY)
    page = await challenge.progress(guardian, winter, "ZX10000002", TODAY, [second])
    assert [badge["name_zh"] for badge in page["just_logged"][0]["earned"]] == ["小书虫"]
    assert [badge["key"] for badge in page["ladder"] if badge["earned"]] == ["seedling", "bookworm"]


async def test_logging_for_a_child_who_is_not_yours_logs_for_nobody(winter):
    """All or nothing: a card the guardian may not act for refuses the whole log."""
    guardian = await mother()
    with pytest.raises(NotPermitted):
        await challenge.log_reading_for(guardian, winter, ["ZX10000002", "JX20000001"], "团圆", TODAY)
    assert (await challenge.progress(guardian, winter, "ZX10000002", TODAY))["total"] == 0
    with pytest.raises(InvalidInput):
        await challenge.log_reading_for(guardian, winter, [], "团圆", TODAY)


async def test_another_familys_log_uuid_shows_nothing(winter):
    """A hostile reader puts someone else's log uuid in the page's address: it is left out."""
    guardian = await mother()
    [theirs] = await challenge.log_reading_for(guardian, winter, ["ZX10000002"], "团圆", TODAY)
    stranger = await load_principal("patron", (await Patron.select(Patron.id).where(
        Patron.card_number == "JX20000001").first())["id"])
    programme = await challenge._programme(winter)
    assert await challenge.just_logged(stranger, programme, [theirs, "not-a-uuid"]) == []


async def test_the_household_sees_every_childs_challenge(winter):
    guardian = await mother()
    await challenge.log_reading_for(guardian, winter, ["ZX10000003"], "团圆", TODAY)
    people = [{"name": "王芳", "card_number": "ZX10000001"}, {"name": "李小宇", "card_number": "ZX10000003"},
              {"name": "张建国", "card_number": "JX20000001"}]  # not hers: left out
    [entry] = await challenge.household_challenges(guardian, people, TODAY)
    members = {member["card_number"]: member for member in entry["members"]}
    assert set(members) == {"ZX10000001", "ZX10000003"}
    assert (members["ZX10000003"]["total"], members["ZX10000003"]["goal"]) == (1, 5)
    assert [badge["key"] for badge in members["ZX10000003"]["earned"]] == ["seedling"]


async def test_two_phones_logging_for_the_same_child_at_once_both_count(winter):
    """Both guardians' phones log a first book for 李小米 at the same moment: on PostgreSQL the
    loser of a read-then-insert of her participation would fail; every log must count, once."""
    import asyncio

    from library.activities.tables import ProgrammeParticipant, ReadingLog

    guardian = await mother()
    async with connection_pool(max_size=10):
        results = await asyncio.gather(*[
            challenge.log_reading_for(guardian, winter, ["ZX10000002", "ZX10000003"], f"第{n}本", TODAY)
            for n in range(12)], return_exceptions=True)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert await ReadingLog.count().where(ReadingLog.patron.card_number == "ZX10000002") == 12
    assert await ProgrammeParticipant.count() == 2
    assert (await challenge.progress(guardian, winter, "ZX10000003", TODAY))["total"] == 12
