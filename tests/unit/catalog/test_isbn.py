import isbnlib
import pytest
from hypothesis import given
from hypothesis import strategies as st

from library.catalog.isbn import Isbn, IsbnRefusal, check_digit10, check_digit13, isbns_in, parse_isbn


@pytest.mark.parametrize(
    ("given", "isbn13", "hyphenated"),
    [
        ("9787533278267", "9787533278267", "978-7-5332-7826-7"),
        ("978-7-5332-7826-7", "9787533278267", "978-7-5332-7826-7"),
        ("978 7 5332 7826 7", "9787533278267", "978-7-5332-7826-7"),
        ("7533278267", "9787533278267", "978-7-5332-7826-7"),  # ISBN-10
        ("0-399-22690-7", "9780399226908", "978-0-399-22690-8"),
        ("080442957x", "9780804429573", "978-0-8044-2957-3"),  # lower-case X
        ("9787533278267 51800", "9787533278267", "978-7-5332-7826-7"),  # scanner add-on (price)
        ("ISBN 978-7-5332-7826-7 (精装)", "9787533278267", "978-7-5332-7826-7"),  # pasted text
        ("0399226907 (pbk.)", "9780399226908", "978-0-399-22690-8"),
        ("９７８７５３３２７８２６７", "9787533278267", "978-7-5332-7826-7"),  # full-width digits
    ],
)
def test_accepted(given, isbn13, hyphenated):
    result = parse_isbn(given)
    assert isinstance(result, Isbn) and (result.isbn13, result.hyphenated) == (isbn13, hyphenated)


@pytest.mark.parametrize(
    ("given", "code", "expected"),
    [
        ("", "isbn_empty", None),
        ("12345", "isbn_length", None),
        ("97875332782", "isbn_length", None),
        ("9787533278261", "isbn_check_digit", "7"),
        ("7533278260", "isbn_check_digit", "7"),
        ("9771234567898", "isbn_prefix", None),
        ("hungry caterpillar", "isbn_characters", None),
        ("97875332782X7", "isbn_characters", None),
    ],
)
def test_refused_with_a_reason(given, code, expected):
    result = parse_isbn(given)
    assert isinstance(result, IsbnRefusal) and (result.code, result.expected_check_digit) == (code, expected)


def test_length_is_told():
    assert parse_isbn("12345").length == 5


def test_isbns_in_free_text():
    assert isbns_in("9780399226908 (pbk.) ; 0399226907 ; 9787533278267") == ["9780399226908", "9787533278267"]
    assert isbns_in("no isbn here") == []


@given(st.text(max_size=40))
def test_never_raises(text):
    assert isinstance(parse_isbn(text), (Isbn, IsbnRefusal))


@given(st.text(alphabet="0123456789", min_size=12, max_size=12))
def test_check_digits_agree_with_isbnlib(body):
    assert check_digit13(body) == isbnlib.check_digit13(body)
    assert check_digit10(body[:9]) == isbnlib.check_digit10(body[:9])


@given(st.sampled_from(["978", "979", "977", "123"]), st.text(alphabet="0123456789", min_size=9, max_size=9),
       st.integers(min_value=0, max_value=9))
def test_a_bare_isbn13_is_read_as_the_same_digits_in_text_are(prefix, body, wrong_by):
    # Valid ones (wrong_by 0 with a 978/979 prefix) and ones with a bad check digit or prefix.
    digit = (int(isbnlib.check_digit13(prefix + body)) + wrong_by) % 10
    digits = f"{prefix}{body}{digit}"
    found = isbns_in(digits)
    assert found == isbns_in(f"ISBN {digits} (pbk.)")  # the fast path says what the pattern says
    assert found == ([digits] if wrong_by == 0 and prefix in ("978", "979") else [])
