"""A broad search of a city's catalogue on PostgreSQL counts and ranks at most
search.COUNT_UP_TO matches (issue 20): the reader is told there are more, and what is shown
keeps the order the catalogue promises — the exact title first (even when it is not among the
matches read), whole words before the longer words they begin, each shown match on one page
only. SQLite counts every match, as before. Made small here by lowering COUNT_UP_TO.
"""

import datetime as dt

import pytest

from library.catalog import search
from library.catalog.search import SearchFilters
from library.catalog.service import RecordInput, create_record
from library.db import is_sqlite
from library.demo import load_demo

TODAY = dt.date(2026, 11, 28)


@pytest.fixture
async def demo():
    await load_demo(TODAY, books=False)


async def record(title: str) -> str:
    return await create_record(RecordInput(title=title), "test", TODAY)


async def pages(query: str, page_size: int, count: int) -> tuple[list[str], list[dict]]:
    seen, results = [], []
    for page in range(1, count + 1):
        result = await search.search(query, SearchFilters(), page=page, page_size=page_size)
        results.append(result)
        seen += [hit["uuid"] for hit in result["hits"]]
    return seen, results


async def test_a_broad_search_says_there_are_more_and_keeps_its_order(demo, monkeypatch):
    monkeypatch.setattr(search, "COUNT_UP_TO", 4)
    exact = await record("Lincoln")  # the oldest: read first, and put first by its title anyway
    whole = [await record(f"Lincoln and the war, part {n}") for n in range(3)]
    begins = [await record(f"Lincolnshire, part {n}") for n in range(4)]
    seen, results = await pages("lincoln", 2, 4)
    if is_sqlite():
        assert all(r["total"] == 8 and r["more"] is False for r in results)
        assert seen[0] == exact and set(seen[1:4]) == set(whole) and set(seen[4:]) == set(begins)
        return
    # A reader probing the page numbers past the counted matches finds nothing twice.
    assert all(r["total"] == 4 and r["more"] is True for r in results)
    # The whole words are read first: past the count, no Lincolnshire pushes out a Lincoln.
    assert seen[0] == exact and set(seen[1:]) == set(whole) and len(seen) == 4


async def test_the_exact_title_counts_among_those_shown_when_read_apart(demo, monkeypatch):
    monkeypatch.setattr(search, "COUNT_UP_TO", 2)
    others = [await record(f"小熊和朋友 第{n}册") for n in range(4)]
    exact = await record("小熊")  # the newest: the table's order reads the others first
    seen, results = await pages("小熊", 1, 3)
    if is_sqlite():
        assert results[0]["total"] == 5 and results[0]["more"] is False
        return
    assert [r["total"] for r in results] == [2, 2, 2] and all(r["more"] for r in results)
    assert seen[0] == exact and seen[1] in others and len(seen) == 2


async def test_up_to_the_count_every_match_is_counted_and_shown_once(demo, monkeypatch):
    monkeypatch.setattr(search, "COUNT_UP_TO", 5)
    monkeypatch.setattr(search, "RANK_ALL_UP_TO", 2)  # the newest two ranked, the rest newest first
    titles = [await record(f"彩虹 第{n}册") for n in range(5)]
    seen, results = await pages("caihong", 2, 3)
    assert all(r["total"] == 5 and r["more"] is False for r in results)
    assert sorted(seen) == sorted(titles)
    assert seen[2:] == titles[2::-1]  # past the ranked window: newest first


async def test_a_big_import_leaves_the_planner_its_statistics(demo, monkeypatch):
    """On PostgreSQL an import that wrote many records refreshes the planner's statistics of the
    catalogue at its end (without them a search's exact-title lookup walked the whole table until
    autovacuum came round); here "many" is lowered to 2."""
    from library.catalog import batches, exchange
    from library.db import engine
    from tests.marc_samples import iso2709, marc21

    if is_sqlite():
        pytest.skip("SQLite's planner goes by its indexes: no statistics to refresh")

    async def analysed() -> int:
        rows = await engine().run_ddl(
            "SELECT COALESCE(analyze_count, 0) AS n FROM pg_stat_user_tables WHERE relname = 'record'")
        return rows[0]["n"]

    monkeypatch.setattr(exchange, "ANALYZE_AFTER", 2)
    before = await analysed()
    report = await batches.import_marc(iso2709(marc21("Planner one"), marc21("Planner two")), "test", TODAY)
    assert report.new == 2
    assert await analysed() > before
    asked = []
    monkeypatch.setattr(exchange, "refresh_planner_statistics", lambda *tables: asked.append(tables))
    await batches.import_marc(iso2709(marc21("Planner three")), "test", TODAY)  # one record: left alone
    assert asked == []
