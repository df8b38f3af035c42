"""Spreadsheet safety: no cell of a CSV the library writes can become a formula, and the phone
numbers and negative numbers staff need come out as they went in."""

import csv
import decimal
import io

import pytest

from library.spreadsheet import cell, csv_text


@pytest.mark.parametrize("value, expected", [
    # a hostile reader's name, title or note: read as text, not run
    ('=HYPERLINK("http://evil","click")', '\'=HYPERLINK("http://evil","click")'),
    ("@SUM(1+1)", "'@SUM(1+1)"),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "'\r=1+1"),
    ("\n=1+1", "'\n=1+1"),
    ("\0=1+1", "'\0=1+1"),
    ("-1 的故事", "'-1 的故事"),
    ("  =1+1", "'  =1+1"),  # an importer that trims spaces would see a formula
    ("＝HYPERLINK(\"http://evil\")", "'＝HYPERLINK(\"http://evil\")"),  # full-width, as an IME types it
    ("－1 的故事", "'－1 的故事"),
    ("+1-2", "'+1-2"),  # arithmetic, and not a phone number: the spreadsheet would show -1
    ("-", "'-"),
    ("-inf", "'-inf"),
    # numbers written as text: the spreadsheet reads the same number
    ("-12.5", "-12.5"),
    ("-3", "-3"),
    ("+5", "+5"),
    ("-.5", "-.5"),
    # phone numbers with a country code
    ("+86 138 0013 8000", "+86 138 0013 8000"),
    ("+8613800138000", "+8613800138000"),
    ("+86-573-8201-2345", "+86-573-8201-2345"),
    ("+1 (212) 555-0100", "+1 (212) 555-0100"),
    ("+44 (0)20 7946 0958", "+44 (0)20 7946 0958"),
    # a phone number that is not alone in its cell is text like any other
    ("+86 138 0013 8000 =1+1", "'+86 138 0013 8000 =1+1"),
    ("+86 138 0013 8000 call", "'+86 138 0013 8000 call"),
    # nothing to neutralise
    ("0573-8201 2345", "0573-8201 2345"),
    ("李小米", "李小米"),
    ("a=b", "a=b"),
    ("", ""),
    (None, ""),
    ("2026-11-28T10:00:00+00:00", "2026-11-28T10:00:00+00:00"),
])
def test_a_text_cell_that_starts_like_a_formula_is_read_as_text(value, expected):
    assert cell(value) == expected


@pytest.mark.parametrize("value", [-3, 0, 12, -12.5, 1e-05, decimal.Decimal("-7.25"), True, False])
def test_a_number_stays_a_number(value):
    assert cell(value) is value


@pytest.mark.parametrize("value, expected", [(float("-inf"), "'-inf"), (float("nan"), "nan"),
                                             (decimal.Decimal("-Infinity"), "'-Infinity")])
def test_what_is_not_a_finite_number_is_text(value, expected):
    assert cell(value) == expected


def test_a_csv_file_quotes_text_leaves_numbers_and_reads_back_as_written():
    text = csv_text([["name", "phone", "total"],
                     ['=HYPERLINK("http://evil","click")', "+86 138 0013 8000", -3],
                     ["李;=1+1", "0573-8201 2345", 4.5]])
    assert text.startswith("\ufeff")  # so that Excel reads the UTF-8 Chinese as such
    lines = text.removeprefix("\ufeff").splitlines()
    # text in double quotes, so that a ";" list separator cannot start a cell with "="
    assert lines[2] == '"李;=1+1","0573-8201 2345",4.5'
    assert list(csv.reader(io.StringIO(text.removeprefix("\ufeff")))) == [
        ["name", "phone", "total"],
        ['\'=HYPERLINK("http://evil","click")', "+86 138 0013 8000", "-3"],
        ["李;=1+1", "0573-8201 2345", "4.5"]]
