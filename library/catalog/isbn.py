"""ISBN intake: what a scanner or a librarian types, read as an ISBN-13 or refused with a reason.

Pure, with isbnlib for hyphenation. Accepts ISBN-10 and ISBN-13 with or without hyphens or
spaces, an EAN-13 from a scanner (also with the 5-digit price add-on that some
scanners append), and an ISBN inside pasted text ("ISBN 978-7-... (精装)").
"""

from __future__ import annotations

import operator
import re
import unicodedata
from dataclasses import dataclass

_SEPARATORS = re.compile(r"[\s\-‐‑‒–—_.]")
_ISBN_LIKE = re.compile(r"(?<![0-9])(97[89][0-9\-\s]{10,16}[0-9]|[0-9][0-9\-\s]{8,12}[0-9Xx])(?![0-9])")


@dataclass(frozen=True)
class Isbn:
    isbn13: str

    @property
    def hyphenated(self) -> str:
        return hyphenate(self.isbn13)

    @property
    def isbn10(self) -> str | None:
        """ISBN-10 exists only for 978 ISBNs."""
        if not self.isbn13.startswith("978"):
            return None
        body = self.isbn13[3:12]
        return body + check_digit10(body)


@dataclass(frozen=True)
class IsbnRefusal:
    code: str  # isbn_empty | isbn_length | isbn_characters | isbn_check_digit | isbn_prefix
    given: str
    expected_check_digit: str | None = None
    length: int | None = None


_WEIGHTS10 = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def check_digit10(body: str) -> str:
    """The ISBN-10 check digit of nine ASCII digits (isbnlib's is several times slower)."""
    # The bytes are the digits' codes, 48 above their values: 48 x (10 + 9 + ... + 2) too much.
    remainder = (sum(map(operator.mul, body.encode("ascii"), _WEIGHTS10)) - 48 * 54) % 11
    value = (11 - remainder) % 11
    return "X" if value == 10 else str(value)


def check_digit13(body: str) -> str:
    """The ISBN-13 check digit of twelve ASCII digits (callers checked)."""
    codes = body.encode("ascii")  # each digit's value + 48, so 48 too much for every weight
    total = sum(codes[0::2]) + 3 * sum(codes[1::2]) - 48 * (len(codes) + 2 * (len(codes) // 2))
    return str((10 - total % 10) % 10)


def hyphenate(isbn13: str) -> str:
    # Imported here: isbnlib brings its web services along (about 0.05 s), and the MARC
    # converter processes, which import this module for its checks, never hyphenate.
    import isbnlib

    try:
        return isbnlib.mask(isbn13) or isbn13
    except isbnlib.NotValidISBNError:
        return isbn13


def _accept(digits: str) -> Isbn:
    if len(digits) == 13:
        return Isbn(digits)
    stem = "978" + digits[:9]
    return Isbn(stem + check_digit13(stem))


def _check(digits: str, given: str) -> Isbn | IsbnRefusal:
    if len(digits) == 10:
        if not re.fullmatch(r"[0-9]{9}[0-9X]", digits):
            return IsbnRefusal("isbn_characters", given)
        expected = check_digit10(digits[:9])
        if digits[9] != expected:
            return IsbnRefusal("isbn_check_digit", given, expected_check_digit=expected)
        return _accept(digits)
    if len(digits) == 13:
        if not digits.isdigit():
            return IsbnRefusal("isbn_characters", given)
        if not digits.startswith(("978", "979")):
            return IsbnRefusal("isbn_prefix", given)
        expected = check_digit13(digits[:12])
        if digits[12] != expected:
            return IsbnRefusal("isbn_check_digit", given, expected_check_digit=expected)
        return _accept(digits)
    return IsbnRefusal("isbn_length", given, length=len(digits))


def parse_isbn(text: str | None) -> Isbn | IsbnRefusal:
    """The ISBN in `text`, or the reason there is none (with the expected check digit)."""
    if text and len(text) == 13 and text.isdigit() and text.isascii():  # already an ISBN-13's digits
        return _check(text, text)
    given = unicodedata.normalize("NFKC", text or "").strip()  # full-width digits from a Chinese IME
    if not given:
        return IsbnRefusal("isbn_empty", given)
    compact = _SEPARATORS.sub("", given).upper()
    # A scanner's EAN-13 with a 2- or 5-digit add-on (the price) after it.
    if compact.isdigit() and len(compact) in (15, 18) and compact.startswith(("978", "979")):
        compact = compact[:13]
    if re.fullmatch(r"[0-9X]+", compact):
        return _check(compact, given)
    # An ISBN in pasted text: "ISBN 978-7-5442-5458-8 (精装)", "0-399-22690-7 (pbk.)".
    match = _ISBN_LIKE.search(given.upper())
    if match:
        return _check(_SEPARATORS.sub("", match.group(0)), given)
    if re.search(r"[0-9]", compact):
        return IsbnRefusal("isbn_characters", given)
    return IsbnRefusal("isbn_characters", given)


def isbns_in(text: str | None) -> list[str]:
    """Every valid ISBN-13 in free text (a MARC 020 with a qualifier, a list), in order, once each."""
    if text and len(text) == 13 and text.isdigit() and text.isascii():  # a subfield with the bare ISBN-13
        result = _check(text, text)
        return [result.isbn13] if isinstance(result, Isbn) else []
    found: list[str] = []
    for match in _ISBN_LIKE.finditer((text or "").upper()):
        result = _check(_SEPARATORS.sub("", match.group(0)), match.group(0))
        if isinstance(result, Isbn) and result.isbn13 not in found:
            found.append(result.isbn13)
    return found
