"""Possible duplicates: two records a match point says might be one book, for a librarian to decide.

An ISBN identifies a book only most of the time: a publisher reuses one for another title, a
branch box catalogues a donated book under the ISBN printed on it, which the central library
already has for a different book. The matching rules (library.catalog.matching) keep such a
pair as two records and `flag` it here; a librarian then merges the two into one (`merge`) or
says they are different books (`keep_apart`). A pair is flagged once, in either order, and a
pair kept apart is not raised again by the import or sync that found it.

Merging keeps the chosen record's own values and moves everything that points at the other
one onto it — copies, holds, reading-log entries, any other row that references a record —
adds the other's ISBNs to the kept record's other ISBNs, and deletes the other record, in one
transaction with an audit entry that keeps the record merged away (values and MARC) for review.
The moves and the deletion are ordinary writes: the change log carries them to the branches,
and the merged-away uuid becomes an alias of the kept one for what branches upload later.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from dataclasses import dataclass, field
from collections.abc import Awaitable, Callable
from typing import Any

from library import audit
from library.accounts.principal import Principal
from library.accounts.tables import StaffMember
from library.catalog import holdings
from library.catalog.isbn import hyphenate
from library.catalog.marc_record import with_local_edits
from library.catalog.records import JSON_COLUMNS, search_text_of
from library.catalog.references import references_to
from library.catalog.tables import DuplicateStatus, Item, PossibleDuplicate, Record
from library.db import is_sqlite, json_list, read_transaction, run_in_write_transaction
from library.errors import Conflict, InvalidInput, NotFound, NotPermitted

PAGE_SIZE = 50

# The fields shown side by side, in the order a cataloguer reads a record.
COMPARED = ("title", "subtitle", "parallel_title", "original_title", "contributors", "publisher", "publication_year",
            "isbn13", "other_isbns", "control_number", "control_agency", "series", "series_number", "language",
            "format", "pages", "age", "subjects", "clc", "call_number", "summary", "marc_source")


# --- rules (pure) -------------------------------------------------------------------------------


def may_decide(principal: Principal | None) -> bool:
    """Merging moves copies of every branch and readers' holds network-wide: it is the network's
    cataloguers' decision (staff working for every branch) or an administrator's, and keeping a
    pair apart is the same decision the other way round."""
    return principal is not None and principal.is_staff and (principal.all_branches or principal.is_administrator)


def ordered_pair(record_id: int, other_id: int) -> tuple[int, int]:
    """A pair is stored once whichever record found the other: the older record first."""
    return (record_id, other_id) if record_id < other_id else (other_id, record_id)


def _comparable(view: dict[str, Any], name: str) -> Any:
    if name == "age":
        return (view.get("age_min"), view.get("age_max"))
    value = view.get(name)
    if name == "contributors":
        return [(c.get("name", ""), c.get("role", "")) for c in value or []]
    if name in ("other_isbns", "subjects"):
        return sorted(value or [])
    return value if value not in (None, "") else None


def differing_fields(left: dict[str, Any], right: dict[str, Any]) -> list[str]:
    """The compared fields in which the two records say different things."""
    return [name for name in COMPARED if _comparable(left, name) != _comparable(right, name)]


def merged_isbns(kept: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """The kept record's other ISBNs with the merged record's ISBNs added (each once, never its own)."""
    found = list(kept.get("other_isbns") or [])
    for isbn in [other.get("isbn13"), *(other.get("other_isbns") or [])]:
        if isbn and isbn != kept.get("isbn13") and isbn not in found:
            found.append(isbn)
    return found


# --- flagging -----------------------------------------------------------------------------------


async def flag(record_id: int, other_id: int, reason: str, found_by: str) -> int | None:
    """Note that two records might be one book; the pair's id. Call it inside the finder's own
    write transaction (an import batch, a sync upload). Idempotent: a pair already noted, in either
    order and whatever was decided about it, is left as it is — a pair kept apart stays apart."""
    if record_id == other_id:
        return None
    low, high = ordered_pair(record_id, other_id)
    existing = await _pair_id(low, high)
    if existing is not None:
        return existing
    await PossibleDuplicate.insert(PossibleDuplicate(
        record=low, other=high, reason=reason[:32], found_by=found_by, status=DuplicateStatus.open.value,
    )).on_conflict(target=(PossibleDuplicate.record, PossibleDuplicate.other), action="DO NOTHING")
    return await _pair_id(low, high)


async def _pair_id(a: int, b: int) -> int | None:
    row = await PossibleDuplicate.select(PossibleDuplicate.id).where(
        ((PossibleDuplicate.record == a) & (PossibleDuplicate.other == b))
        | ((PossibleDuplicate.record == b) & (PossibleDuplicate.other == a))).first()
    return row["id"] if row else None


# --- reading ------------------------------------------------------------------------------------


def _view(row: dict[str, Any]) -> dict[str, Any]:
    view = {key: value for key, value in row.items() if key not in ("search_text", "marc")}
    view["uuid"] = str(row["uuid"])
    for key in JSON_COLUMNS:
        if key in view:
            view[key] = json_list(view[key])
    view["isbn_hyphenated"] = hyphenate(row["isbn13"]) if row.get("isbn13") else ""
    return view


# What a merge also does in the apps above the catalogue, inside its transaction, before the
# merged-away record is deleted. A step is given the kept and the merged-away record's rows and
# the Merged being reported, and names the tables whose references to a record it moves itself
# (every other reference is moved as it is, see `_other_references`): library.loans.record_merge
# moves readers' holds (a reader with a hold on both keeps one), library.sync.apply makes the
# merged-away uuid an alias of the kept one. The catalogue imports neither: they register here.
MergeStepRun = Callable[[dict[str, Any], dict[str, Any], "Merged", Principal, dt.datetime], Awaitable[None]]
# What the apps above count of a record's uses (a reader's holds), shown beside its copies:
# record ids -> {record id: {name: count}}.
RecordUses = Callable[[list[int]], Awaitable[dict[int, dict[str, int]]]]


@dataclass(frozen=True)
class MergeStep:
    run: MergeStepRun
    tables: tuple[str, ...] = ()


MERGE_STEPS: list[MergeStep] = []
RECORD_USES: list[RecordUses] = []


def merge_step(*tables: str) -> Callable[[MergeStepRun], MergeStepRun]:
    """Registers a step of every merge (a decorator); `tables`: those whose references it moves."""
    def register(run: MergeStepRun) -> MergeStepRun:
        if all(step.run is not run for step in MERGE_STEPS):
            MERGE_STEPS.append(MergeStep(run, tables))
        return run
    return register


def record_uses(count: RecordUses) -> RecordUses:
    """Registers a count of records' uses, shown on the pairs' pages (a decorator)."""
    if count not in RECORD_USES:
        RECORD_USES.append(count)
    return count


_SUMMARY = (Record.id, Record.uuid, Record.title, Record.subtitle, Record.isbn13, Record.other_isbns,
            Record.contributors, Record.publisher, Record.publication_year, Record.control_number, Record.marc_source)


async def _counts(record_ids: list[int]) -> dict[int, dict[str, int]]:
    """Copies (not withdrawn) of each record, and what the apps above count (active holds)."""
    counts = {record_id: {"copies": 0, "holds": 0} for record_id in record_ids}
    if not record_ids:
        return counts
    for row in await Item.select(Item.record, Item.id).where(
            Item.record.is_in(record_ids) & (Item.status != "withdrawn")):
        counts[row["record"]]["copies"] += 1
    for count in RECORD_USES:
        for record_id, uses in (await count(record_ids)).items():
            counts.setdefault(record_id, {"copies": 0, "holds": 0}).update(uses)
    return counts


_STAFF_NAME = re.compile(r"staff:([0-9a-fA-F-]{36})")


async def _staff_names(texts: list[str]) -> dict[str, str]:
    """Staff named in "found by" / "decided by" ("staff staff:<uuid>") by their display names."""
    wanted = sorted({match for text in texts for match in _STAFF_NAME.findall(text or "")})
    if not wanted:
        return {}
    rows = await StaffMember.select(StaffMember.uuid, StaffMember.display_name).where(StaffMember.uuid.is_in(wanted))
    return {str(row["uuid"]): row["display_name"] for row in rows}


def _named(text: str, names: dict[str, str]) -> str:
    """"staff staff:<uuid>" -> the staff member's name; "sync ZX", "import <batch>" as they are."""
    named = _STAFF_NAME.sub(lambda match: names.get(match.group(1), match.group(0)), text or "")
    return named[len("staff "):] if named.startswith("staff ") and _STAFF_NAME.search(text or "") else named


def _pair_view(pair: dict[str, Any], records: dict[int, dict[str, Any]],
               counts: dict[int, dict[str, int]], names: dict[str, str] | None = None) -> dict[str, Any]:
    left, right = records[pair["record"]], records[pair["other"]]
    names = names or {}
    return {"id": pair["id"], "reason": pair["reason"], "status": pair["status"], "found_by": pair["found_by"],
            "found_at": pair["found_at"], "decided_by": pair["decided_by"], "decided_at": pair["decided_at"],
            "found_by_name": _named(pair["found_by"], names), "decided_by_name": _named(pair["decided_by"], names),
            "left": {**left, **counts.get(left["id"], {"copies": 0, "holds": 0})},
            "right": {**right, **counts.get(right["id"], {"copies": 0, "holds": 0})}}


async def open_pairs(page: int = 1, page_size: int = PAGE_SIZE) -> dict[str, Any]:
    """The open pairs, oldest found first, each with both records and their copies and holds."""
    page, page_size = max(1, page), max(1, min(page_size, 200))
    async with read_transaction():
        total = await PossibleDuplicate.count().where(PossibleDuplicate.status == DuplicateStatus.open.value)
        pairs = await PossibleDuplicate.select().where(
            PossibleDuplicate.status == DuplicateStatus.open.value).order_by(
            PossibleDuplicate.found_at).order_by(PossibleDuplicate.id).limit(page_size).offset((page - 1) * page_size)
        ids = sorted({pair[side] for pair in pairs for side in ("record", "other")})
        rows = await Record.select(*_SUMMARY).where(Record.id.is_in(ids)) if ids else []
        counts = await _counts(ids)
        names = await _staff_names([pair["found_by"] for pair in pairs])
    records = {row["id"]: _view(row) for row in rows}
    return {"total": total, "page": page, "page_size": page_size,
            "pairs": [_pair_view(pair, records, counts, names) for pair in pairs]}


async def pair_detail(pair_id: int) -> dict[str, Any]:
    """One pair (open or decided), both records whole, and the fields in which they differ."""
    async with read_transaction():
        pair = await PossibleDuplicate.select().where(PossibleDuplicate.id == pair_id).first()
        if pair is None:
            raise NotFound("duplicate_not_found")
        rows = await Record.select().where(Record.id.is_in([pair["record"], pair["other"]]))
        counts = await _counts([pair["record"], pair["other"]])
        copies = await Item.select(Item.record, Item.barcode, Item.status, Item.current_branch).where(
            Item.record.is_in([pair["record"], pair["other"]])).order_by(Item.barcode)
        branches = await holdings.branches_by_id()
        names = await _staff_names([pair["found_by"], pair["decided_by"]])
    records = {row["id"]: _view(row) for row in rows}
    view = _pair_view(pair, records, counts, names)
    view["differs"] = differing_fields(view["left"], view["right"])
    view["fields"] = list(COMPARED)
    for side in ("left", "right"):
        view[side]["items"] = [{"barcode": c["barcode"], "status": c["status"],
                                "branch": branches[c["current_branch"]]["code"]}
                               for c in copies if c["record"] == view[side]["id"]]
    return view


# --- deciding -----------------------------------------------------------------------------------


@dataclass
class Merged:
    kept: str  # uuid
    removed: str  # uuid, now an alias of `kept`
    copies: int = 0
    holds: int = 0
    holds_cancelled: list[dict[str, str]] = field(default_factory=list)  # {"hold", "card_number"}
    references: dict[str, int] = field(default_factory=dict)  # other tables: rows moved


def _check_rights(principal: Principal, records_are_central: bool) -> None:
    if not may_decide(principal):
        raise NotPermitted("duplicate_not_cataloguer")
    if records_are_central:
        raise Conflict("duplicate_at_branch_node")


async def _open_pair(pair_id: int) -> dict[str, Any]:
    """The pair, still open, with its two records locked until the transaction ends (PostgreSQL:
    two cataloguers merging overlapping pairs at once take their turns; SQLite has one writer)."""
    pair = await PossibleDuplicate.select().where(PossibleDuplicate.id == pair_id).first()
    if pair is None:
        raise NotFound("duplicate_not_found")
    if pair["status"] == DuplicateStatus.kept_apart.value:
        raise Conflict("duplicate_kept_apart")
    if pair["status"] == DuplicateStatus.merged.value:
        raise Conflict("duplicate_merged")
    query = Record.select().where(Record.id.is_in([pair["record"], pair["other"]])).order_by(Record.id)
    rows = await (query if is_sqlite() else query.lock_rows())
    if len(rows) != 2:
        raise NotFound("duplicate_not_found")
    pair["rows"] = {row["id"]: row for row in rows}
    return pair


async def _decide(pair_id: int, status: DuplicateStatus, principal: Principal, now: dt.datetime) -> None:
    """The pair's status, set only while it is open: of two decisions at once, the second is refused."""
    decided = await PossibleDuplicate.update({
        PossibleDuplicate.status: status.value, PossibleDuplicate.decided_by: principal.audit_name,
        PossibleDuplicate.decided_at: now,
    }).where((PossibleDuplicate.id == pair_id) & (PossibleDuplicate.status == DuplicateStatus.open.value)).returning(
        PossibleDuplicate.id)
    if not decided:
        now_is = await PossibleDuplicate.select(PossibleDuplicate.status).where(PossibleDuplicate.id == pair_id).first()
        if now_is is None:
            raise NotFound("duplicate_not_found")
        raise Conflict("duplicate_kept_apart" if now_is["status"] == DuplicateStatus.kept_apart.value
                       else "duplicate_merged")


async def keep_apart(pair_id: int, principal: Principal, now: dt.datetime) -> None:
    """The two records are different books: the pair is closed and not raised again. (On a branch
    node too: it changes nothing that syncs.)"""
    _check_rights(principal, False)

    async def work() -> None:
        pair = await _open_pair(pair_id)
        await _decide(pair_id, DuplicateStatus.kept_apart, principal, now)
        left, right = (pair["rows"][pair["record"]], pair["rows"][pair["other"]])
        await audit.record(principal.audit_name, "record.kept_apart", f"record:{left['uuid']}",
                           other=str(right["uuid"]), reason=pair["reason"], found_by=pair["found_by"])

    await run_in_write_transaction(work)


async def merge(pair_id: int, keep: str, principal: Principal, now: dt.datetime,
                records_are_central: bool = False) -> Merged:
    """Merge the pair into the record `keep` (one of its two uuids); see the module's docstring.

    `records_are_central`: this node is a branch that syncs with the central library, whose
    cataloguers decide bibliographic data (a merge here would be undone by the next sync)."""
    _check_rights(principal, records_are_central)

    async def work() -> Merged:
        pair = await _open_pair(pair_id)
        by_uuid = {str(row["uuid"]): row for row in pair["rows"].values()}
        if str(keep) not in by_uuid:
            raise InvalidInput("duplicate_keep_which", field="keep")
        kept = by_uuid[str(keep)]
        other = next(row for row in pair["rows"].values() if row["id"] != kept["id"])
        await _decide(pair_id, DuplicateStatus.merged, principal, now)
        merged = Merged(kept=str(kept["uuid"]), removed=str(other["uuid"]))
        moved = await Item.update({Item.record: kept["id"]}).where(Item.record == other["id"]).returning(Item.id)
        merged.copies = len(moved)
        for table, column in _other_references():
            rows = await table.update({column: kept["id"]}).where(column == other["id"]).returning(table._meta.primary_key)
            if rows:
                merged.references[table._meta.tablename] = len(rows)
        await _carry_pairs(kept["id"], other["id"], pair_id)
        await _update_kept(kept, other)
        for step in MERGE_STEPS:  # the apps above the catalogue: holds, sync's aliases
            await step.run(kept, other, merged, principal, now)
        await Record.delete().where(Record.id == other["id"])
        await audit.record(principal.audit_name, "record.merged", f"record:{merged.kept}", removed=merged.removed,
                           reason=pair["reason"], found_by=pair["found_by"], copies=merged.copies, holds=merged.holds,
                           holds_cancelled=merged.holds_cancelled, references=merged.references,
                           removed_record=_kept_for_review(other))
        return merged

    try:
        return await run_in_write_transaction(work)
    except Exception as error:
        if not _refused_by_database(error):
            raise
        # Another table's own rule (a unique constraint, say) refused a moved row: nothing was
        # written, and staff are told which rule.
        raise Conflict("duplicate_refused_by_database", why=str(error).splitlines()[0][:200]) from None


def _other_references() -> list[tuple[Any, Any]]:
    """The references to a record a merge moves as they are: all but those a merge step moves
    itself (holds): a reading-log entry, and whatever a later table adds."""
    handled = {table for step in MERGE_STEPS for table in step.tables}
    return [(table, column) for table, column in references_to("record", frozenset({"item", "possible_duplicate"}))
            if table._meta.tablename not in handled]


async def _carry_pairs(kept_id: int, other_id: int, merged_pair: int) -> None:
    """Other pairs the merged-away record was in become pairs of the kept record (as they were:
    open, or kept apart), unless the kept record already has that pair; the rest go with it."""
    pairs = await PossibleDuplicate.select().where(
        ((PossibleDuplicate.record == other_id) | (PossibleDuplicate.other == other_id))
        & (PossibleDuplicate.id != merged_pair))
    for pair in pairs:
        third = pair["other"] if pair["record"] == other_id else pair["record"]
        if third == kept_id or await _pair_id(kept_id, third) is not None:
            continue
        low, high = ordered_pair(kept_id, third)
        await PossibleDuplicate.update({PossibleDuplicate.record: low, PossibleDuplicate.other: high}).where(
            PossibleDuplicate.id == pair["id"])


async def _update_kept(kept: dict[str, Any], other: dict[str, Any]) -> None:
    """The kept record keeps its own values; it gains the other's ISBNs, found by search too."""
    before = {**kept, **{key: json_list(kept[key]) for key in JSON_COLUMNS}}
    isbns = merged_isbns(before, {**other, "other_isbns": json_list(other["other_isbns"])})
    if isbns == before["other_isbns"]:
        return
    after = {**before, "other_isbns": isbns}
    # A later re-import of the kept record's source keeps the merged ISBNs (an overlay keeps local edits).
    edits = with_local_edits(json_list(kept["local_edits"]), before, after)
    await Record.update({Record.other_isbns: json.dumps(isbns), Record.search_text: search_text_of(after),
                         Record.local_edits: json.dumps(edits)}).where(Record.id == kept["id"])


def _refused_by_database(error: BaseException) -> bool:
    """An integrity rule (unique, foreign key, check) refused a write, on either engine."""
    return isinstance(error, sqlite3.IntegrityError) or str(getattr(error, "sqlstate", "") or "").startswith("23")


def _kept_for_review(row: dict[str, Any]) -> dict[str, Any]:
    """The merged-away record as it was (its values and its MARC), for the audit trail."""
    kept = {}
    for key, value in row.items():
        if key in ("id", "search_text"):
            continue
        if key in JSON_COLUMNS or key == "local_edits":
            value = json_list(value)
        elif isinstance(value, (dt.datetime, dt.date)):
            value = value.isoformat()
        elif value is not None and not isinstance(value, (str, int, float, bool, list, dict)):
            value = str(value)
        kept[key] = value
    return kept
