"""CSV files that staff and readers open in a spreadsheet: every one the service writes goes
through `csv_text`, so that no cell can turn into a formula (OWASP "CSV injection").

A reader chooses her own name, a parent types a book title, and the file ends up in Excel,
LibreOffice or WPS on a staff computer, where a cell such as `=HYPERLINK("http://evil", "click")`
or `=cmd|' /C calc'!A0` would be a live formula. OWASP's remedy, followed here: a text cell that
starts like a formula gets a leading apostrophe, which makes the spreadsheet read it as text;
and every text cell is wrapped in double quotes, so that a separator inside it (a `;` where the
computer's list separator is `;`) cannot start a new cell that begins with `=`.
"""

from __future__ import annotations

import csv
import decimal
import io
import math
import re
from collections.abc import Iterable, Sequence

# OWASP's list (= + - @ tab CR, and LF in one version of its page), the NUL that ASVS 1.2.10 adds,
# and the full-width forms a Chinese input method types: in case a spreadsheet reads them as the
# ASCII ones. That costs an apostrophe on a rare title; missing one would cost a formula.
FORMULA_STARTS = frozenset("=+-@\t\r\n\0＝＋－＠")

# Text that is entirely a decimal number, such as "-12.5" or "+3". No letters, so no exponent:
# the spreadsheet reads it as that very number, whether it parses it as a number or a formula.
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d+)?|\.\d+)")

# A phone number written with its country code: "+86 138 0013 8000", "+8613800138000",
# "+1 (212) 555-0100". Digit groups joined by one space, hyphen or dot, a group perhaps in
# parentheses; 7 to 15 digits (E.164), so that "+1-2" is not a phone number but a sum.
PHONE = re.compile(r"\+\d+(?:[ .-]?(?:\d+|\(\d+\)))*")
PHONE_DIGITS = range(7, 16)


def _phone_shaped(text: str) -> bool:
    return PHONE.fullmatch(text) is not None and sum(c.isdigit() for c in text) in PHONE_DIGITS


def _finite_number(value: object) -> bool:
    if isinstance(value, int):  # True and False too: they are written as words
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, decimal.Decimal) and value.is_finite()


def cell(value: object) -> object:
    """The value as it may safely stand in a cell: numbers as they are, text that would start a
    formula with an apostrophe in front.

    Two kinds of text that start with `+` or `-` are left alone because staff need them as they
    are: numbers ("-12.5") and phone numbers ("+86 138 0013 8000"). That is safe: text made only
    of digits, spaces, dots, parentheses, `+` and `-` can at most be arithmetic on numbers. A
    function call, a cell or range reference (A1, R1C1, 1:1), a link, DDE (`cmd|' /C calc'!A0`)
    or another file all need letters, `:`, `!`, `|`, quotes or brackets, none of which is there.
    A short "+1-2" is still quoted: the spreadsheet would show -1, which is nobody's data.
    A cell starting with a space and then `=` is quoted too: some importers trim spaces first.
    """
    if value is None:
        return ""
    if _finite_number(value):
        return value  # a number stays a number cell: -3 is minus three, never a formula
    text = str(value)  # float("-inf") too: no spreadsheet knows "-inf" as a number
    if text[:1] not in FORMULA_STARTS and text.lstrip()[:1] not in FORMULA_STARTS:
        return text
    if NUMBER.fullmatch(text) or _phone_shaped(text):
        return text
    return "'" + text


def csv_text(rows: Iterable[Sequence[object]]) -> str:
    """A whole CSV file, the header being the first row, every cell made safe by `cell`.

    Text is quoted and numbers are not, so a spreadsheet still sees the numbers as numbers.
    The BOM makes Excel read the UTF-8 as such, so that Chinese does not come out as mojibake.
    """
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC)
    for row in rows:
        writer.writerow([cell(value) for value in row])
    return "\ufeff" + out.getvalue()
