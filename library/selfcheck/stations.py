"""The self-check page's stations (tablets by the door) and what a reader does there.

A station is bound to one branch by a token that staff issue from the tablet itself; the
tablet keeps the token in an HttpOnly cookie and this node keeps only its SHA-256. At the
station the page acts as the SIP2 kiosks do: a member of staff of its one branch that never
overrides a refusal, so every decision is `library.loans.service`'s; loans made there are
recorded as made by `staff:<station uuid>`. A reader's PIN is checked by the readers' own
sign-in, throttled like any other.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import uuid as uuid_module
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from library import audit
from library.accounts.principal import Principal
from library.accounts.service import normalise_card_number, sign_in_patron
from library.accounts.tables import Patron
from library.branches.tables import Branch
from library.db import run_in_write_transaction
from library.errors import CirculationRefused, DomainError, InvalidInput, NotFound, NotPermitted
from library.i18n import N_, current_language, format_date, translations
from library.loans import service as loans
from library.notices.messages import SIGNATURE
from library.notices.tables import Notice
from library.selfcheck import activity
from library.selfcheck.tables import SelfCheckStation

log = logging.getLogger("library.selfcheck")

NAME_LIMIT = 64


@dataclass(frozen=True)
class Station:
    id: int
    uuid: str
    name: str
    branch_id: int
    branch_code: str
    branch_name_zh: str
    branch_name_en: str

    def principal(self) -> Principal:
        """The page as the loans services see it: staff of its one branch, never overriding."""
        return Principal(kind="staff", id=0, uuid=self.uuid, name=f"selfcheck:{self.name}", language="zh_CN",
                         role="kiosk", branch_ids=frozenset({self.branch_id}))


def token_digest(token: str) -> str:
    """What is stored of a token: 256 random bits need no slow hash, only not to be kept as they are."""
    return hashlib.sha256(("selfcheck-station:" + token).encode("utf-8", "surrogatepass")).hexdigest()


# --- issuing and revoking (staff) -----------------------------------------------------------


async def issue_station(principal: Principal, branch_code: str, name: str) -> tuple[str, str]:
    """A new station at a branch the member of staff works for: its uuid and the token for the tablet."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    name = " ".join((name or "").split())
    if not name:
        raise InvalidInput("required", field="name")
    if len(name) > NAME_LIMIT:
        raise InvalidInput("too_long", field="name", limit=NAME_LIMIT)
    code = (branch_code or "").strip().upper()
    branch = await Branch.select(Branch.id, Branch.code).where(Branch.code == code).first()
    if branch is None:
        raise NotFound("branch_not_found", field="branch", code=code)
    if not principal.works_for(branch["id"]):
        raise NotPermitted("not_your_branch", code=code)
    token = secrets.token_urlsafe(32)
    station_uuid = str(uuid_module.uuid4())

    async def work() -> None:
        await SelfCheckStation.insert(SelfCheckStation(uuid=station_uuid, name=name, branch=branch["id"],
                                                       token_hash=token_digest(token),
                                                       issued_by=principal.audit_name))
        await audit.record(principal.audit_name, "selfcheck_station.issued", f"station:{station_uuid}",
                           branch=branch["code"], name=name)

    await run_in_write_transaction(work)
    return station_uuid, token


async def revoke_station(principal: Principal, station_uuid: str, now: dt.datetime) -> None:
    """The tablet stops at its next tap; a station of another branch is not this member of staff's."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    try:
        station_uuid = str(uuid_module.UUID(str(station_uuid)))
    except ValueError:
        raise NotFound("station_not_found") from None

    async def work() -> None:
        row = await SelfCheckStation.select(SelfCheckStation.id, SelfCheckStation.branch,
                                            SelfCheckStation.branch.code).where(
            SelfCheckStation.uuid == station_uuid).first()
        if row is None or not principal.works_for(row["branch"]):
            raise NotFound("station_not_found")
        await SelfCheckStation.update({SelfCheckStation.revoked_at: now,
                                       SelfCheckStation.revoked_by: principal.audit_name}).where(
            (SelfCheckStation.id == row["id"]) & SelfCheckStation.revoked_at.is_null())
        await audit.record(principal.audit_name, "selfcheck_station.revoked", f"station:{station_uuid}",
                           branch=row["branch.code"])

    await run_in_write_transaction(work)


async def stations_for(principal: Principal) -> list[dict[str, Any]]:
    """The stations of the branches this member of staff works for, in use first."""
    if not principal.is_staff:
        raise NotPermitted("staff_only")
    rows = await SelfCheckStation.select(
        SelfCheckStation.uuid, SelfCheckStation.name, SelfCheckStation.branch, SelfCheckStation.branch.code,
        SelfCheckStation.issued_at, SelfCheckStation.issued_by, SelfCheckStation.revoked_at,
    ).order_by(SelfCheckStation.issued_at, ascending=False)
    mine = [{**row, "uuid": str(row["uuid"])} for row in rows if principal.works_for(row["branch"])]
    return sorted(mine, key=lambda row: row["revoked_at"] is not None)


async def station_by_token(token: str | None) -> Station | None:
    """The station a tablet's token names; None for no token, a wrong one, or a revoked station."""
    if not token or len(token) > 200:
        return None
    row = await SelfCheckStation.select(
        SelfCheckStation.id, SelfCheckStation.uuid, SelfCheckStation.name, SelfCheckStation.token_hash,
        SelfCheckStation.branch, SelfCheckStation.branch.code, SelfCheckStation.branch.name_zh,
        SelfCheckStation.branch.name_en,
    ).where((SelfCheckStation.token_hash == token_digest(token)) & SelfCheckStation.revoked_at.is_null()).first()
    if row is None or not hmac.compare_digest(row["token_hash"], token_digest(token)):
        return None
    return Station(id=row["id"], uuid=str(row["uuid"]), name=row["name"], branch_id=row["branch"],
                   branch_code=row["branch.code"], branch_name_zh=row["branch.name_zh"],
                   branch_name_en=row["branch.name_en"])


# --- a reader at the station ----------------------------------------------------------------


async def _counted(station: Station, kind: str, now: dt.datetime, time_zone: str, number: int = 1) -> None:
    """Count for the staff home; a count that cannot be written never undoes what the reader did."""
    try:
        await activity.count(station.uuid, station.branch_id, kind, now, time_zone, number)
    except Exception:  # noqa: BLE001 - the loan stands; only the day's figure is short
        log.exception("self-check tally of station %s not written", station.name)


async def sign_in_reader(station: Station, card_number: str, pin: str, address: str, now: dt.datetime,
                         limit: int) -> dict[str, Any]:
    """The reader's card and PIN, checked by the readers' own sign-in (throttled per card and
    per address); their standing at the station's branch."""
    card = normalise_card_number(card_number)
    if not card:
        raise InvalidInput("required", field="card_number")
    await sign_in_patron(card, pin, address, now, limit)
    return await standing(station, card, now)


async def standing(station: Station, card_number: str, now: dt.datetime) -> dict[str, Any]:
    """The reader's name, loans and the reasons they may not borrow here today (the loans rules')."""
    return await loans.reader_standing(station.principal(), station.branch_code, card_number, now)


@dataclass(frozen=True)
class Scanned:
    """One book scanned to borrow: lent (with its due date), or refused with every reason."""

    barcode: str
    title: str
    due_on: dt.date | None
    reasons: tuple[dict[str, Any], ...] = ()


async def lend(station: Station, card_number: str, barcode: str, now: dt.datetime, time_zone: str) -> Scanned:
    """`loans.checkout` at the station's branch. A refusal is an outcome (counted), with the
    copy's title when the barcode is one of ours, so the reader sees which book it was."""
    barcode = loans.normalise_barcode(barcode)
    if not barcode:
        raise InvalidInput("required", field="barcode")
    try:
        lent = await loans.checkout(station.principal(), station.branch_code, card_number, barcode, now)
    except DomainError as error:
        await _counted(station, "refusal", now, time_zone)
        try:
            title = (await loans.copy_state(barcode))["title"]
        except NotFound:
            title = ""
        return Scanned(barcode, title, None, tuple(refusal_codes(error)))
    except Exception:
        await _counted(station, "error", now, time_zone)
        raise
    await _counted(station, "checkout", now, time_zone)
    return Scanned(lent.barcode, lent.title, lent.due_on)


async def renew(station: Station, card_number: str, barcode: str | None, now: dt.datetime,
                time_zone: str) -> list[loans.RenewalOutcome]:
    """Renew one of the reader's loans (by the copy's barcode), or all of them (`barcode` None)."""
    principal = station.principal()
    try:
        if barcode is None:
            outcomes = await loans.renew_all(principal, now, card_number=card_number)
        else:
            outcomes = await loans.renew(principal, [await loans.open_loan_of(principal, card_number, barcode)], now)
    except DomainError:
        await _counted(station, "refusal", now, time_zone)
        raise
    renewed = sum(1 for outcome in outcomes if outcome.renewed)
    await _counted(station, "renewal", now, time_zone, renewed)
    await _counted(station, "refusal", now, time_zone, len(outcomes) - renewed)
    return outcomes


def refusal_codes(error: DomainError) -> list[dict[str, Any]]:
    """A refusal's reasons as plain values (codes and parameters), to be shown later in any language."""
    if isinstance(error, CirculationRefused):
        reasons = [(refusal.code, refusal.params) for refusal in error.refusals]
    else:
        reasons = [(error.code, error.params)]
    return [{"code": code, "params": {key: _plain(value) for key, value in params.items()}}
            for code, params in reasons]


def _plain(value: Any) -> Any:
    """Parameters as JSON has them (they are kept in the visit's session cookie)."""
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


RECEIPT_SUBJECT = N_("Your self-check receipt, {branch}")
RECEIPT_INTRO = N_("Dear {name},\n\nthe books you borrowed or renewed at {branch} on {day}:")
RECEIPT_LINE = N_("- {title} ({barcode}): please return it by {due}")
RECEIPT_END = N_("You can return them at any branch of the network, and renew them in My account.\n\n{library}")


async def send_receipt(station: Station, card_number: str, visit: str, lines: list[dict[str, Any]],
                       now: dt.datetime, time_zone: str) -> bool:
    """The visit's receipt as a notice in the outbox, in the reader's language, once per visit.

    False when the reader has no e-mail address (or it was sent already): the printed receipt
    and My account still show everything.
    """
    patron = await Patron.select(Patron.id, Patron.name, Patron.email, Patron.language).where(
        Patron.card_number == normalise_card_number(card_number)).first()
    if patron is None or not patron["email"] or not lines:
        return False
    language = patron["language"] or "zh_CN"
    catalog = translations(language)
    token = current_language.set(language)  # dates in the reader's language too
    try:
        branch = station.branch_name_en if language == "en" else station.branch_name_zh
        day = format_date(now.astimezone(ZoneInfo(time_zone)).date())
        body = [catalog.gettext(RECEIPT_INTRO).format(name=patron["name"], branch=branch, day=day)]
        body += [catalog.gettext(RECEIPT_LINE).format(title=line["title"], barcode=line["barcode"],
                                                      due=format_date(dt.date.fromisoformat(line["due"])))
                 for line in lines]
        body.append("\n" + catalog.gettext(RECEIPT_END).format(library=catalog.gettext(SIGNATURE)))
        subject = catalog.gettext(RECEIPT_SUBJECT).format(branch=branch)
    finally:
        current_language.reset(token)

    async def work() -> bool:
        inserted = await Notice.insert(Notice(
            uuid=str(uuid_module.uuid4()), key=f"selfcheck_receipt:{visit}"[:200], patron=patron["id"],
            kind="selfcheck_receipt", language=language, to_address=patron["email"], subject=subject[:300],
            body="\n".join(body), created_at=now, send_after=now,
        )).on_conflict(target=Notice.key, action="DO NOTHING").returning(Notice.id)
        return bool(inserted)

    return await run_in_write_transaction(work)
