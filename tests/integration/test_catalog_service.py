import asyncio
import datetime as dt

import pytest

from library.accounts.principal import Principal
from library.branches.tables import AuditEntry, Branch
from library.catalog import search, service
from library.catalog.service import NewCopies, RecordInput, SearchFilters
from library.catalog.tables import Item, PossibleDuplicate, Record
from library.demo import load_demo
from library.errors import Conflict, InvalidInput, InvalidRecord, NotPermitted

TODAY = dt.date(2026, 11, 28)
CATERPILLAR = RecordInput(
    title="好饿的毛毛虫", isbn="978-7-5332-7826-7", original_title="The Very Hungry Caterpillar",
    contributors=[{"name": "艾瑞·卡尔", "role": "author"}, {"name": "郑明进", "role": "translator"}],
    publisher="明天出版社", publication_year=2008, subjects=["昆虫", "成长"], age_min=2, age_max=6, clc="I712.85")


async def staff_of(*codes: str) -> Principal:
    ids = [row["id"] for row in await Branch.select(Branch.id).where(Branch.code.is_in(list(codes)))]
    return Principal(kind="staff", id=1, uuid="s", name="馆员", language="zh_CN", role="librarian",
                     branch_ids=frozenset(ids))


@pytest.fixture
async def demo():
    await load_demo(TODAY, books=False)


@pytest.fixture
async def caterpillar(demo):
    return await service.create_record(CATERPILLAR, "test", TODAY)


async def test_a_record_gets_a_call_number_and_is_found_four_ways(caterpillar):
    detail = await service.record_detail(caterpillar)
    assert detail["call_number"] == "I712.85/ARKE"
    assert detail["isbn_hyphenated"] == "978-7-5332-7826-7"
    for query in ("hungry caterpillar", "好饿的毛毛虫", "好餓的毛毛蟲", "hedmmc", "maomaochong", "毛毛虫",
                  "9787533278267", "7-5332-7826-7", "艾瑞", "明天出版社", "昆虫"):
        result = await service.search(query, SearchFilters())
        assert [hit["uuid"] for hit in result["hits"]] == [caterpillar], query


async def test_a_search_that_matches_nothing(caterpillar):
    for query in ("恐龙", "dinosaur", "hedx"):
        assert (await service.search(query, SearchFilters()))["total"] == 0


async def test_the_index_follows_every_change(caterpillar):
    changed = RecordInput(**{**CATERPILLAR.__dict__, "title": "饥饿的毛虫"})
    await service.update_record(caterpillar, changed, "test", TODAY)
    assert (await service.search("好饿", SearchFilters()))["total"] == 0
    assert (await service.search("饥饿", SearchFilters()))["total"] == 1
    await Record.delete().where(Record.uuid == caterpillar)
    assert (await service.search("饥饿", SearchFilters()))["total"] == 0


async def test_the_same_book_twice_is_refused_pointing_at_the_record(caterpillar):
    with pytest.raises(Conflict) as refused:
        await service.create_record(RecordInput(title="好饿的毛毛虫", isbn="9787533278267"), "test", TODAY)
    assert refused.value.params == {"isbn": "978-7-5332-7826-7", "record": caterpillar}
    assert await Record.count() == 1


async def test_a_reused_isbn_makes_a_second_record_flagged_for_a_librarian(caterpillar):
    """A publisher reused the ISBN for another book: both are kept, the pair flagged, never merged."""
    other = await service.create_record(RecordInput(title="另一本", isbn="9787533278267"), "test", TODAY)
    assert await Record.count() == 2
    pairs = await PossibleDuplicate.select()
    ids = {row["id"]: str(row["uuid"]) for row in await Record.select(Record.id, Record.uuid)}
    assert len(pairs) == 1 and pairs[0]["reason"] == "isbn" and pairs[0]["status"] == "open"
    assert {ids[pairs[0]["record"]], ids[pairs[0]["other"]]} == {caterpillar, other}
    found = await service.intake("9787533278267")
    assert [r["uuid"] for r in found["records"]] == [caterpillar, other]


async def test_every_problem_of_a_record_at_once(demo):
    with pytest.raises(InvalidRecord) as refused:
        await service.create_record(RecordInput(title=" ", isbn="9787533278261", age_min=8, age_max=3,
                                                publication_year=3000), "test", TODAY)
    fields = {problem.field: problem.code for problem in refused.value.problems}
    assert fields == {"isbn": "isbn_check_digit", "title": "required", "age_max": "age_range_reversed",
                      "publication_year": "year_out_of_range"}
    assert refused.value.problems[0].params["expected"] == "7"
    assert await Record.count() == 0


async def test_intake_finds_the_network_record_with_its_holdings(caterpillar):
    jx, zx = await staff_of("JX"), await staff_of("ZX")
    await service.add_items(jx, caterpillar, NewCopies(branch_code="JX", count=3))
    found = await service.intake("9787533278267")
    assert found["record"]["uuid"] == caterpillar
    assert [(h["branch"], h["copies"], h["available"]) for h in found["record"]["holdings"]] == [("JX", 3, 3)]
    assert (await service.intake("978-0-399-22690-8"))["record"] is None
    with pytest.raises(InvalidInput) as refused:
        await service.intake("9787533278261")
    assert refused.value.params["expected"] == "7"
    assert zx.branch_ids


async def test_adding_copies_generates_checked_barcodes(caterpillar):
    zx = await staff_of("ZX")
    first = await service.add_items(zx, caterpillar, NewCopies(branch_code="ZX", count=2, shelf_location="邻乐空间"))
    second = await service.add_items(zx, caterpillar, NewCopies(branch_code="ZX", count=1))
    assert first == ["ZX000000018", "ZX000000026"] and second == ["ZX000000034"]
    labels = await service.labels(first)
    assert [(label["barcode"], label["call_number"]) for label in labels] == [
        ("ZX000000018", "I712.85/ARKE"), ("ZX000000026", "I712.85/ARKE")]


async def test_scanned_barcodes_all_or_nothing(caterpillar):
    zx = await staff_of("ZX")
    await service.add_items(zx, caterpillar, NewCopies(branch_code="ZX", barcodes=["B0001"]))
    with pytest.raises(Conflict) as refused:
        await service.add_items(zx, caterpillar, NewCopies(branch_code="ZX", barcodes=["B0002", "B0001"]))
    assert refused.value.params == {"barcode": "B0001"}
    assert await Item.count() == 1
    with pytest.raises(InvalidInput) as refused:
        await service.add_items(zx, caterpillar, NewCopies(branch_code="ZX", barcodes=["ZX000000019"]))
    assert refused.value.code == "barcode_check_digit"


async def test_a_librarian_adds_copies_only_to_her_branch(caterpillar):
    with pytest.raises(NotPermitted):
        await service.add_items(await staff_of("ZX"), caterpillar, NewCopies(branch_code="JX"))


async def test_concurrent_desks_never_get_the_same_generated_barcode(caterpillar):
    zx = await staff_of("ZX")
    batches = await asyncio.gather(*[
        service.add_items(zx, caterpillar, NewCopies(branch_code="ZX", count=2)) for _ in range(10)])
    barcodes = [b for batch in batches for b in batch]
    assert len(barcodes) == len(set(barcodes)) == 20 == await Item.count()


async def test_withdraw(caterpillar):
    zx = await staff_of("ZX")
    [barcode] = await service.add_items(zx, caterpillar, NewCopies(branch_code="ZX"))
    with pytest.raises(InvalidInput):
        await service.withdraw_item(zx, barcode, " ")
    await Item.update({Item.status: "on_loan"}).where(Item.barcode == barcode)
    with pytest.raises(Conflict):
        await service.withdraw_item(zx, barcode, "破损")
    await Item.update({Item.status: "damaged"}).where(Item.barcode == barcode)
    await service.withdraw_item(zx, barcode, "破损严重")
    detail = await service.record_detail(caterpillar)
    assert detail["items"][0]["status"] == "withdrawn" and detail["holdings"] == []
    assert await AuditEntry.count().where(AuditEntry.action == "item.withdrawn") == 1


async def test_filters_and_sorting(caterpillar):
    zx = await staff_of("ZX")
    older = await service.create_record(RecordInput(title="猜猜我有多爱你", isbn="9787533259594",
                                                    publication_year=2005, age_min=3, age_max=8,
                                                    format="board_book"), "t", TODAY)
    await service.add_items(zx, older, NewCopies(branch_code="ZX"))
    everything = SearchFilters()
    assert (await service.search("", everything, sort="newest"))["hits"][0]["uuid"] == caterpillar
    assert [h["uuid"] for h in (await service.search("", SearchFilters(age=7)))["hits"]] == [older]
    assert [h["uuid"] for h in (await service.search("", SearchFilters(format="board_book")))["hits"]] == [older]
    assert [h["uuid"] for h in (await service.search("", SearchFilters(branch="ZX")))["hits"]] == [older]
    assert [h["uuid"] for h in (await service.search("", SearchFilters(available=True)))["hits"]] == [older]
    hit = (await service.search("猜猜", everything))["hits"][0]
    assert [(h["branch"], h["available"]) for h in hit["holdings"]] == [("ZX", 1)]


async def test_paging(demo):
    for number in range(25):
        await service.create_record(RecordInput(title=f"绘本 第{number}册", publication_year=2000 + number), "t", TODAY)
    first = await service.search("绘本", SearchFilters(), sort="newest", page=1, page_size=10)
    third = await service.search("绘本", SearchFilters(), sort="newest", page=3, page_size=10)
    assert first["total"] == 25 and len(first["hits"]) == 10 and len(third["hits"]) == 5
    assert first["hits"][0]["publication_year"] == 2024 and third["hits"][-1]["publication_year"] == 2000


async def test_intake_finds_a_record_by_its_other_isbn(demo):
    uuid = await service.create_record(RecordInput(title="小猪佩奇", isbn="9787533278267",
                                                   other_isbns=["9787533259594 (pbk.)"]), "t", TODAY)
    assert (await service.intake("978-7-5332-5959-4"))["record"]["uuid"] == uuid


@pytest.mark.parametrize("window", [3, 5000])
async def test_broad_searches_page_through_every_match_once_with_the_exact_title_first(demo, monkeypatch, window):
    monkeypatch.setattr(search, "RANK_ALL_UP_TO", window)
    exact = await service.create_record(RecordInput(title="小熊"), "t", TODAY)  # the oldest
    others = [await service.create_record(RecordInput(title=f"小熊和朋友 第{n}册"), "t", TODAY) for n in range(7)]
    seen = []
    for page in (1, 2, 3):
        result = await service.search("小熊", SearchFilters(), page=page, page_size=3)
        assert result["total"] == 8
        seen += [hit["uuid"] for hit in result["hits"]]
    assert seen[0] == exact
    assert sorted(seen) == sorted([exact, *others]) and len(seen) == 8
