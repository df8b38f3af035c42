"""Self-check decisions that are about the machine, not circulation. Pure.

Whether a reader may borrow, renew or hold is the loans rules' answer; here it is only
translated into SIP2's words: the fourteen patron-status flags, circulation-status codes,
where a returned copy goes as an alert type, which messages a kiosk may send.
"""

from __future__ import annotations

from collections.abc import Iterable

# Request codes a kiosk account may be allowed, in the order of the "supported messages" field.
OPTIONAL_MESSAGES = ("23", "63", "11", "09", "29", "65", "17", "15")
# Always allowed to a logged-in kiosk: status, resend, end of a reader's session.
ALWAYS_ALLOWED = frozenset({"93", "99", "97", "35"})
# Messages that name a reader (AA): their screen messages are in that reader's language.
NAMES_READER = frozenset({"23", "63", "11", "29", "65", "15", "35"})

MESSAGE_NAMES = {
    "93": "login", "99": "status", "23": "patron status", "63": "patron information", "11": "checkout",
    "09": "checkin", "29": "renew", "65": "renew all", "17": "item information", "15": "hold",
    "35": "end patron session", "97": "resend",
}

# Positions of the 14 patron-status flags (space = no, Y = yes).
CHARGE_DENIED, RENEWAL_DENIED, RECALL_DENIED, HOLD_DENIED, CARD_LOST, TOO_MANY_CHARGED = 0, 1, 2, 3, 4, 5
# Reasons from the loans rules that stop a reader borrowing, renewing and holding alike.
CARD_REASONS = frozenset({"card_blocked", "card_expired"})

# Positions of the 16 "supported messages" flags of the ACS status (98) and the request each means.
SUPPORTED_POSITIONS = ("23", "11", "09", "01", "99", "97", "93", "63", "35", "37", "17", "19", "25", "15",
                       "29", "65")

CIRCULATION_STATUS = {
    "available": "03", "on_loan": "04", "in_processing": "06", "on_hold_shelf": "08", "in_transit": "10",
    "lost": "12", "missing": "13",
}
OTHER_STATUS = "01"

# Alert types of the checkin answer (CV): 01 hold here, 02 hold elsewhere, 04 send to another branch.
CHECKIN_ALERT = {
    "shelve": None, "hold_shelf": "01", "hold_transit": "02", "transit_home": "04", "still_in_transit": "04",
}

SIP_LANGUAGE = {"zh_CN": "019", "en": "001"}
# SIP2 language codes read as our languages: English, UK English; Chinese, Taiwanese.
LANGUAGE_OF_CODE = {"001": "en", "024": "en", "019": "zh_CN", "027": "zh_CN"}


def parse_allowed(text: str | None) -> frozenset[str]:
    """The request codes of a kiosk's `allowed_messages` (empty: every optional message)."""
    codes = {code.strip() for code in (text or "").split(",") if code.strip()}
    return frozenset(codes) if codes else frozenset(OPTIONAL_MESSAGES)


def allowed_problem(codes: Iterable[str]) -> str | None:
    """Why a list of request codes cannot be a kiosk's, or None."""
    unknown = sorted(set(codes) - set(OPTIONAL_MESSAGES))
    return f"unknown message codes: {', '.join(unknown)} (choose from {', '.join(OPTIONAL_MESSAGES)})" \
        if unknown else None


def may_send(code: str, allowed: frozenset[str]) -> bool:
    return code in ALWAYS_ALLOWED or code in allowed


def supported_messages(allowed: frozenset[str]) -> str:
    """The 16 Y/N flags of the ACS status answer for this kiosk."""
    return "".join("Y" if may_send(code, allowed) and code in ALWAYS_ALLOWED | set(OPTIONAL_MESSAGES) else "N"
                   for code in SUPPORTED_POSITIONS)


def patron_status(refusal_codes: Iterable[str]) -> str:
    """The 14 patron-status flags from the reasons the loans rules gave for this reader."""
    codes = set(refusal_codes)
    flags = [" "] * 14
    if codes & CARD_REASONS:
        for position in (CHARGE_DENIED, RENEWAL_DENIED, RECALL_DENIED, HOLD_DENIED):
            flags[position] = "Y"
    if "loan_limit" in codes:
        flags[CHARGE_DENIED] = flags[TOO_MANY_CHARGED] = "Y"
    return "".join(flags)


def circulation_status(item_status: str) -> str:
    return CIRCULATION_STATUS.get(item_status, OTHER_STATUS)


def checkin_alert(route: str) -> str | None:
    """The alert type of a returned copy's way onward, or None when it goes on the shelf here."""
    return CHECKIN_ALERT.get(route, "99")


def sip_language(language: str) -> str:
    return SIP_LANGUAGE.get(language, "000")


def language_of(sip_code: str | None) -> str | None:
    return LANGUAGE_OF_CODE.get((sip_code or "").strip())


def screen_language(reader_language: str | None, asked_code: str | None, kiosk_language: str) -> str:
    """The language of a message's screen text: the reader's card first, then the language the
    machine asked for (23, 63), then the kiosk's own."""
    return reader_language or language_of(asked_code) or kiosk_language


def item_range(start: str, end: str, total: int, default_count: int = 50) -> tuple[int, int]:
    """The 0-based slice of a list the machine asked for with BP/BQ (1-based, inclusive).

    Missing or unreadable numbers mean from the first, at most `default_count` items.
    """
    try:
        first = max(1, int(start))
    except ValueError:
        first = 1
    try:
        last = int(end)
    except ValueError:
        last = first + default_count - 1
    last = min(max(last, first), total, first + default_count - 1)
    return first - 1, last


def outcome_counts(answer_code: str, fixed: list[str], failed: bool) -> list[tuple[str, int]]:
    """What one SIP2 answer adds to its machine's day (library.selfcheck.activity): a checkout,
    a return, renewals, refusals, or an error (a bug, the database away)."""
    if failed:
        return [("error", 1)]
    ok = bool(fixed) and fixed[0] == "1"
    done = {"12": "checkout", "10": "checkin", "30": "renewal"}.get(answer_code)
    if done:
        return [(done if ok else "refusal", 1)]
    if answer_code == "66":
        if not ok:
            return [("refusal", 1)]
        return [(kind, int(number)) for kind, number in (("renewal", fixed[1]), ("refusal", fixed[2]))
                if number.isdigit() and int(number)]
    return []
