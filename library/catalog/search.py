"""Searching the catalogue: the database's own full-text index (FTS5 on SQLite, tsvector on
PostgreSQL), filters, ranking, facets with counts, "did you mean", and each hit's
availability per branch. What the index holds and how a query is read: search_text.py;
the index itself: catalog migration 2026-12-07T08:30:00. docs/search.md says it for readers.

The statements are raw SQL: a full-text match (MATCH, @@), its rank and the facets' counts
are beyond Piccolo's query builder.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from library.catalog import holdings
from library.catalog.isbn import Isbn, parse_isbn
from library.catalog.records import search_text_of
from library.catalog.search_text import (CJK_RUNS, SECTIONS, WEIGHTS, Term, edits1, fold, fts5_query, parse_query,
                                         shown, sound_alike, spoken_as, tsquery, word_term)
from library.catalog.tables import Item, Record
from library.db import executemany, is_sqlite, json_list, read_transaction, run_in_write_transaction

PAGE_SIZE_LIMIT = 100
# bm25's weights of the index's columns (title, authors, subjects, the rest): a word of the title
# counts three times one of the publisher. Given with every ranked statement: a `rank`
# configured in the table was slower on SQLite 3.40.
BM25 = "bm25(record_fts, 3.0, 2.0, 1.5, 1.0)"
# The age bands of the age facet (a record is in every band its own age range meets).
AGE_BANDS = ((0, 2), (3, 5), (6, 8), (9, 11), (12, 18))
# A broad search's facets are counted over its newest matches, at most this many (measured on
# the 200,000-record bench catalogue: see docs/search.md); the page says so when it happens.
FACET_LIMIT = 2_000
YEAR_VALUES = 10  # decades shown; older ones are one value ("before 1960")


@dataclass
class SearchFilters:
    """What a search is narrowed to. `age`: one age (a book for a 5-year-old), shorthand for
    `ages` (5, 5); `ages`: an age band (3-5). `years`: a range of publication years, either
    end open (None)."""

    age: int | None = None
    format: str | None = None
    language: str | None = None
    branch: str | None = None
    available: bool = False
    ages: tuple[int, int] | None = None
    years: tuple[int | None, int | None] | None = None

    def __post_init__(self) -> None:
        if self.ages is None and self.age is not None:
            self.ages = (self.age, self.age)

    @property
    def any(self) -> bool:
        return bool(self.ages or self.format or self.language or self.branch or self.available or self.years)

    @property
    def age_text(self) -> str:
        return range_text(*self.ages) if self.ages else ""

    @property
    def year_text(self) -> str:
        return range_text(*self.years) if self.years else ""


_RANGE = re.compile(r"\s*(\d{1,4})?\s*(-)?\s*(\d{1,4})?\s*")


def parse_range(text: str | None, lowest: int, highest: int) -> tuple[int | None, int | None] | None:
    """ "3-5", "7" (7-7), "-1959", "2020-": a range within [lowest, highest], ends swapped when
    reversed; None for nothing or nonsense (a form's empty field is "any")."""
    match = _RANGE.fullmatch(text or "")
    if not match or not (match.group(1) or match.group(3)):
        return None
    low, dash, high = match.groups()
    low_value = int(low) if low else None
    high_value = int(high) if high else (None if dash else low_value)
    for value in (low_value, high_value):
        if value is not None and not lowest <= value <= highest:
            return None
    if low_value is not None and high_value is not None and low_value > high_value:
        low_value, high_value = high_value, low_value
    return low_value, high_value


def range_text(low: int | None, high: int | None) -> str:
    """The filter value of a range, as `parse_range` reads it."""
    if low == high:
        return str(low)
    return f"{'' if low is None else low}-{'' if high is None else high}"


def _placeholder(values: list[Any], value: Any) -> str:
    values.append(value)
    return "{}"


@dataclass
class _Match:
    """A query's full-text match in both forms the ranking needs: every term as written, and
    every word whole (None when that is the same match)."""

    terms: list[Term]
    all: str
    exact: str | None

    @classmethod
    def of(cls, terms: list[Term]) -> _Match | None:
        if not terms:
            return None
        render = fts5_query if is_sqlite() else tsquery
        everything, exact = render(terms), render(terms, exact=True)
        return cls(terms, everything, exact if exact != everything else None)

    def without_exact(self) -> str:
        """Matches of the whole query that are not matches of its whole words."""
        if is_sqlite():
            return f"({self.all}) NOT ({self.exact})"
        return f"({self.all}) & !({self.exact})"


@dataclass
class _Plan:
    """FROM and WHERE of a search, with the values of their placeholders in order."""

    source: str
    where: list[str] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)

    @property
    def where_sql(self) -> str:
        return (" WHERE " + " AND ".join(self.where)) if self.where else ""


async def _plan(match: _Match | None, filters: SearchFilters) -> _Plan:
    sqlite = is_sqlite()
    plan = _Plan("record r")
    if match and sqlite:
        plan.source = "record_fts JOIN record r ON r.id = record_fts.rowid"
        plan.where.append("record_fts MATCH " + _placeholder(plan.values, match.all))
    elif match:
        plan.where.append("r.search_vector @@ to_tsquery('simple', " + _placeholder(plan.values, match.all) + ")")
    if filters.ages:
        low, high = filters.ages
        # A record says for which ages it is (either end may be open); one that says nothing is
        # in no age band.
        plan.where.append("(r.age_min IS NOT NULL OR r.age_max IS NOT NULL)")
        plan.where.append(f"(r.age_min IS NULL OR r.age_min <= {_placeholder(plan.values, high)})")
        plan.where.append(f"(r.age_max IS NULL OR r.age_max >= {_placeholder(plan.values, low)})")
    if filters.format:
        plan.where.append("r.format = " + _placeholder(plan.values, filters.format))
    if filters.language:
        plan.where.append("r.language = " + _placeholder(plan.values, filters.language))
    if filters.years:
        low, high = filters.years
        if low is not None:
            plan.where.append("r.publication_year >= " + _placeholder(plan.values, low))
        if high is not None:
            plan.where.append("r.publication_year <= " + _placeholder(plan.values, high))
    if filters.branch or filters.available:
        conditions = ["i.record = r.id", _copy_status(filters)]
        if filters.branch:
            conditions.append("i.current_branch = " + _placeholder(plan.values, await _branch_id(filters.branch)))
        plan.where.append("EXISTS (SELECT 1 FROM item i WHERE " + " AND ".join(conditions) + ")")
    return plan


def _copy_status(filters: SearchFilters) -> str:
    return "i.status = 'available'" if filters.available else "i.status <> 'withdrawn'"


async def _branch_id(code: str) -> int:
    return int((await holdings.branch_by_code(code))["id"])


COLUMNS = ("r.id, r.uuid, r.isbn13, r.title, r.subtitle, r.contributors, r.publisher, r.publication_year, "
           "r.format, r.age_min, r.age_max, r.cover, r.call_number, r.language")


def title_forms(query: str) -> tuple[str, str, str]:
    """The titles a query is "exactly": as typed, and capitalised as a title is ("lincoln" is
    "Lincoln", "abraham lincoln" "Abraham Lincoln"). Looked up with the title index."""
    return query, query[:1].upper() + query[1:], query.title()


def terms_of(query: str) -> tuple[list[Term], Isbn | None]:
    """A query's terms; an ISBN (with or without hyphens, 10 or 13 digits) is looked for as such."""
    isbn = parse_isbn(query) if query else None
    if isinstance(isbn, Isbn):
        return parse_query(isbn.isbn13), isbn
    return parse_query(query), None


async def search(query: str, filters: SearchFilters, sort: str = "relevance", page: int = 1,
                 page_size: int = 20, facets: bool = False, suggest: bool = True) -> dict[str, Any]:
    """Hits (with availability per branch) and the total, from the database's own full-text index
    (`more`: there are more matches than `total`, which then counts the COUNT_UP_TO shown);
    with `facets`, counts of the matches per branch, availability, age band, format, language
    and decade; with `suggest`, when nothing matches, a corrected query that would find something."""
    page = max(1, page)
    page_size = max(1, min(PAGE_SIZE_LIMIT, page_size))
    query = (query or "").strip()[:200]
    terms, isbn = terms_of(query)
    match = _Match.of(terms)
    sqlite = is_sqlite()
    async with read_transaction():
        if match and not sqlite:
            # The planner guesses how many records a tsquery matches (an unknown prefix: 0.5% of
            # them; an OR of the hundreds of respellings "did you mean" tries: most) and, with a
            # LIMIT, reads the whole table in its own order when the guess is high and the
            # truth is nothing: 0.4 s and 3 s at 200,000 records. The index never reads more
            # than the matches. Raw SQL: a setting is beyond the query builder.
            await Record.raw("SET LOCAL enable_seqscan = off")
        plan = await _plan(match, filters)
        more = False
        if match and len(plan.where) == 1 and sort not in ("newest", "title"):
            if sqlite:
                rows, total = await _ranked_page(match, query, page, page_size)
            else:
                rows, total, more = await _ranked_page_counted(match, query, page, page_size)
        else:
            order_values: list[Any] = []
            if sort == "newest":
                order = "r.publication_year IS NULL, r.publication_year DESC, r.id DESC"
            elif sort == "title":
                order = "r.title, r.id"
            elif match:
                forms = ", ".join(_placeholder(order_values, form) for form in title_forms(query))
                order = f"(r.title IN ({forms})) DESC, "
                if match.exact and sqlite:
                    order += ("(record_fts.rowid IN (SELECT rowid FROM record_fts WHERE record_fts MATCH "
                              f"{_placeholder(order_values, match.exact)})) DESC, ")
                elif match.exact:
                    order += ("(r.search_vector @@ to_tsquery('simple', "
                              f"{_placeholder(order_values, match.exact)})) DESC, ")
                order += (f"{BM25}, r.id DESC" if sqlite else
                          f"ts_rank(r.search_vector, to_tsquery('simple', {_placeholder(order_values, match.all)})) "
                          "DESC, r.id DESC")
            else:
                order = "r.id DESC"
            limit = f"LIMIT {page_size} OFFSET {(page - 1) * page_size}"
            rows = await Record.raw(f"SELECT {COLUMNS} FROM {plan.source}{plan.where_sql} ORDER BY {order} {limit}",
                                    *plan.values, *order_values)
            total = (await Record.raw(f"SELECT COUNT(*) AS n FROM {plan.source}{plan.where_sql}", *plan.values))[0]["n"]
        availability = await _availability([row["id"] for row in rows])
        counted = await _facets(plan, filters, total) if facets else None
        suggestion = await _suggestion(terms, filters) if suggest and match and total == 0 else None
    hits = []
    for row in rows:
        hit = {key: row[key] for key in ("isbn13", "title", "subtitle", "publisher", "publication_year", "format",
                                         "age_min", "age_max", "cover", "call_number", "language")}
        hit["uuid"] = str(row["uuid"])
        hit["contributors"] = json_list(row["contributors"])
        hit["holdings"] = availability.get(row["id"], [])
        hits.append(hit)
    return {"query": query, "total": total, "more": more, "page": page, "page_size": page_size, "hits": hits,
            "isbn": isbn.isbn13 if isbn else None, "facets": counted, "did_you_mean": suggestion}


# --- relevance --------------------------------------------------------------------------

# Ranking every match of a very broad search ("小熊" in a big catalogue) costs more than a
# reader should wait; beyond this many matches, the newest-catalogued ones are ranked.
RANK_ALL_UP_TO = 5000


# The statements of a plain ranked search, per engine: {} is a match (MATCH text or tsquery).
_RANKED = {
    "sqlite": {
        "count": "SELECT COUNT(*) AS n FROM record_fts WHERE record_fts MATCH {}",

        "among": "SELECT rowid AS id FROM record_fts WHERE record_fts MATCH {} AND rowid IN (%(ids)s)",
        "nth_newest": "SELECT rowid AS id FROM record_fts WHERE record_fts MATCH {} ORDER BY rowid DESC "
                      "LIMIT 1 OFFSET %(n)d",
        "window": f"SELECT %(columns)s FROM (SELECT rowid AS id, {BM25} AS score FROM record_fts "
                  "WHERE record_fts MATCH {} AND rowid >= %(threshold)d AND rowid NOT IN (%(skip)s) ORDER BY score "
                  "LIMIT %(limit)d OFFSET %(offset)d) AS page JOIN record r ON r.id = page.id "
                  "ORDER BY page.score, r.id DESC",
        "tail": "SELECT %(columns)s FROM (SELECT rowid AS id FROM record_fts WHERE record_fts MATCH {} "
                "AND rowid < %(threshold)d AND rowid NOT IN (%(skip)s) ORDER BY rowid DESC LIMIT %(limit)d "
                "OFFSET %(offset)d) AS page JOIN record r ON r.id = page.id ORDER BY r.id DESC",
        "window_values": 1,
    },
    "postgres": {
        "count": "SELECT COUNT(*) AS n FROM record WHERE search_vector @@ to_tsquery('simple', {})",

        "among": "SELECT id FROM record WHERE search_vector @@ to_tsquery('simple', {}) AND id IN (%(ids)s)",
        "nth_newest": "SELECT id FROM record WHERE search_vector @@ to_tsquery('simple', {}) ORDER BY id DESC "
                      "LIMIT 1 OFFSET %(n)d",
        "window": "SELECT %(columns)s FROM record r WHERE r.search_vector @@ to_tsquery('simple', {}) "
                  "AND r.id >= %(threshold)d AND r.id NOT IN (%(skip)s) "
                  "ORDER BY ts_rank(r.search_vector, to_tsquery('simple', {})) DESC, r.id DESC "
                  "LIMIT %(limit)d OFFSET %(offset)d",
        "tail": "SELECT %(columns)s FROM record r WHERE r.search_vector @@ to_tsquery('simple', {}) "
                "AND r.id < %(threshold)d AND r.id NOT IN (%(skip)s) ORDER BY r.id DESC "
                "LIMIT %(limit)d OFFSET %(offset)d",
        "window_values": 2,
    },
}


async def _ranked_page(match: _Match, query: str, page: int, page_size: int) -> tuple[list[dict], int]:
    """Words only, by relevance: found, ordered and counted by the full-text index alone (SQLite;
    PostgreSQL reads at most COUNT_UP_TO matches instead: `_ranked_page_counted`).

    The order: records whose title is exactly the query; then the records where every word
    is found whole ("lincoln": Abraham Lincoln), then those where some word is found only as
    the beginning of a longer one (Lincolnshire). Within each of these two tiers the matches
    are ranked (bm25 on SQLite, ts_rank on PostgreSQL, a title counting for more than an
    author, a subject or the rest) — all of them up to RANK_ALL_UP_TO, otherwise the
    RANK_ALL_UP_TO most recently catalogued, then the older ones newest first. Every match is
    on some page exactly once.
    """
    sql = _RANKED["sqlite" if is_sqlite() else "postgres"]
    total = (await Record.raw(sql["count"], match.all))[0]["n"]
    first = await _exact_titles(sql, match, query)
    skip = ",".join(str(int(i)) for i in first) or "0"
    tiers: list[tuple[str, int, list[int]]] = []  # (match, matches, of them those shown first)
    if match.exact is None:
        tiers.append((match.all, total, first))
    else:
        whole = (await Record.raw(sql["count"], match.exact))[0]["n"]
        in_whole = [row["id"] for row in await Record.raw(sql["among"] % {"ids": skip}, match.exact)] if first else []
        tiers.append((match.exact, whole, in_whole))
        tiers.append((match.without_exact(), total - whole, [i for i in first if i not in in_whole]))

    start, end = (page - 1) * page_size, page * page_size
    rows: list[dict] = []
    if start < len(first):
        head = await Record.raw(f"SELECT {COLUMNS} FROM record r WHERE r.id IN ({skip}) ORDER BY r.id DESC")
        rows += head[start:end]
    position = len(first)
    for tier, count, shown_first in tiers:
        threshold = 0
        if count > RANK_ALL_UP_TO:
            row = await Record.raw(sql["nth_newest"] % {"n": RANK_ALL_UP_TO - 1}, tier)
            threshold = row[0]["id"] if row else 0
        in_window = min(count, RANK_ALL_UP_TO) - sum(1 for i in shown_first if i >= threshold)
        in_tail = count - len(shown_first) - in_window
        parts = {"columns": COLUMNS, "threshold": int(threshold), "skip": skip}
        for segment, size in (("window", in_window), ("tail", in_tail)):
            since, until = max(0, start - position), min(size, end - position)
            if until > since and size > 0:
                rows += await Record.raw(sql[segment] % {**parts, "limit": until - since, "offset": since},
                                         *[tier] * (sql["window_values"] if segment == "window" else 1))
            position += size
    return rows, total


async def _exact_titles(sql: dict[str, Any], match: _Match, query: str) -> list[int]:
    """The records whose title is exactly the query (at most 5, newest first) that match it."""
    # Through the title index, then the match: the other way round, every match was read.
    titled = await Record.raw("SELECT id FROM record WHERE title IN ({}, {}, {}) ORDER BY id DESC LIMIT 5",
                              *title_forms(query))
    if not titled:
        return []
    ids = ",".join(str(int(row["id"])) for row in titled)
    return sorted((row["id"] for row in await Record.raw(sql["among"] % {"ids": ids}, match.all)), reverse=True)


# PostgreSQL: a plain search counts, and ranks, at most this many matches; beyond it the reader is
# told there are more (`more`) and sees these ranked. Counting every match cost a visit to every
# matching record (a phrase, as every Chinese word is, and the rank are checked on the record
# itself, and PostgreSQL 15.20 reads the record even to count): 0.25-0.5 s for "小熊" (31,080
# matches) at 200,000 records, growing with the catalogue. A RUM index (postgresql-15-rum) keeps
# positions in the index, but ranked all 31,080 itself too (0.1 s), so it is not used.
COUNT_UP_TO = 1000


async def _ranked_page_counted(match: _Match, query: str, page: int, page_size: int) -> tuple[list[dict], int, bool]:
    """`_ranked_page` on PostgreSQL, in the same order, from a read of at most COUNT_UP_TO + 1
    matches with their rank (the whole words' tier first, each in the table's order), which
    Python orders: the exact titles, then each tier's matches, the RANK_ALL_UP_TO newest ranked,
    the older ones newest first. With more than COUNT_UP_TO matches, those read are the ones
    shown (and `total`), and `more` says so. Every match shown is on some page exactly once."""
    first = await _exact_titles(_RANKED["postgres"], match, query)
    found: list[dict] = []
    tiers = [(match.exact, True), (match.without_exact(), False)] if match.exact else [(match.all, True)]
    for tier, whole in tiers:  # the whole words' tier first: it is shown first, whatever follows
        room = COUNT_UP_TO + 1 - len(found)
        if room <= 0:
            break
        found += [{**row, "whole": whole} for row in await Record.raw(
            "SELECT id, ts_rank(search_vector, to_tsquery('simple', {})) AS score FROM (SELECT id, search_vector "
            f"FROM record WHERE search_vector @@ to_tsquery('simple', {{}}) LIMIT {room}) AS found", tier, tier)]
    shown_first = set(first)
    more = len(found) > COUNT_UP_TO
    if more:  # the exact titles, read apart, are among those counted
        found = found[:COUNT_UP_TO - len(shown_first - {row["id"] for row in found})]
    order = list(first)
    for whole in (True, False):
        tier = [row for row in found if row["whole"] is whole]
        newest = sorted((row["id"] for row in tier), reverse=True)
        threshold = newest[RANK_ALL_UP_TO - 1] if len(newest) > RANK_ALL_UP_TO else 0
        rest = [row for row in tier if row["id"] not in shown_first]
        order += [row["id"] for row in sorted((row for row in rest if row["id"] >= threshold),
                                              key=lambda row: (-row["score"], -row["id"]))]
        order += sorted((row["id"] for row in rest if row["id"] < threshold), reverse=True)
    total = len(order)
    ids = order[(page - 1) * page_size:page * page_size]
    if not ids:
        return [], total, more
    rows = {row["id"]: row for row in await Record.raw(
        f"SELECT {COLUMNS} FROM record r WHERE r.id IN ({','.join(str(int(i)) for i in ids)})")}
    return [rows[i] for i in ids if i in rows], total, more


async def _availability(record_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    if not record_ids:
        return {}
    rows = await Item.select(Item.record, Item.current_branch, Item.status, Item.due_back).where(
        Item.record.is_in(record_ids) & (Item.status != "withdrawn"))
    branches = await holdings.branches_by_id()
    grouped: dict[int, list[dict[str, Any]]] = {}
    for record_id in record_ids:
        items = [row for row in rows if row["record"] == record_id]
        grouped[record_id] = holdings.summary(items, branches)
    return grouped


# --- facets -----------------------------------------------------------------------------


def _value(value: str, count: int, active: bool = False) -> dict[str, Any]:
    return {"value": value, "count": count, "active": active}


async def _facets(plan: _Plan, filters: SearchFilters, total: int) -> dict[str, Any]:
    """How many of the matches each filter value would leave: per branch where copies are,
    on the shelf, age band, format, language, decade (or year, within a decade).

    Each count is exactly the total the search with that filter added finds. A filter already
    chosen shows as its one value (to take it off). Over FACET_LIMIT matches, the newest
    FACET_LIMIT are counted (`counted`, `complete`), so that a one-word search of a city's
    catalogue answers as fast as a narrow one. One statement: the matches are found once,
    and only the counts come back."""
    # The copies are counted as the filters find them: a branch's records have a copy there
    # (on the shelf, when that is asked for too); on the shelf means at the chosen branch, if any.
    here = f" AND current_branch = {int(await _branch_id(filters.branch))}" if filters.branch else ""
    bands = " UNION ALL ".join(
        f"SELECT 'age', '{range_text(low, high)}', 0, COUNT(*), 0 FROM found WHERE "
        f"(age_min IS NOT NULL OR age_max IS NOT NULL) AND (age_min IS NULL OR age_min <= {high}) "
        f"AND (age_max IS NULL OR age_max >= {low})" for low, high in AGE_BANDS)
    # FTS5 hands its matches out newest first by itself; ordered by r.id, SQLite sorted them.
    newest = "record_fts.rowid" if plan.source.startswith("record_fts") else "r.id"
    rows = await Record.raw(
        f"WITH matched AS MATERIALIZED (SELECT r.id AS id FROM {plan.source}{plan.where_sql} "
        f"ORDER BY {newest} DESC LIMIT {FACET_LIMIT}), "
        "found AS MATERIALIZED (SELECT format, language, publication_year, age_min, age_max FROM record "
        "WHERE id IN (SELECT id FROM matched)), "
        "copies AS MATERIALIZED (SELECT record, current_branch, status FROM item "
        "WHERE record IN (SELECT id FROM matched) AND status <> 'withdrawn') "
        "SELECT 'counted' AS facet, CAST(NULL AS TEXT) AS value, 0 AS number, COUNT(*) AS n, 0 AS shelved "
        "FROM matched "
        "UNION ALL SELECT 'format', format, 0, COUNT(*), 0 FROM found GROUP BY format "
        "UNION ALL SELECT 'language', language, 0, COUNT(*), 0 FROM found GROUP BY language "
        "UNION ALL SELECT 'year', NULL, publication_year, COUNT(*), 0 FROM found "
        "WHERE publication_year IS NOT NULL GROUP BY publication_year "
        f"UNION ALL {bands} "
        "UNION ALL SELECT 'branch', NULL, current_branch, COUNT(DISTINCT record), "
        "COUNT(DISTINCT CASE WHEN status = 'available' THEN record END) FROM copies GROUP BY current_branch "
        "UNION ALL SELECT 'available', NULL, 0, 0, "
        f"COUNT(DISTINCT CASE WHEN status = 'available'{here} THEN record END) FROM copies", *plan.values)
    counted = next(row["n"] for row in rows if row["facet"] == "counted")
    by: dict[str, list[dict]] = {}
    for row in rows:
        by.setdefault(row["facet"], []).append(row)

    def listed(name: str) -> list[dict]:
        return [_value(row["value"], row["n"]) for row in sorted(by.get(name, []), key=lambda r: (-r["n"], r["value"]))
                if row["n"]]

    result: dict[str, Any] = {"counted": counted, "complete": counted == total}
    result["format"] = [_value(filters.format, counted, True)] if filters.format else listed("format")
    result["language"] = [_value(filters.language, counted, True)] if filters.language else listed("language")
    result["age"] = ([_value(range_text(*filters.ages), counted, True)] if filters.ages else
                     [_value(row["value"], row["n"]) for row in by.get("age", []) if row["n"]])
    result["year"] = _year_values(Counter({row["number"]: row["n"] for row in by.get("year", [])}), filters.years,
                                  counted)
    if filters.branch:
        result["branch"] = [_value(filters.branch, counted, True)]
    else:
        codes = {branch_id: row["code"] for branch_id, row in (await holdings.branches_by_id()).items()}
        counts = [(codes[row["number"]], row["shelved"] if filters.available else row["n"])
                  for row in by.get("branch", [])]
        result["branch"] = [_value(code, n) for code, n in sorted(counts, key=lambda c: (-c[1], c[0])) if n]
    shelved = by["available"][0]["shelved"]
    if filters.available:
        result["available"] = [_value("true", counted, True)]
    else:
        result["available"] = [_value("true", shelved)] if shelved else []
    return result


def _year_values(years: Counter[int], chosen: tuple[int | None, int | None] | None, counted: int) -> list[dict]:
    """Decades, newest first (the oldest together as one "before" value); within a chosen range
    of ten years or fewer, the years themselves. Within a chosen range, every value is cut to
    it, so that its count is what choosing it finds."""
    low, high = chosen if chosen else (None, None)
    if low is not None and high is not None and high - low < 10:
        if low == high:
            return [_value(str(low), counted, True)]
        return [_value(str(year), n) for year, n in sorted(years.items(), reverse=True)]
    decades: Counter[int] = Counter()
    for year, n in years.items():
        decades[year // 10 * 10] += n
    ordered = sorted(decades.items(), reverse=True)

    def cut(first: int | None, last: int) -> str:
        return range_text(first if low is None or first is None else max(first, low),
                          last if high is None else min(last, high))

    shown = [_value(cut(decade, decade + 9), n) for decade, n in ordered[:YEAR_VALUES]]
    older = ordered[YEAR_VALUES:]
    if older:
        shown.append(_value(cut(None, ordered[YEAR_VALUES - 1][0] - 1), sum(n for _, n in older)))
    return shown


# --- did you mean -----------------------------------------------------------------------

SUGGEST_TERMS = 4  # misspelt words looked at, at most
SUGGEST_ROWS = 2000  # PostgreSQL: rows whose words are read to count a candidate's records
SOUND_ALIKE_RECORDS = 20  # records whose characters are read for a sound-alike of a Chinese word


async def _suggestion(terms: list[Term], filters: SearchFilters) -> str | None:
    """A query like this one that finds something: each word that alone matches nothing
    replaced by the catalogue's own word one letter away ("caterpiller" -> "caterpillar"),
    or a run of characters by one that sounds the same (毛毛重 -> 毛毛虫). Run only when a
    search found nothing; a handful of index look-ups, each bounded."""
    respelt = list(terms)
    changed = looked = 0
    for position, term in enumerate(terms):
        if term.always_prefix or looked == SUGGEST_TERMS:
            continue
        if await _matches([term]):
            continue
        looked += 1
        better = await _respelt(term)
        if better is not None:
            respelt[position] = better
            changed += 1
    if not changed:
        return None
    plan = await _plan(_Match.of(respelt), filters)
    found = await Record.raw(f"SELECT 1 AS found FROM {plan.source}{plan.where_sql} LIMIT 1", *plan.values)
    return " ".join(term.written for term in respelt) if found else None


async def _matches(terms: list[Term]) -> bool:
    match = _Match.of(terms)
    assert match is not None
    if is_sqlite():
        rows = await Record.raw("SELECT rowid FROM record_fts WHERE record_fts MATCH {} LIMIT 1", match.all)
    else:
        rows = await Record.raw("SELECT id FROM record WHERE search_vector @@ to_tsquery('simple', {}) LIMIT 1",
                                match.all)
    return bool(rows)


def _is_word(token: str) -> bool:
    return len(token) >= 3 and token.isalpha() and not CJK_RUNS.match(token)


async def _respelt(term: Term) -> Term | None:
    """The term respelt from the catalogue's own words or characters; None if nothing fits."""
    if term.prefix and len(term.phrases) <= 1 and _is_word(term.prefix):
        # It matched nothing, not even as the beginning of a word (nor as pinyin).
        better = await _closest(term.prefix, term.section)
        return word_term(better, term.section, term.field) if better else None
    if len(term.phrases) != 1 or term.prefix:
        return None
    phrase = term.phrases[0]
    if all(CJK_RUNS.fullmatch(token) for token in phrase):
        run = await _sounding_like("".join(phrase), term.section)
        return Term(prefix=None, phrases=(tuple(run),), section=term.section, field=term.field,
                    text=run) if run else None
    # A quoted phrase: its words that are no word of the catalogue, respelt.
    words = [token for token in phrase if _is_word(token)]
    had = await _word_counts(words, term.section)
    respelt = {word: await _closest(word, term.section) for word in words if word not in had}
    if not any(respelt.values()):
        return None
    tokens = tuple(respelt.get(token) or token for token in phrase)
    return Term(prefix=None, phrases=(tokens,), section=term.section, field=term.field,
                text='"' + shown(tokens) + '"')


async def _closest(word: str, section: str | None) -> str | None:
    """The catalogue's word one letter away from this one that the most records have."""
    candidates = sorted(edits1(word))
    counted = await _word_counts(candidates, section)
    if not counted:
        return None
    return max(counted, key=lambda candidate: (counted[candidate], -candidates.index(candidate)))


async def _word_counts(words: list[str], section: str | None) -> dict[str, int]:
    """Of these words, those the index has (whole, in the section if one is given), with about
    how many records have each."""
    if not words:
        return {}
    if is_sqlite():
        # The index's own vocabulary: an fts5vocab table over record_fts, a row per word and column.
        column = f" AND col = '{section}'" if section in SECTIONS else ""
        marks = ", ".join("{}" for _ in words)
        rows = await Record.raw(f"SELECT term, SUM(doc) AS n FROM record_fts_words WHERE term IN ({marks}){column} "
                                "GROUP BY term", *words)
        return {row["term"]: row["n"] for row in rows if row["n"]}
    # PostgreSQL keeps no vocabulary: the words of (at most SUGGEST_ROWS) records that have any
    # of them are read, and the candidates among them counted.
    either = tsquery([Term(prefix=None, phrases=tuple((word,) for word in words), section=section)])
    weight = f" AND '{WEIGHTS[section]}' = ANY(word.weights)" if section in WEIGHTS else ""
    rows = await Record.raw(
        "SELECT word.lexeme AS term, COUNT(*) AS n FROM (SELECT search_vector FROM record WHERE search_vector @@ "
        f"to_tsquery('simple', {{}}) LIMIT {SUGGEST_ROWS}) AS found, unnest(found.search_vector) AS word "
        f"WHERE word.lexeme = ANY({{}}){weight} GROUP BY word.lexeme", either, list(words))
    return {row["term"]: row["n"] for row in rows}


_SECTION_COLUMNS = {"title": ("title", "subtitle", "parallel_title", "original_title", "series"),
                    "author": ("contributors",), "subject": ("subjects",), "other": ("publisher",)}


async def _sounding_like(run: str, section: str | None) -> str | None:
    """The catalogue's run of characters that sounds like this one, from the records whose
    pinyin has it (the most frequent among SOUND_ALIKE_RECORDS of them)."""
    ways = spoken_as(run)
    if not ways:
        return None
    spoken = [Term(prefix=None, phrases=tuple(ways), section=section)]
    match = _Match.of(spoken)
    assert match is not None
    columns = [column for name in (section,) if name for column in _SECTION_COLUMNS[name]] or [
        column for names in _SECTION_COLUMNS.values() for column in names]
    if is_sqlite():
        rows = await Record.raw(f"SELECT {', '.join('r.' + c for c in columns)} FROM record_fts JOIN record r ON "
                                f"r.id = record_fts.rowid WHERE record_fts MATCH {{}} LIMIT {SOUND_ALIKE_RECORDS}",
                                match.all)
    else:
        rows = await Record.raw(f"SELECT {', '.join('r.' + c for c in columns)} FROM record r WHERE r.search_vector "
                                f"@@ to_tsquery('simple', {{}}) LIMIT {SOUND_ALIKE_RECORDS}", match.all)
    found: Counter[str] = Counter()
    size = len(run)
    for row in rows:
        texts = []
        for column in columns:
            value = row[column]
            if column == "contributors":
                texts += [c.get("name", "") for c in json_list(value)]
            elif column == "subjects":
                texts += json_list(value)
            else:
                texts.append(value or "")
        for text in texts:
            for other in CJK_RUNS.findall(fold(text)):
                for start in range(len(other) - size + 1):
                    window = other[start:start + size]
                    if window != run and sound_alike(run, window):
                        found[window] += 1
    return found.most_common(1)[0][0] if found else None


# --- the index made again ---------------------------------------------------------------


async def reindex(batch: int = 2000) -> int:
    """Make every record's search text again (after the way it is made has changed); the number
    of records whose text changed.

    Not logged for sync: the text is derived from the record, and every node makes its own
    with its own migration (a change-log row for each record would send the whole catalogue
    to every branch). So the rows are written as the sync app writes what it applies, with
    `sync_state.applying` set inside the transaction, where the sync app has its tables.
    """
    sync = await _has_table("sync_state")
    changed, last = 0, 0
    while True:
        rows = await Record.raw(
            "SELECT id, isbn13, other_isbns, title, subtitle, parallel_title, original_title, contributors, "
            "publisher, series, subjects, clc, search_text FROM record WHERE id > {} ORDER BY id LIMIT "
            f"{int(batch)}", last)
        if not rows:
            return changed
        last = rows[-1]["id"]
        updates = []
        for row in rows:
            values = {**row, **{key: json_list(row[key]) for key in ("other_isbns", "contributors", "subjects")}}
            text = search_text_of(values)
            if text != row["search_text"]:
                updates.append((text, row["id"]))
        if not updates:
            continue

        async def work(updates: list[tuple[str, int]] = updates) -> None:
            applying = None
            if sync:
                found = await Record.raw("SELECT applying FROM sync_state WHERE id = 1")
                applying = found[0]["applying"] if found else None
                await Record.raw("UPDATE sync_state SET applying = {} WHERE id = 1", True)
            await executemany("UPDATE record SET search_text = {} WHERE id = {}", updates)
            if applying is not None:
                await Record.raw("UPDATE sync_state SET applying = {} WHERE id = 1", bool(applying))

        await run_in_write_transaction(work)
        changed += len(updates)


async def _has_table(name: str) -> bool:
    if is_sqlite():
        return bool(await Record.raw("SELECT name FROM sqlite_master WHERE type = 'table' AND name = {}", name))
    return bool((await Record.raw("SELECT to_regclass({}) IS NOT NULL AS found", name))[0]["found"])


# One search of each kind a reader types: 汉字, pinyin, initials, an English word.
WARM_QUERIES = ("小熊", "xiaoxiong", "xx", "bear")


async def warm() -> None:
    """Searches made once as the service starts, so that the first reader's search finds the
    database's connection open, its pages read and its statements planned, as the hundredth
    does (the tables and templates are loaded by `search_text.warm` and the app)."""
    for query in WARM_QUERIES:
        await search(query, SearchFilters(), page_size=1, suggest=False)
