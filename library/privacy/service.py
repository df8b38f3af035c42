"""A reader's own data: what the library holds about them and their children, the download,
contact details, the reading-history choice, and closing the account.

Who may do what is decided in `rules.py` (children under 14 are managed by their guardian).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from library import audit, spreadsheet
from library.accounts.principal import Principal
from library.accounts.service import normalise_card_number
from library.accounts.tables import GuardianLink, Patron, PinChange
from library.activities.tables import ReadingLog, Registration
from library.db import read_transaction, run_in_write_transaction
from library.errors import Conflict, InvalidInput, NotFound, NotPermitted
from library.loans.tables import Hold, Loan, ReadingHistoryChoice
from library.notices.tables import Notice
from library.privacy import rules
from library.privacy.tables import AccountClosure
from library.settings import LANGUAGES

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[0-9][0-9 -]{4,30}$")


async def _reader(patron_id: int) -> dict[str, Any]:
    row = await Patron.select(Patron.id, Patron.uuid, Patron.card_number, Patron.name, Patron.category,
                              Patron.birth_date, Patron.home_branch.code, Patron.phone, Patron.email,
                              Patron.language, Patron.expires_on, Patron.block_reason, Patron.created_at,
                              Patron.updated_at).where(Patron.id == patron_id).first()
    if row is None:
        raise NotFound("patron_not_found", card_number="")
    return row


async def _actor(principal: Principal) -> rules.Reader:
    if not principal.is_patron:
        raise NotPermitted("patron_only")
    row = await _reader(principal.id)
    return rules.Reader(row["id"], row["category"], row["birth_date"])


async def subject_of(principal: Principal, card_number: str | None) -> int:
    """The reader a signed-in reader asks about: themself, or a child linked to them."""
    if not principal.is_patron:
        raise NotPermitted("patron_only")
    if not card_number:
        return principal.id
    row = await Patron.select(Patron.id).where(Patron.card_number == normalise_card_number(card_number)).first()
    if row is None or row["id"] not in principal.children_ids:
        raise NotPermitted("not_guardian")
    return row["id"]


async def manage_refusal(principal: Principal, subject_id: int, today: dt.date) -> str | None:
    """Why the principal may not change this reader's details and choices (None: they may)."""
    return rules.may_manage(await _actor(principal), subject_id, principal.children_ids, today)


async def _managed(principal: Principal, subject_id: int, today: dt.date) -> None:
    reason = await manage_refusal(principal, subject_id, today)
    if reason:
        raise NotPermitted(reason)


# --- what the library holds -----------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if hasattr(value, "hex") and not isinstance(value, (bytes, str)):
        return str(value)
    return value


def _rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key.replace(".", "_"): _plain(value) for key, value in row.items()} for row in rows]


async def holdings(principal: Principal, subject_id: int) -> dict[str, Any]:
    """Everything the library holds about one reader the principal may see, as plain values."""
    if not (subject_id == principal.id or subject_id in principal.children_ids):
        raise NotPermitted("not_guardian")
    async with read_transaction():
        reader = await _reader(subject_id)
        guardians = await GuardianLink.select(GuardianLink.guardian.card_number, GuardianLink.guardian.name,
                                              GuardianLink.relationship).where(GuardianLink.child == subject_id)
        children = await GuardianLink.select(GuardianLink.child.card_number, GuardianLink.child.name,
                                             GuardianLink.relationship).where(GuardianLink.guardian == subject_id)
        loans = await Loan.select(Loan.item.record.title, Loan.item.barcode, Loan.branch.code, Loan.checked_out_at,
                                  Loan.due_on, Loan.renewals, Loan.returned_at, Loan.fine_cents).where(
            Loan.patron == subject_id).order_by(Loan.checked_out_at, ascending=False)
        holds = await Hold.select(Hold.record.title, Hold.pickup_branch.code, Hold.status, Hold.placed_at,
                                  Hold.closed_at).where(Hold.patron == subject_id).order_by(Hold.placed_at,
                                                                                            ascending=False)
        registrations = await Registration.select(
            Registration.occurrence.event.title_zh, Registration.occurrence.event.title_en,
            Registration.occurrence.starts_at, Registration.status, Registration.checked_in_at,
            Registration.created_at).where(Registration.patron == subject_id).order_by(Registration.created_at,
                                                                                       ascending=False)
        reading = await ReadingLog.select(ReadingLog.programme.title_zh, ReadingLog.title, ReadingLog.read_on,
                                          ReadingLog.minutes, ReadingLog.source).where(
            ReadingLog.patron == subject_id).order_by(ReadingLog.read_on, ascending=False)
        notices = await Notice.select(Notice.kind, Notice.subject, Notice.to_address, Notice.created_at,
                                      Notice.sent_at).where(Notice.patron == subject_id).order_by(Notice.created_at,
                                                                                                 ascending=False)
        choice = await ReadingHistoryChoice.select(ReadingHistoryChoice.keep_history).where(
            ReadingHistoryChoice.patron == subject_id).first()
        pins = await PinChange.select(PinChange.set_at, PinChange.set_by, PinChange.branch.code).where(
            PinChange.patron == subject_id).order_by(PinChange.set_at, ascending=False)
        closure = await AccountClosure.select(AccountClosure.requested_at, AccountClosure.completed_at).where(
            AccountClosure.card_number == reader["card_number"]).first()
    profile = {key.replace(".", "_"): _plain(value) for key, value in reader.items() if key != "id"}
    return {
        "profile": profile,
        "guardians": _rows(guardians),
        "children": _rows(children),
        "keeps_reading_history": bool(choice and choice["keep_history"]),
        "loans": _rows(loans),
        "holds": _rows(holds),
        "registrations": _rows(registrations),
        "reading_logs": _rows(reading),
        "notices": _rows(notices),
        "pin_changes": _rows(pins),
        "closure": _rows([closure])[0] if closure else None,
    }


async def download(principal: Principal, subject_id: int, today: dt.date) -> dict[str, Any]:
    """What a download carries: for a reader who manages the account (a child under 14's is the
    guardian's to take away)."""
    await _managed(principal, subject_id, today)
    return await holdings(principal, subject_id)


def as_json(held: dict[str, Any]) -> bytes:
    return json.dumps(held, ensure_ascii=False, indent=2).encode()


def as_csv(held: dict[str, Any]) -> bytes:
    """One row per fact: section, then its fields as name=value (a spreadsheet opens it as is)."""
    lines: list[list[object]] = [["section", "field", "value"]]
    lines += [["profile", key, value] for key, value in held["profile"].items()]
    lines.append(["profile", "keeps_reading_history", held["keeps_reading_history"]])
    for section in ("guardians", "children", "loans", "holds", "registrations", "reading_logs", "notices",
                    "pin_changes"):
        for position, row in enumerate(held[section], start=1):
            lines += [[f"{section}[{position}]", key, value] for key, value in row.items()]
    if held["closure"]:
        lines += [["closure", key, value] for key, value in held["closure"].items()]
    return spreadsheet.csv_text(lines).encode()


# --- what a reader (or guardian) may change ---------------------------------------------------


async def update_contact(principal: Principal, subject_id: int, email: str, phone: str, language: str,
                         today: dt.date) -> None:
    """E-mail, phone and the language of notices; the rest of a card is changed at the desk."""
    await _managed(principal, subject_id, today)
    email, phone, language = (email or "").strip(), (phone or "").strip(), (language or "").strip()
    if email and (len(email) > 254 or not EMAIL.match(email)):
        raise InvalidInput("invalid_email", field="email")
    if phone and not PHONE.match(phone):
        raise InvalidInput("invalid_phone", field="phone")
    if language not in LANGUAGES:
        raise InvalidInput("invalid_language", field="language")

    async def work() -> None:
        await Patron.update({Patron.email: email, Patron.phone: phone, Patron.language: language}).where(
            Patron.id == subject_id)
        card = (await Patron.select(Patron.card_number).where(Patron.id == subject_id).first())["card_number"]
        await audit.record(principal.audit_name, "patron.contact_changed", f"patron:{card}")

    await run_in_write_transaction(work)


async def set_keep_history(principal: Principal, subject_id: int, keep: bool, today: dt.date) -> bool:
    """Keep (or let go of) a reader's reading history: their own choice, a guardian's for a child."""
    await _managed(principal, subject_id, today)

    async def work() -> bool:
        patron = await Patron.select(Patron.uuid).where(Patron.id == subject_id).first()
        if patron is None:
            raise NotFound("patron_not_found", card_number="")
        await ReadingHistoryChoice.insert(ReadingHistoryChoice(patron=subject_id, keep_history=keep)).on_conflict(
            target=ReadingHistoryChoice.patron, action="DO UPDATE",
            values=[ReadingHistoryChoice.keep_history, ReadingHistoryChoice.updated_at])
        await audit.record(principal.audit_name, "reading_history.keep" if keep else "reading_history.forget",
                           f"patron:{patron['uuid']}")
        return keep

    return await run_in_write_transaction(work)


async def keeps_history(patron_id: int) -> bool:
    choice = await ReadingHistoryChoice.select(ReadingHistoryChoice.keep_history).where(
        ReadingHistoryChoice.patron == patron_id).first()
    return bool(choice and choice["keep_history"])


# --- closing an account ---------------------------------------------------------------------


async def request_closure(principal: Principal, subject_id: int, note: str, now: dt.datetime,
                          today: dt.date) -> None:
    """The reader (or guardian) asks; staff complete it at the desk when the books are back."""
    await _managed(principal, subject_id, today)
    if len(note or "") > 500:
        raise InvalidInput("too_long", field="note", limit=500)

    async def work() -> None:
        card = (await Patron.select(Patron.card_number).where(Patron.id == subject_id).first())["card_number"]
        await AccountClosure.insert(AccountClosure(card_number=card, requested_at=now,
                                                   requested_by=principal.audit_name, note=(note or "").strip())
                                    ).on_conflict(target=AccountClosure.card_number, action="DO NOTHING")
        await audit.record(principal.audit_name, "patron.closure_requested", f"patron:{card}")

    await run_in_write_transaction(work)


async def closure_requests(principal: Principal) -> list[dict[str, Any]]:
    """Open requests, for staff (oldest first)."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    rows = await AccountClosure.select(AccountClosure.card_number, AccountClosure.requested_at,
                                       AccountClosure.note).where(
        AccountClosure.completed_at.is_null()).order_by(AccountClosure.requested_at)
    names = {row["card_number"]: row["name"] for row in await Patron.select(Patron.card_number, Patron.name).where(
        Patron.card_number.is_in([r["card_number"] for r in rows] or [""]))}
    return [{**row, "name": names.get(row["card_number"], "")} for row in rows]


async def complete_closure(principal: Principal, card_number: str, now: dt.datetime) -> None:
    """Staff close an account at the desk: refused while books are out; then the reader's row
    and everything that names them goes (holds, registrations, logs, notices, choices, links),
    loans lose their reader; kept: the closure record (card number, who and when)."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    card = normalise_card_number(card_number)

    async def work() -> None:
        reader = await Patron.select(Patron.id, Patron.home_branch).where(Patron.card_number == card).first()
        if reader is None:
            raise NotFound("patron_not_found", card_number=card)
        if not principal.works_for(reader["home_branch"]):
            raise NotPermitted("not_your_branch", code=card)
        open_loans = await Loan.count().where((Loan.patron == reader["id"]) & Loan.returned_at.is_null())
        problem = rules.closure_problem(open_loans)
        if problem:
            raise Conflict(problem, count=open_loans)
        subject = reader["id"]
        await Loan.update({Loan.patron: None}).where(Loan.patron == subject)
        await Notice.delete().where(Notice.patron == subject)
        await Registration.update({Registration.registered_by: None}).where(Registration.registered_by == subject)
        await GuardianLink.delete().where((GuardianLink.guardian == subject) | (GuardianLink.child == subject))
        # Holds, registrations, reading logs, participation, choices and PIN records go with the
        # row (their foreign keys cascade).
        await Patron.delete().where(Patron.id == subject)
        closed = await AccountClosure.update({AccountClosure.completed_at: now,
                                              AccountClosure.completed_by: principal.audit_name}).where(
            AccountClosure.card_number == card).returning(AccountClosure.id)
        if not closed:
            await AccountClosure.insert(AccountClosure(card_number=card, requested_at=now,
                                                       requested_by=principal.audit_name, completed_at=now,
                                                       completed_by=principal.audit_name))
        await audit.record(principal.audit_name, "patron.closed", f"card:{card}")

    await run_in_write_transaction(work)
