import pytest

from library.catalog import rules


def test_generated_barcodes_carry_a_luhn_digit():
    assert rules.generated_barcode("ZX", 1) == "ZX000000018"
    assert rules.barcode_problem("ZX000000018", ["ZX"]) is None
    assert rules.barcode_problem("ZX000000019", ["ZX"]) == "barcode_check_digit"
    assert rules.barcode_problem("ZX000000081", ["ZX"]) == "barcode_check_digit"  # swapped digits


@pytest.mark.parametrize(("barcode", "problem"), [("B0001", None), ("AB", "barcode_format"),
                                                   ("has space", "barcode_format"), ("X" * 33, "barcode_format"),
                                                   ("31234-000", None)])
def test_scanned_barcodes(barcode, problem):
    assert rules.barcode_problem(barcode, ["ZX"]) == problem


@pytest.mark.parametrize(
    ("clc", "contributors", "call_number"),
    [("I712.85", [{"name": "艾瑞·卡尔", "role": "author"}], "I712.85/ARKE"),
     ("I287.8", [{"name": "Eric Carle", "role": "author"}], "I287.8/EC"),
     ("I287.8", [{"name": "郑明进", "role": "translator"}], "I287.8"),
     ("", [{"name": "艾瑞·卡尔", "role": "author"}], "")],
)
def test_default_call_number(clc, contributors, call_number):
    assert rules.default_call_number(clc, contributors) == call_number


def test_record_problems_lists_every_one():
    problems = rules.record_problems({"title": "", "age_min": 9, "age_max": 3, "pages": 0, "format": "scroll",
                                      "contributors": [{"name": "x", "role": "singer"}]}, 2026)
    assert [(field, code) for field, code, _ in problems] == [
        ("title", "required"), ("age_max", "age_range_reversed"), ("pages", "pages_out_of_range"),
        ("format", "invalid_choice"), ("contributors", "invalid_role_of_contributor")]
