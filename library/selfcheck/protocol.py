"""SIP2 (3M Standard Interchange Protocol 2.00) messages: parse and format. Pure, no sockets.

A message is a two-digit code, fixed-length fields in the positions the specification
gives, then variable fields (a two-letter id, the value, `|`), and — when the machine uses
error detection — `AY` with a one-digit sequence number and `AZ` with a checksum, ended by
a carriage return. The checksum is the two's complement of the sum of the message's bytes
up to and including `AZ`, as four upper-case hex digits.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

TERMINATOR = b"\r"
SEPARATOR = "|"
# The specification's variable fields hold at most 255 characters.
FIELD_LIMIT = 255
BLANK_DATE = " " * 18

# Fixed fields of every message this server reads or writes: (name, length), in order.
FIXED: dict[str, tuple[tuple[str, int], ...]] = {
    # requests from the self-check machine (SC)
    "93": (("uid_algorithm", 1), ("pwd_algorithm", 1)),
    "99": (("status_code", 1), ("max_print_width", 3), ("protocol_version", 4)),
    "23": (("language", 3), ("transaction_date", 18)),
    "63": (("language", 3), ("transaction_date", 18), ("summary", 10)),
    "11": (("renewal_policy", 1), ("no_block", 1), ("transaction_date", 18), ("nb_due_date", 18)),
    "09": (("no_block", 1), ("transaction_date", 18), ("return_date", 18)),
    "29": (("third_party_allowed", 1), ("no_block", 1), ("transaction_date", 18), ("nb_due_date", 18)),
    "65": (("transaction_date", 18),),
    "17": (("transaction_date", 18),),
    "15": (("hold_mode", 1), ("transaction_date", 18)),
    "35": (("transaction_date", 18),),
    "97": (),
    # answers of the library system (ACS)
    "94": (("ok", 1),),
    "98": (("online_status", 1), ("checkin_ok", 1), ("checkout_ok", 1), ("renewal_policy", 1),
           ("status_update_ok", 1), ("offline_ok", 1), ("timeout_period", 3), ("retries_allowed", 3),
           ("date_time_sync", 18), ("protocol_version", 4)),
    "24": (("patron_status", 14), ("language", 3), ("transaction_date", 18)),
    "64": (("patron_status", 14), ("language", 3), ("transaction_date", 18), ("hold_items_count", 4),
           ("overdue_items_count", 4), ("charged_items_count", 4), ("fine_items_count", 4),
           ("recall_items_count", 4), ("unavailable_holds_count", 4)),
    "12": (("ok", 1), ("renewal_ok", 1), ("magnetic_media", 1), ("desensitize", 1), ("transaction_date", 18)),
    "10": (("ok", 1), ("resensitize", 1), ("magnetic_media", 1), ("alert", 1), ("transaction_date", 18)),
    "30": (("ok", 1), ("renewal_ok", 1), ("magnetic_media", 1), ("desensitize", 1), ("transaction_date", 18)),
    "66": (("ok", 1), ("renewed_count", 4), ("unrenewed_count", 4), ("transaction_date", 18)),
    "18": (("circulation_status", 2), ("security_marker", 2), ("fee_type", 2), ("transaction_date", 18)),
    "16": (("ok", 1), ("available", 1), ("transaction_date", 18)),
    "36": (("end_session", 1), ("transaction_date", 18)),
    "96": (),
}
REQUESTS = ("93", "99", "23", "63", "11", "09", "29", "65", "17", "15", "35", "97")
RESPONSE_TO = {"93": "94", "99": "98", "23": "24", "63": "64", "11": "12", "09": "10", "29": "30",
               "65": "66", "17": "18", "15": "16", "35": "36"}
# Fixed fields that are dates: 18 characters, YYYYMMDDZZZZHHMMSS (blank where the field is optional).
DATE_FIELDS = frozenset({"transaction_date", "nb_due_date", "return_date", "date_time_sync"})
# Messages whose only fixed field is the transaction date, read also without it: some clients
# leave it out (the Sip2 client library sends "65AO..." for Renew All).
DATE_MAY_BE_MISSING = frozenset({"65", "17", "35"})

_DATE = re.compile(r"\d{8}[ 0-9A-Z]{4}\d{6}")
_FIELD_ID = re.compile(r"[A-Z]{2}")
_ERROR_DETECTION = re.compile(rb"(?:AY(\d))?AZ([0-9A-Fa-f]{4})$")
_SEQUENCE_ONLY = re.compile(r"\|?AY(\d)$")


class ProtocolError(Exception):
    """A message that cannot be read: the machine is asked to send it again (96)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ChecksumError(ProtocolError):
    """The checksum does not add up: the message was damaged on the way."""


@dataclass
class Message:
    code: str
    fixed: dict[str, str] = field(default_factory=dict)
    fields: list[tuple[str, str]] = field(default_factory=list)
    sequence: str | None = None
    # Whether the machine sent a checksum: the answer then carries one (and the sequence number).
    error_detection: bool = False

    def get(self, field_id: str, default: str = "") -> str:
        """The first value of a variable field."""
        for name, value in self.fields:
            if name == field_id:
                return value
        return default

    def all(self, field_id: str) -> list[str]:
        return [value for name, value in self.fields if name == field_id]

    def has(self, field_id: str) -> bool:
        return any(name == field_id for name, _ in self.fields)


def checksum(data: bytes) -> str:
    """Four hex digits: the two's complement of the 16-bit sum of the bytes."""
    return format(-sum(data) & 0xFFFF, "04X")


def _checksum_matches(body: bytes, given: str, encoding: str) -> bool:
    if checksum(body) == given.upper():
        return True
    # Some clients sum characters rather than bytes (the same thing for ASCII): a message
    # holding Chinese text is taken if its checksum adds up either way.
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError:
        return False
    return format(-sum(map(ord, text)) & 0xFFFF, "04X") == given.upper()


def parse(data: bytes, encoding: str = "utf-8") -> Message:
    """One message (its terminator may be present or not) as a `Message`; `ProtocolError` if malformed.

    A wrong checksum is a `ChecksumError`, for which the specification's answer is 96.
    """
    data = data.rstrip(b"\r\n")
    sequence = None
    error_detection = False
    found = _ERROR_DETECTION.search(data)
    if found:
        body = data[:found.end() - 4]
        if not _checksum_matches(body, found.group(2).decode("ascii"), encoding):
            raise ChecksumError("checksum")
        error_detection = True
        sequence = found.group(1).decode("ascii") if found.group(1) else None
        data = data[:found.start()]
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise ProtocolError("encoding") from None
    if not found:
        alone = _SEQUENCE_ONLY.search(text)
        if alone:
            sequence = alone.group(1)
            text = text[:alone.start()]
    if any(ord(character) < 32 for character in text):
        raise ProtocolError("control_character")
    code = text[:2]
    if code not in FIXED:
        raise ProtocolError("unknown_message")
    try:
        fixed, rest = _fixed_fields(code, text[2:])
    except ProtocolError:
        if code not in DATE_MAY_BE_MISSING or not _FIELD_ID.match(text[2:4]):
            raise
        fixed, rest = {name: "" for name, _ in FIXED[code]}, text[2:]
    return Message(code, fixed, _variable_fields(rest), sequence, error_detection)


def _fixed_fields(code: str, text: str) -> tuple[dict[str, str], str]:
    fixed = {}
    position = 0
    for name, length in FIXED[code]:
        value = text[position:position + length]
        if len(value) < length:
            raise ProtocolError("short_fixed_field")
        if name in DATE_FIELDS and value.strip() and not _DATE.fullmatch(value):
            raise ProtocolError("bad_date")
        fixed[name] = value
        position += length
    return fixed, text[position:]


def _variable_fields(text: str) -> list[tuple[str, str]]:
    fields = []
    for piece in text.split(SEPARATOR):
        if not piece:
            continue
        if not _FIELD_ID.match(piece):
            raise ProtocolError("bad_field")
        fields.append((piece[:2], piece[2:]))
    return fields


def _clean(value: object) -> str:
    """A value as a field may hold it: no separator, no line breaks, at most 255 characters."""
    text = str(value)
    for character in ("|", "\r", "\n"):
        text = text.replace(character, " ")
    return text[:FIELD_LIMIT]


def format_message(code: str, fixed: Sequence[str], fields: Iterable[tuple[str, object]] = (),
                   sequence: str | None = None, error_detection: bool = False, encoding: str = "utf-8") -> bytes:
    """A message as bytes, terminator included. Fields whose value is None are left out.

    The fixed values are checked against the specification's lengths: a wrong one is a bug.
    """
    lengths = [length for _, length in FIXED[code]]
    if [len(value) for value in fixed] != lengths:
        raise ValueError(f"fixed fields of {code} must have lengths {lengths}, got {list(fixed)!r}")
    text = code + "".join(fixed) + "".join(f"{field_id}{_clean(value)}{SEPARATOR}"
                                           for field_id, value in fields if value is not None)
    body = text.encode(encoding, errors="replace")
    if error_detection:
        body += (f"AY{sequence}AZ" if sequence is not None else "AZ").encode("ascii")
        body += checksum(body).encode("ascii")
    return body + TERMINATOR


def sip_datetime(moment: dt.datetime, time_zone: str) -> str:
    """YYYYMMDDZZZZHHMMSS in the branch's local time (the zone left blank, as the specification prefers)."""
    local = moment.astimezone(ZoneInfo(time_zone))
    return local.strftime("%Y%m%d    %H%M%S")


def sip_due_date(day: dt.date) -> str:
    """A due date in the 18-character date format: the end of that day."""
    return day.strftime("%Y%m%d    235959")


def flag(value: bool) -> str:
    return "Y" if value else "N"


def count(value: int, width: int = 4) -> str:
    """A count in a fixed field: zero-padded, or all 9s beyond what the width holds."""
    return str(min(value, 10 ** width - 1)).zfill(width)
