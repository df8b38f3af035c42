"""The library system's side of SIP2 (the "ACS"): one answer for each message a machine sends.

Every decision is the loans services': a checkout is `loans.checkout`, a return
`loans.checkin`, and so on, each in its own transaction. This module reads the request,
asks, and writes the answer in SIP2's fields, with screen messages in the reader's language.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

from library.accounts.service import sign_in_patron
from library.errors import CirculationRefused, DomainError, InvalidInput, NotFound, SignInRefused, \
    TooManyAttempts, reason_views
from library.i18n import current_language, format_date, localized
from library.loans import service as loans
from library.selfcheck import rules, service
from library.selfcheck.messages import screen
from library.selfcheck.protocol import Message, count, flag, sip_datetime, sip_due_date
from library.selfcheck.service import KioskAccount

log = logging.getLogger("library.selfcheck")

# SIP2 media type of every copy here: 001, a book (picture books included).
MEDIA_BOOK = "001"
# Security marker: 00, "other" (RFID tags; 02 and 03 are 3M's magnetic strips).
SECURITY_MARKER = "00"
# How long a reader's language is taken as read (a change of it shows at the next visit).
LANGUAGE_KEPT_SECONDS = 60.0


@dataclass
class Reply:
    """An answer before it is encoded: its code, fixed fields and variable fields, in order."""

    code: str
    fixed: list[str]
    fields: list[tuple[str, object]] = field(default_factory=list)
    # A bug or the database gone, answered as a refusal: counted as an error on the staff home.
    failed: bool = False


@dataclass
class Session:
    """One machine's connection: who logged in, and whose PIN was checked already."""

    address: str
    time_zone: str
    signin_limit: int
    kiosk: KioskAccount | None = None
    # card number -> a keyed digest of the PIN verified for it (a slow hash is not repeated per book)
    verified: dict[str, bytes] = field(default_factory=dict)
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    # card number -> (the language of the reader's screen messages, when it was read): a reader
    # lends a pile of books in a row; their language is read once, not for every book.
    languages: dict[str, tuple[str | None, float]] = field(default_factory=dict)

    def knows_language(self, card: str) -> bool:
        known = self.languages.get(card)
        return known is not None and time.monotonic() - known[1] < LANGUAGE_KEPT_SECONDS

    def remember_language(self, card: str, language: str | None) -> None:
        if len(self.languages) >= 64:  # one machine serves a few readers at a time
            self.languages.clear()
        self.languages[card] = (language, time.monotonic())

    async def reader_language(self, card: str) -> str | None:
        if not self.knows_language(card):
            assert self.kiosk is not None
            self.remember_language(card, (await service.kiosk_state(self.kiosk.id, card)).reader_language)
        return self.languages[card][0]

    def digest(self, pin: str) -> bytes:
        return hmac.new(self.key, pin.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    @property
    def encoding(self) -> str:
        return self.kiosk.encoding if self.kiosk else "utf-8"


@contextmanager
def speaking(language: str | None):
    token = current_language.set(language or "zh_CN")
    try:
        yield
    finally:
        current_language.reset(token)


def _screen_messages(error: Exception) -> list[tuple[str, object]]:
    """Every reason of a refusal as its own screen message."""
    if isinstance(error, CirculationRefused):
        return [("AF", reason["message"]) for reason in error.reasons()]
    if isinstance(error, DomainError):
        return [("AF", error.message())]
    return [("AF", screen("system_error"))]


class Desk:
    """The answers, for one connection's session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.handlers: dict[str, Callable[[Message, dt.datetime], Awaitable[Reply]]] = {
            "99": self.status, "23": self.patron_status, "63": self.patron_information, "11": self.checkout,
            "09": self.checkin, "29": self.renew, "65": self.renew_all, "17": self.item_information,
            "15": self.hold, "35": self.end_session,
        }

    @property
    def kiosk(self) -> KioskAccount:
        assert self.session.kiosk is not None
        return self.session.kiosk

    def date(self, now: dt.datetime) -> str:
        return sip_datetime(now, self.session.time_zone)

    # --- the way in ---------------------------------------------------------------------

    async def still_enabled(self, message: Message | None) -> bool:
        """Whether the logged-in kiosk may still talk (disabling one cuts it off at its next
        message). The same read brings the language of the reader `message` names, when this
        connection does not know it yet: a reader's first book costs no read of its own."""
        card = message.get("AA") if message is not None and message.code in rules.NAMES_READER else ""
        asked = card if card and not self.session.knows_language(card) else None
        state = await service.kiosk_state(self.kiosk.id, asked)
        if asked is not None:
            self.session.remember_language(asked, state.reader_language)
        return state.enabled

    async def answer(self, message: Message, now: dt.datetime) -> Reply:
        """The answer to one message; a refusal is an answer too, never an exception."""
        try:
            return await self._answer(message, now)
        except Exception:  # noqa: BLE001 - a bug (or the database gone) answers as a refusal
            log.exception("SIP2 %s from %s failed", message.code, self.session.address)
            with speaking(self.session.kiosk.language if self.session.kiosk else None):
                if message.code == "93":
                    return Reply("94", ["0"], failed=True)
                reply = self.refusal(message, now, [("AF", screen("system_error"))])
                reply.failed = True
                return reply

    async def _answer(self, message: Message, now: dt.datetime) -> Reply:
        if message.code == "93":
            return await self.login(message, now)
        if self.session.kiosk is None:
            with speaking(None):
                return self.refusal(message, now, [("AF", screen("not_logged_in"))])
        card = message.get("AA")
        names_reader = bool(card) and message.code in rules.NAMES_READER
        reader_language = await self.session.reader_language(card) if names_reader else None
        language = rules.screen_language(reader_language, message.fixed.get("language"), self.kiosk.language)
        with speaking(language):
            if not rules.may_send(message.code, self.kiosk.allowed):
                log.info("kiosk %s sent %s, which it may not", self.kiosk.login, message.code)
                return self.refusal(message, now, [("AF", screen("not_allowed"))])
            try:
                return await self.handlers[message.code](message, now)
            except DomainError as error:
                return self.refusal(message, now, _screen_messages(error))

    async def login(self, message: Message, now: dt.datetime) -> Reply:
        try:
            self.session.kiosk = await service.sign_in_kiosk(message.get("CN"), message.get("CO"),
                                                             self.session.address, now, self.session.signin_limit)
        except (SignInRefused, TooManyAttempts):
            self.session.kiosk = None
            return Reply("94", ["0"])
        self.session.verified.clear()
        return Reply("94", ["1"])

    async def reader_verified(self, message: Message, now: dt.datetime) -> bool | None:
        """Whether the PIN sent (AD) is the reader's: True, False, or None when none was sent.

        Checked through the readers' own sign-in, so guesses at a machine are throttled and
        counted like guesses on the web.
        """
        card, pin = message.get("AA"), message.get("AD")
        if not message.has("AD") or not pin:
            return None
        known = self.session.verified.get(card)
        if known is not None and hmac.compare_digest(known, self.session.digest(pin)):
            return True
        try:
            await sign_in_patron(card, pin, f"kiosk:{self.kiosk.login}@{self.session.address}", now,
                                 self.session.signin_limit)
        except SignInRefused:
            return False
        self.session.verified[card] = self.session.digest(pin)
        return True

    async def require_reader(self, message: Message, now: dt.datetime) -> str:
        """The card of a reader acting at the machine, their PIN checked where the kiosk asks for it."""
        card = message.get("AA").strip()
        if not card:
            raise InvalidInput("required", field="card_number")
        verified = await self.reader_verified(message, now)
        if verified is False:
            raise SignInRefused("bad_credentials")
        if verified is None and self.kiosk.patron_pin_required:
            raise PinRequired()
        return card

    # --- refusals, shaped as each message's answer ----------------------------------------

    def refusal(self, message: Message, now: dt.datetime, messages: list[tuple[str, object]]) -> Reply:
        """The negative answer to any message, with its required fields (empty where unknown)."""
        date = self.date(now)
        institution = ("AO", self.session.kiosk.branch_code if self.session.kiosk else message.get("AO"))
        card, barcode = ("AA", message.get("AA")), ("AB", message.get("AB"))
        language = rules.sip_language(current_language.get())
        code = message.code
        if code == "99":
            return Reply("98", ["N", "N", "N", "N", "N", "N", "000", "000", date, "2.00"],
                         [institution, ("BX", "N" * 16), *messages])
        if code == "23":
            return Reply("24", [rules.patron_status({"card_blocked"}), language, date],
                         [institution, card, ("AE", ""), ("BL", "N"), *messages])
        if code == "63":
            return Reply("64", [rules.patron_status({"card_blocked"}), language, date, *["0000"] * 6],
                         [institution, card, ("AE", ""), ("BL", "N"), *messages])
        if code in ("11", "29"):
            return Reply("12" if code == "11" else "30", ["0", "N", "U", "N", date],
                         [institution, card, barcode, ("AJ", ""), ("AH", ""), *messages])
        if code == "09":
            return Reply("10", ["0", "N", "U", "Y", date], [institution, barcode, ("AQ", ""), *messages])
        if code == "65":
            return Reply("66", ["0", "0000", "0000", date], [institution, *messages])
        if code == "17":
            return Reply("18", [rules.OTHER_STATUS, SECURITY_MARKER, "01", date], [barcode, ("AJ", ""), *messages])
        if code == "15":
            return Reply("16", ["0", "N", date], [institution, card, *messages])
        if code == "35":
            return Reply("36", ["N", date], [institution, card, *messages])
        raise ValueError(f"no refusal for message {code}")

    # --- the messages -----------------------------------------------------------------

    async def status(self, message: Message, now: dt.datetime) -> Reply:
        allowed = self.kiosk.allowed
        name = localized(self.kiosk.branch_name_zh, self.kiosk.branch_name_en)
        return Reply("98", ["Y", flag("09" in allowed), flag("11" in allowed), flag("29" in allowed), "N", "N",
                            "030", "003", self.date(now), "2.00"],
                     [("AO", self.kiosk.branch_code), ("AM", name), ("BX", rules.supported_messages(allowed)),
                      ("AN", self.kiosk.location_code)])

    async def _standing(self, message: Message, now: dt.datetime):
        card = message.get("AA").strip()
        if not card:
            raise InvalidInput("required", field="card_number")
        verified = await self.reader_verified(message, now)
        standing = await loans.reader_standing(self.kiosk.principal(), self.kiosk.branch_code, card, now)
        # Without the PIN the kiosk asks for, the machine learns only that the card exists.
        hidden = verified is not True and self.kiosk.patron_pin_required
        return card, verified, standing, hidden

    def _patron_fields(self, card: str, standing: dict, hidden: bool) -> list[tuple[str, object]]:
        return [("AO", self.kiosk.branch_code), ("AA", card), ("AE", "" if hidden else standing["name"])]

    def _reason_messages(self, refusals) -> list[tuple[str, object]]:
        return [("AF", reason["message"]) for reason in reason_views(refusals)]

    async def patron_status(self, message: Message, now: dt.datetime) -> Reply:
        card, verified, standing, hidden = await self._standing(message, now)
        status = rules.patron_status(r.code for r in standing["refusals"])
        fields = self._patron_fields(card, standing, hidden)
        fields += [("BL", "Y"), ("CQ", None if verified is None else flag(verified))]
        fields += self._reason_messages(standing["refusals"])
        return Reply("24", [status, rules.sip_language(current_language.get()), self.date(now)], fields)

    async def patron_information(self, message: Message, now: dt.datetime) -> Reply:
        card, verified, standing, hidden = await self._standing(message, now)
        loans_out = standing["loans"]
        overdue = [loan for loan in loans_out if loan["overdue_days"] > 0]
        ready = [hold for hold in standing["holds"] if hold["status"] == "ready"]
        waiting = [hold for hold in standing["holds"] if hold["status"] != "ready"]
        status = rules.patron_status(r.code for r in standing["refusals"])
        fixed = [status, rules.sip_language(current_language.get()), self.date(now), count(len(ready)),
                 count(len(overdue)), count(len(loans_out)), "0000", "0000", count(len(waiting))]
        fields = self._patron_fields(card, standing, hidden)
        fields += [("CB", count(standing["max_loans"])), ("BL", "Y"),
                   ("CQ", None if verified is None else flag(verified))]
        if not hidden:
            # The summary asks for one list: hold items (AS), overdue (AT), charged (AU),
            # fines (AV), recalls (BU) or unavailable holds (CD). There are no fines or recalls.
            summary = (message.fixed.get("summary") or "").ljust(10)
            lists = [("AS", [hold["barcode"] or hold["title"] for hold in ready]),
                     ("AT", [loan["barcode"] for loan in overdue]), ("AU", [loan["barcode"] for loan in loans_out]),
                     ("AV", []), ("BU", []), ("CD", [hold["title"] for hold in waiting])]
            for position, (field_id, values) in enumerate(lists):
                if summary[position] == "Y":
                    first, last = rules.item_range(message.get("BP"), message.get("BQ"), len(values))
                    fields += [(field_id, value) for value in values[first:last]]
                    break
            fields.append(("BE", standing["email"] or None))
        fields += self._reason_messages(standing["refusals"])
        return Reply("64", fixed, fields)

    async def checkout(self, message: Message, now: dt.datetime) -> Reply:
        if message.get("BI") == "Y":
            return self.refusal(message, now, [("AF", screen("cancel_unsupported"))])
        card = await self.require_reader(message, now)
        barcode = message.get("AB")
        lent = await loans.checkout(self.kiosk.principal(), self.kiosk.branch_code, card, barcode, now)
        # Desensitize: the RFID security bit goes off so the gate lets the book through.
        return Reply("12", ["1", "N", "N", "Y", self.date(now)], [
            ("AO", self.kiosk.branch_code), ("AA", card), ("AB", lent.barcode), ("AJ", lent.title),
            ("AH", sip_due_date(lent.due_on)), ("CK", MEDIA_BOOK),
            ("AF", screen("due_back", title=lent.title, day=format_date(lent.due_on))),
        ])

    async def checkin(self, message: Message, now: dt.datetime) -> Reply:
        if message.get("BI") == "Y":
            return self.refusal(message, now, [("AF", screen("cancel_unsupported"))])
        barcode = message.get("AB")
        back = await loans.checkin(self.kiosk.principal(), self.kiosk.branch_code, barcode, now)
        # The permanent location (AQ), the copy's home: here when it is shelved here, where it
        # travels when it goes home; else read.
        home = {"shelve": self.kiosk.branch_code, "transit_home": back.to_branch_code}.get(back.route) or \
            (await loans.copy_state(back.barcode))["home_code"]
        alert_type = rules.checkin_alert(back.route)
        destination = localized(back.to_branch_name_zh, back.to_branch_name_en)
        text = {
            "shelve": screen("returned", title=back.title),
            "transit_home": screen("returned_home", title=back.title, branch=destination),
            "hold_shelf": screen("returned_hold_here", title=back.title),
            "hold_transit": screen("returned_hold_elsewhere", title=back.title, branch=destination),
            "still_in_transit": screen("still_in_transit", branch=destination),
        }[back.route]
        messages = [("AF", text)]
        if back.days_overdue:
            messages.append(("AF", screen("returned_late", days=back.days_overdue)))
        elif not back.was_on_loan and back.route == "shelve":
            messages.append(("AF", NotFound("not_on_loan", barcode=back.barcode).message()))
        # Resensitize: the security bit goes back on, whatever shelf the copy goes to next.
        fields: list[tuple[str, object]] = [
            ("AO", self.kiosk.branch_code), ("AB", back.barcode), ("AQ", home), ("AJ", back.title),
            ("CK", MEDIA_BOOK), ("CV", alert_type),
            ("CT", back.to_branch_code if alert_type in ("02", "04") else None),
            ("CY", back.hold_patron_card or None), ("DA", back.hold_patron_name or None), *messages,
        ]
        return Reply("10", ["1", "Y", "N", flag(alert_type is not None), self.date(now)], fields)

    async def renew(self, message: Message, now: dt.datetime) -> Reply:
        card = await self.require_reader(message, now)
        barcode = message.get("AB")
        if not barcode:
            raise InvalidInput("required", field="barcode")
        principal = self.kiosk.principal()
        [outcome] = await loans.renew(principal, [await loans.open_loan_of(principal, card, barcode)], now)
        fields: list[tuple[str, object]] = [("AO", self.kiosk.branch_code), ("AA", card), ("AB", outcome.barcode),
                                            ("AJ", outcome.title), ("AH", sip_due_date(outcome.due_on)),
                                            ("CK", MEDIA_BOOK)]
        if not outcome.renewed:
            return Reply("30", ["0", "N", "U", "N", self.date(now)],
                         fields + self._reason_messages(outcome.reasons))
        return Reply("30", ["1", "Y", "N", "N", self.date(now)],
                     fields + [("AF", screen("renewed", title=outcome.title, day=format_date(outcome.due_on)))])

    async def renew_all(self, message: Message, now: dt.datetime) -> Reply:
        card = await self.require_reader(message, now)
        outcomes = await loans.renew_all(self.kiosk.principal(), now, card_number=card)
        renewed = [outcome for outcome in outcomes if outcome.renewed]
        unrenewed = [outcome for outcome in outcomes if not outcome.renewed]
        fields: list[tuple[str, object]] = [("AO", self.kiosk.branch_code)]
        fields += [("BM", outcome.barcode) for outcome in renewed]
        fields += [("BN", outcome.barcode) for outcome in unrenewed]
        fields.append(("AF", screen("renewed_all", renewed=len(renewed), unrenewed=len(unrenewed))))
        for outcome in unrenewed:
            fields += [("AF", f"{outcome.title}: {reason['message']}") for reason in reason_views(outcome.reasons)]
        return Reply("66", ["1", count(len(renewed)), count(len(unrenewed)), self.date(now)], fields)

    async def item_information(self, message: Message, now: dt.datetime) -> Reply:
        copy = await loans.copy_state(message.get("AB"))
        fields: list[tuple[str, object]] = [
            ("CF", str(copy["waiting_holds"]).zfill(5)),
            ("AH", sip_due_date(copy["due_back"]) if copy["due_back"] and copy["status"] == "on_loan" else None),
            ("CM", sip_due_date(copy["hold_expires_on"]) if copy["hold_expires_on"] else None),
            ("AB", copy["barcode"]), ("AJ", copy["title"]), ("BG", copy["home_code"]), ("CK", MEDIA_BOOK),
            ("AQ", copy["home_code"]), ("AP", copy["current_code"]),
        ]
        return Reply("18", [rules.circulation_status(copy["status"]), SECURITY_MARKER, "01", self.date(now)], fields)

    async def hold(self, message: Message, now: dt.datetime) -> Reply:
        mode = message.fixed.get("hold_mode")
        if mode not in ("+", "-"):
            return self.refusal(message, now, [("AF", screen("hold_mode_unsupported"))])
        if not message.get("AB"):
            return self.refusal(message, now, [("AF", screen("title_needs_item"))])
        card = await self.require_reader(message, now)
        copy = await loans.copy_state(message.get("AB"))
        principal = self.kiosk.principal()
        base: list[tuple[str, object]] = [("AO", self.kiosk.branch_code), ("AA", card), ("AB", copy["barcode"]),
                                          ("AJ", copy["title"])]
        if mode == "-":
            hold_uuid = await loans.active_hold_of(principal, card, copy["record_uuid"])
            await loans.cancel_hold(principal, hold_uuid, now)
            return Reply("16", ["1", "N", self.date(now)],
                         base + [("AF", screen("hold_cancelled", title=copy["title"]))])
        pickup = (message.get("BS") or self.kiosk.branch_code).strip().upper()
        placed = await loans.place_hold(principal, copy["record_uuid"], pickup, now, card_number=card)
        pickup_name = (localized(self.kiosk.branch_name_zh, self.kiosk.branch_name_en)
                       if placed["pickup_branch"] == self.kiosk.branch_code else placed["pickup_branch"])
        return Reply("16", ["1", flag(copy["status"] == "available"), self.date(now)], [
            ("BR", str(placed["position"])), ("BS", placed["pickup_branch"]), *base,
            ("AF", screen("hold_placed", title=placed["title"], position=placed["position"],
                          branch=pickup_name)),
        ])

    async def end_session(self, message: Message, now: dt.datetime) -> Reply:
        card = message.get("AA")
        self.session.verified.pop(card, None)
        return Reply("36", ["Y", self.date(now)], [("AO", self.kiosk.branch_code), ("AA", card),
                                                     ("AF", screen("goodbye"))])


class PinRequired(SignInRefused):
    """The kiosk asks readers for their PIN, and none came."""

    def __init__(self) -> None:
        super().__init__("bad_credentials")

    def message(self) -> str:
        return screen("pin_required")
