"""Circulation: checkout, return anywhere, transits, renewals, holds. One transaction per operation.

Each operation loads what the pure rules in `library.loans.rules` need, asks them, and
writes the outcome. The database keeps what concurrency could break: a second open loan
of a copy fails on a partial unique index, a renewal is a conditional UPDATE on the
renewal count, a copy is assigned to one hold at a time.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid as uuid_module
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from library import audit, config_cache
from library.accounts.principal import Principal
from library.accounts.service import normalise_card_number
from library.accounts.tables import Patron
from library.branches.public_holidays import public_calendar
from library.branches.rules import BranchCalendar, PublicCalendar
from library.branches.service import cached_calendar
from library.catalog.tables import Item, Record
from library.db import Statement, Unfinished, batch, is_unique_violation, json_list, read_transaction, \
    run_in_write_transaction, run_script
from library.errors import CirculationRefused, Conflict, InvalidInput, NotFound, NotPermitted
from library.loans import notices, record_merge, rules  # noqa: F401 - record_merge registers itself
from library.loans.tables import Hold, Loan, Transit

COMMENT_LIMIT = 500
# Calendars are loaded this far ahead of a due date: enough to step over the longest closure.
CALENDAR_REACH_DAYS = 400
ACTIVE_HOLD = rules.ACTIVE_HOLD


def _uuid(value: str, missing: str) -> str:
    try:
        return str(uuid_module.UUID(str(value)))
    except ValueError:
        raise NotFound(missing) from None


def normalise_barcode(barcode: str) -> str:
    return (barcode or "").strip().upper()


def _clean_comment(comment: str | None) -> str | None:
    comment = (comment or "").strip()
    if len(comment) > COMMENT_LIMIT:
        raise InvalidInput("comment_too_long", field="override_comment", limit=COMMENT_LIMIT)
    return comment or None


def end_of_day(day: dt.date, time_zone: str) -> dt.datetime:
    """A due date is the end of that day where the branch is, stored in UTC."""
    local = dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=ZoneInfo(time_zone))
    return local.astimezone(dt.timezone.utc)


def local_today(now: dt.datetime, time_zone: str) -> dt.date:
    return now.astimezone(ZoneInfo(time_zone)).date()


# --- loading -----------------------------------------------------------------------------
# The hot path (checkout, checkin) reads with plain SQL: building Piccolo's selects cost
# more than running them. `{}` is the placeholder on both engines.


async def _rows(sql: str, *args: Any) -> list[dict[str, Any]]:
    return await Loan.raw(sql, *args)


async def _first(sql: str, *args: Any) -> dict[str, Any] | None:
    rows = await Loan.raw(sql, *args)
    return rows[0] if rows else None


def _terms(row: dict[str, Any]) -> rules.Terms:
    return rules.Terms(
        id=row["id"], scope=row["scope"], branch_id=row["branch"], patron_category=row["patron_category"],
        item_type=row["item_type"], loanable=row["loanable"], loan_days=row["loan_days"],
        max_loans=row["max_loans"], renewal_days=row["renewal_days"], max_renewals=row["max_renewals"],
        renew_from=row["renew_from"], holds_allowed=row["holds_allowed"], hold_shelf_days=row["hold_shelf_days"],
        renewal_refused_after_overdue_days=row["renewal_refused_after_overdue_days"],
        fine_cents_per_day=row["fine_cents_per_day"],
    )


async def _load_terms() -> tuple[rules.Terms, ...]:
    return tuple(_terms(row) for row in await _rows(
        "SELECT id, scope, branch, patron_category, item_type, loanable, loan_days, max_loans, renewal_days, "
        "max_renewals, renew_from, holds_allowed, hold_shelf_days, renewal_refused_after_overdue_days, "
        "fine_cents_per_day FROM circulation_rule"))


async def _all_terms(version: Any = None) -> tuple[rules.Terms, ...]:
    """Every circulation rule, read once per configuration version (read now unless given)."""
    if version is None:
        version = await config_cache.current_version()
    return await config_cache.cached(("circulation_rules",), version, _load_terms)


def _choose(all_terms: Sequence[rules.Terms], branch_id: int, category: str, item_type: str) -> rules.ChosenRule:
    chosen = rules.choose_rule(all_terms, branch_id, category, item_type)
    if chosen is None:
        raise Conflict("no_circulation_rule")
    return chosen


_BRANCH_SQL = "SELECT id, code, name_zh, name_en, time_zone, closes_on_public_holidays FROM branch WHERE "


async def _branch(code: str, version: Any = None) -> dict[str, Any]:
    """A branch by code, read once per configuration version (read now unless given)."""
    code = (code or "").strip().upper()
    if version is None:
        version = await config_cache.current_version()

    async def load() -> dict[str, Any]:
        row = await _first(_BRANCH_SQL + "code = {}", code)
        if row is None:
            raise NotFound("branch_not_found", field="branch", code=code)
        return row

    return await config_cache.cached(("branch", code), version, load)


async def _branch_by_id(branch_id: int, version: Any = None) -> dict[str, Any]:
    return (await _branches_by_id(version))[branch_id]


async def _branches_by_id(version: Any = None) -> dict[int, dict[str, Any]]:
    """Every branch by id, read once per configuration version."""
    if version is None:
        version = await config_cache.current_version()

    async def load() -> dict[int, dict[str, Any]]:
        return {row["id"]: row for row in await _rows(_BRANCH_SQL + "1 = 1")}

    return await config_cache.cached(("branches_by_id",), version, load)


async def _calendar(branch: dict[str, Any], start: dt.date,
                    version: Any = None) -> tuple[BranchCalendar, PublicCalendar]:
    end = start + dt.timedelta(days=CALENDAR_REACH_DAYS)
    if version is None:
        version = await config_cache.current_version()
    return await cached_calendar(branch, start, end, version), public_calendar(start, end)


async def _patron_by_card(card_number: str) -> dict[str, Any]:
    """A reader by card, with the number of their open loans — counted on the partial index
    of open loans, so a reader with 200 loans costs no more than one with none."""
    card = normalise_card_number(card_number)
    patron = await _first(
        "SELECT p.id, p.uuid, p.card_number, p.name, p.category, p.expires_on, p.block_reason, p.language, "
        "p.email, (SELECT count(*) FROM loan l WHERE l.patron = p.id AND l.returned_at IS NULL) AS open_loans "
        "FROM patron p WHERE p.card_number = {}", card)
    if patron is None:
        raise NotFound("patron_not_found", field="card_number", card_number=card)
    return patron


def _patron_facts(patron: dict[str, Any], open_loans: int = 0) -> rules.PatronFacts:
    return rules.PatronFacts(patron["id"], patron["category"], patron["expires_on"], patron["block_reason"],
                             open_loans)


_ITEM_SQL = (
    'SELECT i.id, i.uuid, i.barcode, i.status, i.item_type, i.record, i.home_branch, i.current_branch, '
    'r.title AS "record.title", r.uuid AS "record.uuid", '
    # The reader a copy on the hold shelf is set aside for.
    "(SELECT h.patron FROM hold h WHERE h.item = i.id AND h.status = 'ready') AS held_for, "
    # Whether anyone waits for the book: a returned copy looks at the queue only then.
    "(SELECT count(*) FROM hold w WHERE w.record = i.record AND w.status = 'waiting') AS waiting_holds "
    "FROM item i JOIN record r ON r.id = i.record WHERE ")


def _returned_item_statement(barcode: str) -> Statement:
    """A copy by barcode with its open loan, if any (`loan_id`, `loan_due_on`, `loan_rule`)."""
    return Statement(_ITEM_SQL.replace(" FROM item i JOIN record r ON r.id = i.record ",
                                       ', l.id AS loan_id, l.due_on AS loan_due_on, l.rule AS loan_rule, '
                                       "(SELECT tf.to_branch FROM transfer tf WHERE tf.item = i.id "
                                       "AND tf.status IN ('requested', 'sent')) AS rotating_to "
                                       "FROM item i JOIN record r ON r.id = i.record "
                                       "LEFT JOIN loan l ON l.item = i.id AND l.returned_at IS NULL ")
                     + "i.barcode = {}", (normalise_barcode(barcode),))


def _returned_item_of(rows: list[dict[str, Any]], barcode: str) -> dict[str, Any]:
    if not rows:
        raise NotFound("item_not_found", field="barcode", barcode=normalise_barcode(barcode))
    return rows[0]


_PATRON_AND_ITEM_SQL = (
    "SELECT p.id AS patron_id, p.category, p.expires_on, p.block_reason, "
    "(SELECT count(*) FROM loan l WHERE l.patron = p.id AND l.returned_at IS NULL) AS open_loans, "
    'i.id, i.barcode, i.status, i.item_type, i.record, r.title AS "record.title", '
    "(SELECT h.patron FROM hold h WHERE h.item = i.id AND h.status = 'ready') AS held_for, "
    "(SELECT count(*) FROM hold o WHERE o.record = i.record AND o.patron = p.id "
    "AND o.status IN ('waiting', 'ready')) AS own_holds "
    "FROM patron p LEFT JOIN item i ON i.barcode = {} LEFT JOIN record r ON r.id = i.record "
    "WHERE p.card_number = {}")


def _patron_and_item_statement(card_number: str, barcode: str) -> Statement:
    """The reader (with their open loans, counted on the partial index) and the copy, in one query."""
    return Statement(_PATRON_AND_ITEM_SQL, (normalise_barcode(barcode), normalise_card_number(card_number)))


def _patron_and_item_of(rows: list[dict[str, Any]], card_number: str,
                        barcode: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if not rows:
        raise NotFound("patron_not_found", field="card_number", card_number=normalise_card_number(card_number))
    row = rows[0]
    if row["id"] is None:
        raise NotFound("item_not_found", field="barcode", barcode=normalise_barcode(barcode))
    patron = {"id": row["patron_id"], "category": row["category"], "expires_on": row["expires_on"],
              "block_reason": row["block_reason"], "open_loans": row["open_loans"]}
    return patron, row


async def _item_by_id(item_id: int) -> dict[str, Any]:
    return await _first(_ITEM_SQL + "i.id = {}", item_id)


def _refuse_unless_overridden(refusals: list[rules.Refusal], comment: str | None) -> list[dict[str, Any]]:
    """Raise with every reason unless staff overrode all that stand; return what was overridden."""
    if rules.blocking(refusals, comment):
        raise CirculationRefused(refusals)
    return [{"code": refusal.code, "params": refusal.params} for refusal in refusals]


# --- checkout ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedOut:
    loan_uuid: str
    barcode: str
    title: str
    due_on: dt.date
    rule_scope: str
    overridden: tuple[str, ...]


async def checkout(principal: Principal, branch_code: str, card_number: str, barcode: str, now: dt.datetime,
                   override_comment: str | None = None) -> CheckedOut:
    """Lend a copy at a branch's desk; refused with every reason, or overridden by staff with a comment."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    comment = _clean_comment(override_comment)
    # The branch, its rules and its calendar are configuration, read before the write
    # transaction (SQLite has one writer, and it should hold the lock only for the reader,
    # the copy and the writes) and cached per configuration version: one query here.
    version = await config_cache.current_version()
    branch = await _branch(branch_code, version)
    if not principal.works_for(branch["id"]):
        raise NotPermitted("not_your_branch", code=branch["code"])
    today = local_today(now, branch["time_zone"])
    all_terms = await _all_terms(version)
    calendar, public = await _calendar(branch, today, version)

    def script():
        # Runs whole in the database's thread on SQLite (see `run_script`): no awaits here.
        rows, = yield [_patron_and_item_statement(card_number, barcode)]
        patron, item = _patron_and_item_of(rows, card_number, barcode)
        chosen = _choose(all_terms, branch["id"], patron["category"], item["item_type"])
        refusals = rules.checkout_refusals(
            _patron_facts(patron, patron["open_loans"]),
            rules.ItemFacts(item["status"], item["item_type"], item["held_for"]), chosen.terms, today)
        overridden = _refuse_unless_overridden(refusals, comment)
        due_on = rules.due_date(today, chosen.terms.loan_days, calendar, public)
        loan_uuid = str(uuid_module.uuid4())
        overrides = [{**entry, "comment": comment, "by": principal.name} for entry in overridden]
        writes = [
            # The partial unique index on open loans refuses a second loan of the copy here.
            Statement(
                "INSERT INTO loan (uuid, item, patron, patron_category, branch, rule, rule_scope, checked_out_at, "
                "due_on, due_at, renewals, last_renewed_at, returned_at, returned_branch, days_overdue_at_return, "
                "fine_cents, overrides, created_by, updated_at) "
                "VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, 0, NULL, NULL, NULL, 0, 0, {}, {}, {})",
                (loan_uuid, item["id"], patron["id"], patron["category"], branch["id"], chosen.terms.id,
                 chosen.terms.scope, now, due_on, end_of_day(due_on, branch["time_zone"]), json.dumps(overrides),
                 principal.audit_name, now)),
            Statement(
                "UPDATE item SET status = 'on_loan', due_back = {}, current_branch = {}, updated_at = {} "
                "WHERE id = {} AND status IN ('available', 'in_processing', 'on_hold_shelf') RETURNING id",
                (due_on, branch["id"], now, item["id"])),
        ]
        if overridden:
            writes.append(audit.statement(principal.audit_name, "loan.override", f"item:{item['barcode']}", now,
                                          reasons=[entry["code"] for entry in overridden], comment=comment))
        # The reader's own hold on this book is fulfilled by borrowing any copy of it.
        if item["own_holds"]:
            writes.append(Statement("UPDATE hold SET status = 'fulfilled', closed_at = {}, updated_at = {} "
                                    "WHERE patron = {} AND record = {} AND status IN ('waiting', 'ready')",
                                    (now, now, patron["id"], item["record"])))
        written = yield writes
        if not written[1]:  # the copy was lent a moment ago: everything above is rolled back
            raise CirculationRefused([rules.Refusal("item_on_loan")])
        return CheckedOut(loan_uuid, item["barcode"], item["record.title"], due_on, chosen.terms.scope,
                          tuple(entry["code"] for entry in overridden))

    async def work() -> CheckedOut:
        return await run_script(script())

    try:
        return await run_in_write_transaction(work, begin_with_first_statement=True)
    except Exception as error:
        if is_unique_violation(error):
            # Another desk lent the same copy a moment earlier.
            raise CirculationRefused([rules.Refusal("item_on_loan")]) from None
        raise


# --- return anywhere ---------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedIn:
    barcode: str
    title: str
    was_on_loan: bool
    days_overdue: int
    fine_cents: int
    route: str  # shelve | transit_home | hold_shelf | hold_transit | still_in_transit
    to_branch_code: str
    to_branch_name_zh: str
    to_branch_name_en: str
    hold_patron_name: str = ""
    hold_patron_card: str = ""
    received_transit: bool = False


async def _waiting_holds(record_id: int) -> list[dict[str, Any]]:
    return await _rows("SELECT id, patron, pickup_branch, placed_at FROM hold WHERE record = {} AND status = 'waiting' "
                       "ORDER BY placed_at, id", record_id)


async def _assign_to_hold(item: dict[str, Any], here: dict[str, Any], route: rules.Route, all_terms,
                          now: dt.datetime) -> dict[str, Any] | None:
    """Set the copy aside for the hold; None when the hold was closed in the meantime."""
    hold = await Hold.select(Hold.id, Hold.uuid, Hold.patron, Hold.patron.name, Hold.patron.card_number,
                             Hold.patron.category, Hold.record.title).where(
        (Hold.id == route.hold_id) & (Hold.status == "waiting")).first()
    if hold is None:
        return None
    if route.kind == "hold_shelf":
        today = local_today(now, here["time_zone"])
        terms = _choose(all_terms, here["id"], hold["patron.category"], item["item_type"]).terms
        calendar, public = await _calendar(here, today)
        expires_on = rules.hold_shelf_expiry(today, terms, calendar, public)
        changed = await Hold.update({Hold.status: "ready", Hold.item: item["id"], Hold.ready_at: now,
                                     Hold.expires_on: expires_on}).where(
            (Hold.id == hold["id"]) & (Hold.status == "waiting")).returning(Hold.id)
        if changed:
            await notices.queue_hold_ready(hold["patron"], hold["uuid"], hold["record.title"], here, expires_on, now)
    else:
        changed = await Hold.update({Hold.status: "in_transit", Hold.item: item["id"]}).where(
            (Hold.id == hold["id"]) & (Hold.status == "waiting")).returning(Hold.id)
    return hold if changed else None


async def _route_copy(item: dict[str, Any], here: dict[str, Any],
                      now: dt.datetime) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """Send a copy that is physically at `here` on its way: hold shelf, transit, or shelf.

    A copy that was missing, lost or damaged and is scanned here is back in circulation.
    """
    waiting = await _waiting_holds(item["record"]) if item.get("waiting_holds", 1) else []
    queue = [rules.WaitingHold(h["id"], h["patron"], h["pickup_branch"], h["placed_at"]) for h in waiting]
    all_terms: Sequence[rules.Terms] = ()
    loanable = True
    if queue:  # the rules only matter when someone waits
        all_terms = await _all_terms()
        loanable = _choose(all_terms, here["id"], "adult", item["item_type"]).terms.loanable
    while True:
        route = rules.route_returned_copy(here["id"], item["home_branch"], queue, holds_allowed=loanable)
        hold = None
        if route.hold_id is not None:
            hold = await _assign_to_hold(item, here, route, all_terms, now)
            if hold is None:  # cancelled a moment ago: the next reader in the queue
                queue = [entry for entry in queue if entry.id != route.hold_id]
                continue
        break
    destination = here if route.to_branch_id == here["id"] else await _branch_by_id(route.to_branch_id)
    status = {"shelve": "available", "hold_shelf": "on_hold_shelf"}.get(route.kind, "in_transit")
    writes = [Statement("UPDATE item SET status = {}, current_branch = {}, due_back = NULL, updated_at = {} "
                        "WHERE id = {}", (status, here["id"], now, item["id"]))]
    if status == "in_transit":
        writes.append(_transit_statement(item, here, route, now))
    await batch(*writes)
    return route.kind, destination, hold


def _transit_statement(item: dict[str, Any], here: dict[str, Any], route: rules.Route, now: dt.datetime) -> Statement:
    return Statement("INSERT INTO transit (uuid, item, from_branch, to_branch, hold, sent_at, received_at, updated_at) "
                     "VALUES ({}, {}, {}, {}, {}, {}, NULL, {})",
                     (str(uuid_module.uuid4()), item["id"], here["id"], route.to_branch_id, route.hold_id, now, now))


async def checkin(principal: Principal, branch_code: str, barcode: str, now: dt.datetime) -> CheckedIn:
    """A copy handed in at any branch (通借通还): close its loan, then shelve, send home, or trap for a hold."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    version = await config_cache.current_version()
    here = await _branch(branch_code, version)  # configuration, read before the write lock
    if not principal.works_for(here["id"]):
        raise NotPermitted("not_your_branch", code=here["code"])

    # Configuration too, read before the write lock: the fine rates and where a copy goes home.
    all_terms = await _all_terms(version)
    branches = await _branches_by_id(version)
    today = local_today(now, here["time_zone"])

    def script():
        # Runs whole in the database's thread on SQLite (see `run_script`): no awaits here.
        rows, = yield [_returned_item_statement(barcode)]
        item = _returned_item_of(rows, barcode)
        if item["status"] == "withdrawn":
            raise Conflict("item_withdrawn", field="barcode")
        days_overdue = fine = 0
        close_loan = []
        if item["loan_id"] is not None:
            days_overdue = rules.overdue_days(item["loan_due_on"], today)
            if days_overdue:
                rate = next((t.fine_cents_per_day for t in all_terms if t.id == item["loan_rule"]), 0)
                fine = days_overdue * (rate or 0)
            close_loan = [Statement(
                "UPDATE loan SET returned_at = {}, returned_branch = {}, days_overdue_at_return = {}, fine_cents = {}, "
                "updated_at = {} WHERE id = {} AND returned_at IS NULL RETURNING id",
                (now, here["id"], days_overdue, fine, now, item["loan_id"]))]
        if item["status"] in ("in_transit", "on_hold_shelf") or item["waiting_holds"]:
            return Unfinished((item, close_loan, days_overdue, fine))  # holds and journeys: below
        # Nobody waits for the book and it is not travelling: to this shelf or home, the
        # loan closed, the copy moved and the commit in the same trip (SQLite).
        route = rules.route_returned_copy(here["id"], item["home_branch"], ())
        destination = here if route.to_branch_id == here["id"] else branches.get(route.to_branch_id)
        if destination is None:  # a branch newer than the configuration read above
            return Unfinished((item, close_loan, days_overdue, fine))
        status = "available" if route.kind == "shelve" else "in_transit"
        writes = [*close_loan, Statement(
            "UPDATE item SET status = {}, current_branch = {}, due_back = NULL, updated_at = {} WHERE id = {}",
            (status, here["id"], now, item["id"]))]
        if status == "in_transit":
            writes.append(_transit_statement(item, here, route, now))
        elif item["rotating_to"] == here["id"]:
            # a copy rotated here (library.sync) and lent meanwhile comes home by being returned
            writes.append(Statement(
                "UPDATE transfer SET status = 'received', received_at = {}, updated_at = {} "
                "WHERE item = {} AND status IN ('requested', 'sent') AND to_branch = {}",
                (now, now, item["id"], here["id"])))
        results = yield writes
        closed = bool(close_loan and results[0])
        return _checked_in(item, closed, days_overdue if closed else 0, fine if closed else 0, route.kind,
                           destination)

    async def work() -> CheckedIn:
        outcome = await run_script(script())
        if not isinstance(outcome, Unfinished):
            return outcome
        item, close_loan, days_overdue, fine = outcome.value
        closed = bool(close_loan and (await batch(*close_loan))[0])
        if not closed:
            days_overdue = fine = 0
        transit = None
        if item["status"] == "in_transit":
            transit = await Transit.select(Transit.id, Transit.to_branch, Transit.hold).where(
                (Transit.item == item["id"]) & Transit.received_at.is_null()).first()
        if transit is not None:
            if transit["to_branch"] != here["id"]:
                # Scanned on the way (the van stopped here): it keeps travelling.
                destination = await _branch_by_id(transit["to_branch"], version)
                return _checked_in(item, closed, days_overdue, fine, "still_in_transit", destination)
            return await _receive(item, here, transit, now, closed, days_overdue, fine)
        if item["status"] == "on_hold_shelf" and not closed:
            # Scanned again on the hold shelf: it stays set aside for its reader.
            hold = await Hold.select(Hold.patron.name, Hold.patron.card_number).where(
                (Hold.item == item["id"]) & (Hold.status == "ready")).first()
            if hold is not None:
                return _checked_in(item, False, 0, 0, "hold_shelf", here, hold)
        kind, destination, hold = await _route_copy(item, here, now)
        return _checked_in(item, closed, days_overdue, fine, kind, destination, hold)

    return await run_in_write_transaction(work, begin_with_first_statement=True)


def _checked_in(item, was_on_loan, days_overdue, fine, route, destination, hold=None, received=False) -> CheckedIn:
    return CheckedIn(
        barcode=item["barcode"], title=item["record.title"], was_on_loan=was_on_loan, days_overdue=days_overdue,
        fine_cents=fine, route=route, to_branch_code=destination["code"], to_branch_name_zh=destination["name_zh"],
        to_branch_name_en=destination["name_en"],
        hold_patron_name=(hold or {}).get("patron.name", ""), hold_patron_card=(hold or {}).get("patron.card_number", ""),
        received_transit=received,
    )


async def _receive(item, here, transit, now, was_on_loan, days_overdue, fine) -> CheckedIn:
    await Transit.update({Transit.received_at: now}).where(Transit.id == transit["id"])
    # A rotation (library.sync) ends when its copy is received at its new home.
    await _rows("UPDATE transfer SET status = 'received', received_at = {}, updated_at = {} "
                "WHERE item = {} AND status IN ('requested', 'sent') AND to_branch = {}", now, now, item["id"], here["id"])
    if transit["hold"] is not None:
        hold = await Hold.select(Hold.id, Hold.uuid, Hold.patron, Hold.patron.name, Hold.patron.card_number,
                                 Hold.patron.category, Hold.record.title, Hold.status).where(
            Hold.id == transit["hold"]).first()
        if hold is not None and hold["status"] == "in_transit":
            today = local_today(now, here["time_zone"])
            terms = _choose(await _all_terms(), here["id"], hold["patron.category"], item["item_type"]).terms
            calendar, public = await _calendar(here, today)
            expires_on = rules.hold_shelf_expiry(today, terms, calendar, public)
            await Hold.update({Hold.status: "ready", Hold.ready_at: now, Hold.expires_on: expires_on}).where(
                Hold.id == hold["id"])
            await Item.update({Item.status: "on_hold_shelf", Item.current_branch: here["id"]}).where(
                Item.id == item["id"])
            await notices.queue_hold_ready(hold["patron"], hold["uuid"], hold["record.title"], here, expires_on, now)
            return _checked_in(item, was_on_loan, days_overdue, fine, "hold_shelf", here, hold, received=True)
    # Arrived home (or its hold was cancelled on the way): route it afresh from here.
    item = {**item, "status": "available"}
    kind, destination, hold = await _route_copy(item, here, now)
    return _checked_in(item, was_on_loan, days_overdue, fine, kind, destination, hold, received=True)


# --- renewals ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RenewalOutcome:
    loan_uuid: str
    barcode: str
    title: str
    renewed: bool
    due_on: dt.date
    reasons: tuple[rules.Refusal, ...] = ()


async def _may_touch_loan(principal: Principal, patron_id: int | None) -> bool:
    if principal.is_staff:
        return True
    return patron_id is not None and principal.is_patron and (
        patron_id == principal.id or patron_id in principal.children_ids)


async def _renew_one(principal: Principal, loan_uuid: str, now: dt.datetime, comment: str | None) -> RenewalOutcome:
    async def work() -> RenewalOutcome:
        loan = await Loan.select(
            Loan.id, Loan.uuid, Loan.patron, Loan.branch, Loan.due_on, Loan.renewals, Loan.overrides,
            Loan.item.barcode, Loan.item.item_type, Loan.item.record, Loan.item.record.title,
        ).where((Loan.uuid == loan_uuid) & Loan.returned_at.is_null()).first()
        if loan is None or not await _may_touch_loan(principal, loan["patron"]):
            # Someone else's loan reads as no loan at all: its existence is not disclosed.
            raise NotFound("loan_not_found")
        branch = await _branch_by_id(loan["branch"])
        today = local_today(now, branch["time_zone"])
        patron = await Patron.select(Patron.id, Patron.category, Patron.expires_on, Patron.block_reason).where(
            Patron.id == loan["patron"]).first()
        chosen = _choose(await _all_terms(), branch["id"], patron["category"], loan["item.item_type"])
        others_waiting = await Hold.count().where(
            (Hold.record == loan["item.record"]) & (Hold.status == "waiting") & (Hold.patron != loan["patron"]))
        calendar, public = await _calendar(branch, today)
        decision = rules.renewal(rules.LoanFacts(loan["due_on"], loan["renewals"]), _patron_facts(patron),
                                 chosen.terms, others_waiting, today, calendar, public)
        refusals = list(decision.refusals)
        staff_comment = comment if principal.is_staff else None
        if rules.blocking(refusals, staff_comment) or any(r.code == "renewal_not_needed" for r in refusals):
            return RenewalOutcome(str(loan["uuid"]), loan["item.barcode"], loan["item.record.title"], False,
                                  loan["due_on"], tuple(refusals))
        overrides = json_list(loan["overrides"]) + [
            {"code": r.code, "params": r.params, "comment": staff_comment, "by": principal.name} for r in refusals]
        # Conditional on the count read above: of two renewals at the same moment one wins.
        updated = await Loan.update({
            Loan.due_on: decision.new_due_on, Loan.due_at: end_of_day(decision.new_due_on, branch["time_zone"]),
            Loan.renewals: loan["renewals"] + 1, Loan.last_renewed_at: now, Loan.overrides: overrides,
            Loan.rule: chosen.terms.id, Loan.rule_scope: chosen.terms.scope,
        }).where((Loan.id == loan["id"]) & (Loan.renewals == loan["renewals"]) & Loan.returned_at.is_null()
                 ).returning(Loan.id)
        if not updated:
            raise Conflict("renewal_limit", count=loan["renewals"] + 1, limit=chosen.terms.max_renewals)
        await Item.update({Item.due_back: decision.new_due_on}).where(Item.barcode == loan["item.barcode"])
        if refusals:
            await audit.record(principal.audit_name, "loan.renewal_override", f"loan:{loan['uuid']}",
                               reasons=[r.code for r in refusals], comment=staff_comment)
        return RenewalOutcome(str(loan["uuid"]), loan["item.barcode"], loan["item.record.title"], True,
                              decision.new_due_on)

    return await run_in_write_transaction(work)


async def renew(principal: Principal, loan_uuids: list[str], now: dt.datetime,
                override_comment: str | None = None) -> list[RenewalOutcome]:
    """Renew each loan on its own: one refusal does not stop the others."""
    comment = _clean_comment(override_comment)
    wanted = [_uuid(value, "loan_not_found") for value in loan_uuids]
    if not wanted:
        raise InvalidInput("required", field="loans")
    outcomes = []
    for loan_uuid in dict.fromkeys(wanted):
        outcomes.append(await _renew_one(principal, loan_uuid, now, comment))
    return outcomes


async def renew_all(principal: Principal, now: dt.datetime, card_number: str | None = None) -> list[RenewalOutcome]:
    """A reader's 'Renew all' covers their own loans and their linked children's."""
    if principal.is_staff:
        if not card_number:
            raise InvalidInput("required", field="card_number")
        patron_ids = [(await _patron_by_card(card_number))["id"]]
    elif card_number:
        from library.accounts.service import patron_acted_for

        patron_ids = [await patron_acted_for(principal, card_number)]
    else:
        patron_ids = [principal.id, *sorted(principal.children_ids)]
    rows = await Loan.select(Loan.uuid).where(Loan.patron.is_in(patron_ids) & Loan.returned_at.is_null()).order_by(
        Loan.due_on)
    if not rows:
        return []
    return await renew(principal, [str(row["uuid"]) for row in rows], now)


# --- holds -------------------------------------------------------------------------------


async def place_hold(principal: Principal, record_uuid: str, pickup_branch_code: str, now: dt.datetime,
                     card_number: str | None = None) -> dict[str, Any]:
    """A reader (for themself or a linked child) or staff (for any reader) waits for any copy of a record."""
    record_uuid = _uuid(record_uuid, "record_not_found")

    async def work() -> dict[str, Any]:
        if principal.is_staff:
            if not card_number:
                raise InvalidInput("required", field="card_number")
            patron = await _patron_by_card(card_number)
        else:
            subject = principal.id
            if card_number:
                from library.accounts.service import patron_acted_for

                subject = await patron_acted_for(principal, card_number)
            patron = await Patron.select(Patron.id, Patron.category, Patron.expires_on, Patron.block_reason,
                                         Patron.name).where(Patron.id == subject).first()
        pickup = await _branch(pickup_branch_code)
        record = await Record.select(Record.id, Record.title).where(Record.uuid == record_uuid).first()
        if record is None:
            raise NotFound("record_not_found")
        today = local_today(now, pickup["time_zone"])
        items = await Item.select(Item.id, Item.item_type, Item.status).where(
            (Item.record == record["id"]) & Item.status.not_in(["withdrawn", "lost"]))
        all_terms = await _all_terms()
        loanable = [i for i in items if _choose(all_terms, pickup["id"], patron["category"], i["item_type"]).terms.loanable]
        item_type = loanable[0]["item_type"] if loanable else (items[0]["item_type"] if items else "book")
        terms = _choose(all_terms, pickup["id"], patron["category"], item_type).terms
        on_loan = await Loan.count().where((Loan.patron == patron["id"]) & Loan.returned_at.is_null()
                                           & (Loan.item.record == record["id"]))
        holding = await Hold.count().where((Hold.patron == patron["id"]) & (Hold.record == record["id"])
                                           & Hold.status.is_in(list(ACTIVE_HOLD)))
        refusals = rules.hold_refusals(_patron_facts(patron), terms, today, len(loanable), on_loan > 0, holding > 0)
        if refusals:
            raise CirculationRefused(refusals)
        hold_uuid = str(uuid_module.uuid4())
        await Hold.insert(Hold(uuid=hold_uuid, record=record["id"], patron=patron["id"], pickup_branch=pickup["id"],
                               placed_at=now, created_by=principal.audit_name))
        position = await Hold.count().where((Hold.record == record["id"]) & (Hold.status == "waiting"))
        return {"uuid": hold_uuid, "title": record["title"], "pickup_branch": pickup["code"], "position": position}

    try:
        return await run_in_write_transaction(work)
    except Exception as error:
        if is_unique_violation(error):
            raise CirculationRefused([rules.Refusal("hold_exists")]) from None
        raise


async def cancel_hold(principal: Principal, hold_uuid: str, now: dt.datetime) -> None:
    """Cancel a hold; a copy set aside for it passes to the next reader or goes back."""
    hold_uuid = _uuid(hold_uuid, "hold_not_found")

    async def work() -> None:
        hold = await Hold.select(Hold.id, Hold.patron, Hold.status, Hold.item, Hold.pickup_branch).where(
            Hold.uuid == hold_uuid).first()
        if hold is None or not (await _may_touch_loan(principal, hold["patron"])):
            raise NotFound("hold_not_found")
        if hold["status"] not in ACTIVE_HOLD:
            raise Conflict("hold_not_cancellable", status=hold["status"])
        await Hold.update({Hold.status: "cancelled", Hold.closed_at: now}).where(Hold.id == hold["id"])
        if hold["status"] == "ready" and hold["item"] is not None:
            await _release_from_shelf(hold["item"], hold["pickup_branch"], now)
        await audit.record(principal.audit_name, "hold.cancelled", f"hold:{hold_uuid}")

    await run_in_write_transaction(work)


async def _release_from_shelf(item_id: int, branch_id: int, now: dt.datetime) -> None:
    item = await _item_by_id(item_id)
    here = await _branch_by_id(branch_id)
    await _route_copy({**item, "status": "available"}, here, now)


async def expire_hold_shelf(now: dt.datetime, only_branches: set[str] | None = None,
                            except_branches: set[str] | None = None) -> int:
    """Holds not collected by their last day expire; each copy passes to the next reader.

    With branch sync, a hold shelf is emptied by the node that runs its branch (branch codes
    to keep to, or to leave to their own nodes), so two nodes never pass one copy on twice.
    """
    async def work() -> int:
        ready = await Hold.select(Hold.id, Hold.item, Hold.pickup_branch, Hold.expires_on,
                                  Hold.pickup_branch.time_zone, Hold.pickup_branch.code).where(Hold.status == "ready")
        expired = 0
        for hold in ready:
            code = hold["pickup_branch.code"]
            if (only_branches is not None and code not in only_branches) or code in (except_branches or set()):
                continue
            if hold["expires_on"] >= local_today(now, hold["pickup_branch.time_zone"]):
                continue
            changed = await Hold.update({Hold.status: "expired", Hold.closed_at: now}).where(
                (Hold.id == hold["id"]) & (Hold.status == "ready")).returning(Hold.id)
            if changed and hold["item"] is not None:
                await _release_from_shelf(hold["item"], hold["pickup_branch"], now)
                expired += 1
        return expired

    return await run_in_write_transaction(work)


# --- what people see ---------------------------------------------------------------------


def _loan_view(row: dict[str, Any], today: dt.date) -> dict[str, Any]:
    return {
        "uuid": str(row["uuid"]),
        "barcode": row["item.barcode"],
        "title": row["item.record.title"],
        "record_uuid": str(row["item.record.uuid"]),
        "checked_out_at": row["checked_out_at"],
        "due_on": row["due_on"],
        "overdue_days": rules.overdue_days(row["due_on"], today),
        "renewals": row["renewals"],
        "rule_scope": row["rule_scope"],
        "overrides": json_list(row["overrides"]),
        "branch_code": row["branch.code"],
        "patron": row["patron"],
    }


_LOAN_COLUMNS = (Loan.uuid, Loan.patron, Loan.checked_out_at, Loan.due_on, Loan.renewals, Loan.rule_scope,
                 Loan.overrides, Loan.item.barcode, Loan.item.record.title, Loan.item.record.uuid, Loan.branch.code)


async def _holds_of(patron_ids: list[int]) -> list[dict[str, Any]]:
    rows = await Hold.select(Hold.uuid, Hold.patron, Hold.record, Hold.status, Hold.placed_at, Hold.expires_on,
                             Hold.record.title, Hold.record.uuid, Hold.pickup_branch.code,
                             Hold.pickup_branch.name_zh, Hold.pickup_branch.name_en).where(
        Hold.patron.is_in(patron_ids or [-1]) & Hold.status.is_in(list(ACTIVE_HOLD))).order_by(Hold.placed_at)
    views = []
    for row in rows:
        position = None
        if row["status"] == "waiting":
            position = 1 + await Hold.count().where((Hold.record == row["record"]) & (Hold.status == "waiting")
                                                    & (Hold.placed_at < row["placed_at"]))
        views.append({
            "uuid": str(row["uuid"]), "patron": row["patron"], "title": row["record.title"],
            "record_uuid": str(row["record.uuid"]), "status": row["status"], "placed_at": row["placed_at"],
            "expires_on": row["expires_on"], "position": position, "pickup_branch": row["pickup_branch.code"],
            "pickup_name_zh": row["pickup_branch.name_zh"], "pickup_name_en": row["pickup_branch.name_en"],
        })
    return views


async def account(principal: Principal, today: dt.date) -> dict[str, Any]:
    """"My account": the reader's loans and holds, and those of each linked child."""
    if not principal.is_patron:
        raise NotPermitted("patron_only")
    ids = [principal.id, *sorted(principal.children_ids)]
    async with read_transaction():
        people = await Patron.select(Patron.id, Patron.uuid, Patron.name, Patron.card_number, Patron.category,
                                     Patron.expires_on, Patron.block_reason).where(Patron.id.is_in(ids))
        loans = await Loan.select(*_LOAN_COLUMNS).where(Loan.patron.is_in(ids) & Loan.returned_at.is_null()
                                                         ).order_by(Loan.due_on)
        holds = await _holds_of(ids)
    by_id = {person["id"]: person for person in people}
    readers = []
    for patron_id in ids:
        person = by_id.get(patron_id)
        if person is None:
            continue
        readers.append({
            "name": person["name"], "card_number": person["card_number"], "category": person["category"],
            "is_me": patron_id == principal.id, "expires_on": person["expires_on"],
            "expired": person["expires_on"] < today, "block_reason": person["block_reason"],
            "loans": [_loan_view(row, today) for row in loans if row["patron"] == patron_id],
            "holds": [hold for hold in holds if hold["patron"] == patron_id],
        })
    return {"readers": readers, "loan_count": len(loans)}


async def patron_at_desk(principal: Principal, card_number: str, today: dt.date) -> dict[str, Any]:
    """What the desk sees after scanning a card: the reader, their loans and holds."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    async with read_transaction():
        patron = await _patron_by_card(card_number)
        loans = await Loan.select(*_LOAN_COLUMNS).where((Loan.patron == patron["id"]) & Loan.returned_at.is_null()
                                                         ).order_by(Loan.due_on)
        holds = await _holds_of([patron["id"]])
    return {
        "card_number": patron["card_number"], "name": patron["name"], "category": patron["category"],
        "expires_on": patron["expires_on"], "expired": patron["expires_on"] < today,
        "block_reason": patron["block_reason"], "loans": [_loan_view(row, today) for row in loans], "holds": holds,
    }


async def loan_detail(principal: Principal, loan_uuid: str) -> dict[str, Any]:
    """Staff see which rule applied to a loan and why, and every override with its comment."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    loan_uuid = _uuid(loan_uuid, "loan_not_found")
    async with read_transaction():
        row = await Loan.select(*_LOAN_COLUMNS, Loan.item.item_type, Loan.patron_category, Loan.branch,
                                Loan.returned_at, Loan.fine_cents, Loan.days_overdue_at_return).where(
            Loan.uuid == loan_uuid).first()
        if row is None:
            raise NotFound("loan_not_found")
        all_terms = await _all_terms()
    chosen = rules.choose_rule(all_terms, row["branch"], row["patron_category"], row["item.item_type"])
    view = _loan_view(row, dt.date.min)
    view.update({"item_type": row["item.item_type"], "patron_category": row["patron_category"],
                 "returned_at": row["returned_at"], "fine_cents": row["fine_cents"],
                 "rules_considered": list(chosen.considered) if chosen else []})
    return view


async def transits(principal: Principal, branch_code: str) -> dict[str, list[dict[str, Any]]]:
    """Copies on their way to this branch (to receive) and from it (sent)."""
    branch = await _branch(branch_code)
    if not principal.works_for(branch["id"]):
        raise NotPermitted("not_your_branch", code=branch["code"])
    columns = (Transit.sent_at, Transit.item.barcode, Transit.item.record.title, Transit.from_branch.code,
               Transit.to_branch.code, Transit.hold)
    open_transit = Transit.received_at.is_null()
    async with read_transaction():
        incoming = await Transit.select(*columns).where(open_transit & (Transit.to_branch == branch["id"])
                                                        ).order_by(Transit.sent_at)
        outgoing = await Transit.select(*columns).where(open_transit & (Transit.from_branch == branch["id"])
                                                        ).order_by(Transit.sent_at)

    def view(row):
        return {"barcode": row["item.barcode"], "title": row["item.record.title"], "sent_at": row["sent_at"],
                "from": row["from_branch.code"], "to": row["to_branch.code"], "for_hold": row["hold"] is not None}

    return {"incoming": [view(r) for r in incoming], "outgoing": [view(r) for r in outgoing]}


async def hold_shelf(principal: Principal, branch_code: str) -> dict[str, list[dict[str, Any]]]:
    """The hold shelf of a branch (ready, by last day) and the copies to pull from its shelves."""
    branch = await _branch(branch_code)
    if not principal.works_for(branch["id"]):
        raise NotPermitted("not_your_branch", code=branch["code"])
    async with read_transaction():
        ready = await Hold.select(Hold.uuid, Hold.expires_on, Hold.ready_at, Hold.item.barcode, Hold.record.title,
                                  Hold.patron.name, Hold.patron.card_number).where(
            (Hold.pickup_branch == branch["id"]) & (Hold.status == "ready")).order_by(Hold.expires_on)
        # Waiting holds that a copy on this branch's shelf could fill now: scan it in to trap it.
        waiting = await Hold.select(Hold.record, Hold.record.title, Hold.placed_at, Hold.patron.name).where(
            Hold.status == "waiting").order_by(Hold.placed_at)
        on_shelf = await Item.select(Item.barcode, Item.record, Item.shelf_location).where(
            (Item.current_branch == branch["id"]) & (Item.status == "available")
            & Item.record.is_in([row["record"] for row in waiting] or [-1]))
    shelf_copies: dict[int, list[dict[str, Any]]] = {}
    for copy in on_shelf:
        shelf_copies.setdefault(copy["record"], []).append(copy)
    pull, seen = [], set()
    for row in waiting:
        if row["record"] in shelf_copies and row["record"] not in seen:
            seen.add(row["record"])
            copy = shelf_copies[row["record"]][0]
            pull.append({"title": row["record.title"], "barcode": copy["barcode"],
                         "shelf_location": copy["shelf_location"], "for": row["patron.name"]})
    return {
        "ready": [{"uuid": str(r["uuid"]), "barcode": r["item.barcode"], "title": r["record.title"],
                   "name": r["patron.name"], "card_number": r["patron.card_number"], "expires_on": r["expires_on"]}
                  for r in ready],
        "to_pull": pull,
    }


async def returned_loans(principal: Principal, limit: int = 100) -> list[dict[str, Any]]:
    """A reader's own returned loans still linked to them (all of them when they keep a history,
    else only those not yet anonymised)."""
    if not principal.is_patron:
        raise NotPermitted("patron_only")
    rows = await _rows(
        "SELECT l.returned_at, l.checked_out_at, r.title, r.uuid AS record_uuid FROM loan l "
        "JOIN item i ON i.id = l.item JOIN record r ON r.id = i.record "
        f"WHERE l.patron = {{}} AND l.returned_at IS NOT NULL ORDER BY l.returned_at DESC LIMIT {int(limit)}",
        principal.id)
    return [{**row, "record_uuid": str(row["record_uuid"])} for row in rows]


# --- self-service (library.selfcheck) ----------------------------------------------------
# What a self-check machine asks besides checkout, checkin and renewals: a reader's standing,
# one copy's state, the loan of a copy in a reader's hands, a reader's hold on a book. The
# decisions stay the rules' above; these only load.


async def reader_standing(principal: Principal, branch_code: str, card_number: str,
                          now: dt.datetime) -> dict[str, Any]:
    """A reader as a self-check machine at a branch sees them: the reasons they may not borrow
    here today (asked of the checkout rule with no copy in particular), their loans and holds."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    version = await config_cache.current_version()
    branch = await _branch(branch_code, version)
    if not principal.works_for(branch["id"]):
        raise NotPermitted("not_your_branch", code=branch["code"])
    today = local_today(now, branch["time_zone"])
    all_terms = await _all_terms(version)
    async with read_transaction():
        patron = await _patron_by_card(card_number)
        loans = await Loan.select(*_LOAN_COLUMNS).where((Loan.patron == patron["id"]) & Loan.returned_at.is_null()
                                                         ).order_by(Loan.due_on)
        holds = await _holds_of([patron["id"]])
        set_aside = await Hold.select(Hold.uuid, Hold.item.barcode).where(
            (Hold.patron == patron["id"]) & Hold.status.is_in(["in_transit", "ready"]))
    # The rule for the reader's category here that covers every item type: a rule for one type
    # of copy (reference, picture books) answers only when that copy is scanned.
    chosen = _choose(all_terms, branch["id"], patron["category"], "")
    refusals = [refusal for refusal in rules.checkout_refusals(
        _patron_facts(patron, patron["open_loans"]), rules.ItemFacts("available", ""), chosen.terms, today)
        if not refusal.code.startswith("item_")]
    barcodes = {str(row["uuid"]): row["item.barcode"] for row in set_aside}
    return {
        "card_number": patron["card_number"], "name": patron["name"], "language": patron["language"],
        "category": patron["category"], "email": patron["email"], "expires_on": patron["expires_on"],
        "block_reason": patron["block_reason"], "refusals": refusals,
        "card_refusals": rules.card_refusals(_patron_facts(patron), today), "max_loans": chosen.terms.max_loans,
        "loans": [_loan_view(row, today) for row in loans],
        "holds": [{**hold, "barcode": barcodes.get(hold["uuid"])} for hold in holds],
    }


async def copy_state(barcode: str) -> dict[str, Any]:
    """One copy as a machine or a reader sees it: status, title, due date, where it belongs, who waits."""
    async with read_transaction():
        item = await _first(
            "SELECT i.barcode, i.status, i.item_type, i.due_back, i.shelf_location, r.title, r.uuid AS record_uuid, "
            "hb.code AS home_code, hb.name_zh AS home_name_zh, hb.name_en AS home_name_en, cb.code AS current_code, "
            "cb.name_zh AS current_name_zh, cb.name_en AS current_name_en, "
            "(SELECT count(*) FROM hold w WHERE w.record = i.record AND w.status = 'waiting') AS waiting_holds, "
            "(SELECT h.expires_on FROM hold h WHERE h.item = i.id AND h.status = 'ready') AS hold_expires_on "
            "FROM item i JOIN record r ON r.id = i.record JOIN branch hb ON hb.id = i.home_branch "
            "JOIN branch cb ON cb.id = i.current_branch WHERE i.barcode = {}", normalise_barcode(barcode))
    if item is None:
        raise NotFound("item_not_found", field="barcode", barcode=normalise_barcode(barcode))
    return {**item, "record_uuid": str(item["record_uuid"])}


async def open_loan_of(principal: Principal, card_number: str, barcode: str) -> str:
    """The uuid of the open loan of this copy to this reader (to renew it by scanning the copy)."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    row = await _first("SELECT l.uuid FROM loan l JOIN item i ON i.id = l.item JOIN patron p ON p.id = l.patron "
                       "WHERE i.barcode = {} AND p.card_number = {} AND l.returned_at IS NULL",
                       normalise_barcode(barcode), normalise_card_number(card_number))
    if row is None:
        raise NotFound("loan_not_found")
    return str(row["uuid"])


async def active_hold_of(principal: Principal, card_number: str, record_uuid: str) -> str:
    """The uuid of a reader's active hold on a book (to cancel it from a machine)."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    row = await Hold.select(Hold.uuid).where(
        (Hold.patron.card_number == normalise_card_number(card_number))
        & (Hold.record.uuid == _uuid(record_uuid, "hold_not_found")) & Hold.status.is_in(list(ACTIVE_HOLD))).first()
    if row is None:
        raise NotFound("hold_not_found")
    return str(row["uuid"])
