"""The matching rules, as tables of records: which incoming record is which catalogued one.

The adversaries: a Chinese vendor file reusing one ISBN for several books of a set, a
publisher's misprinted ISBN, two systems numbering their records (001) from 1 each, and a
re-import of the same record with different punctuation or script."""

import pytest

from library.catalog.matching import (DEFAULT_MATCH_POINTS, MatchPoint, MatchPointError, checked_setting, decide, fold_title,
                                      keys_of, lookup_keys, needs_title_lookup, parse_match_points)

POINTS = parse_match_points(DEFAULT_MATCH_POINTS)


def record(record_id=None, *, title="好饿的毛毛虫", isbn="9787533278267", others=(), number=None, agency="",
           author="艾瑞·卡尔", year=2008, subtitle=""):
    values = {"title": title, "subtitle": subtitle, "isbn13": isbn, "other_isbns": list(others),
              "control_number": number, "control_agency": agency,
              "contributors": [{"name": author, "role": "author"}] if author else [], "publication_year": year}
    if record_id is not None:
        values["id"] = record_id
    return values


def test_two_different_titles_sharing_an_isbn_are_a_possible_duplicate_never_matched():
    # The Chinese reuse case: one ISBN for two volumes of a set.
    existing = record(1, title="神奇校车", subtitle="海底探险")
    decision = decide(record(title="神奇校车", subtitle="太空旅行"), [existing], POINTS)
    assert (decision.kind, decision.record_id, decision.reason) == ("possible_duplicate", 1, "isbn")
    assert decision.duplicates == ((1, "isbn"),)


def test_the_same_isbn_and_the_same_title_is_matched():
    decision = decide(record(), [record(7)], POINTS)
    assert (decision.kind, decision.record_id, decision.reason) == ("matched", 7, "isbn+title")


def test_the_same_001_from_another_agency_is_not_matched_on_control_number():
    existing = record(3, title="Where the wild things are", isbn=None, number="000123", agency="DLC")
    incoming = record(title="Guess how much I love you", isbn=None, number="000123", agency="NLC")
    decision = decide(incoming, [existing], POINTS)
    assert decision.kind == "new"  # two numbering schemes: the same number says nothing


@pytest.mark.parametrize("incoming_agency, existing_agency, kind", [
    ("DLC", "DLC", "matched"),
    ("dlc", "DLC", "matched"),  # agency codes are compared without case
    ("", "DLC", "matched"),  # only one says whose number it is: the 001 decides
    ("DLC", "", "matched"),
    ("", "", "matched"),
    ("NLC", "DLC", "new"),
])
def test_control_number_with_its_agency(incoming_agency, existing_agency, kind):
    existing = record(5, title="甲", isbn=None, number="CN-1", agency=existing_agency)
    incoming = record(title="乙", isbn=None, number="CN-1", agency=incoming_agency)
    assert decide(incoming, [existing], POINTS).kind == kind


def test_a_changed_title_with_the_same_001_is_matched_on_the_control_number_first():
    existing = record(9, title="好饿的毛毛虫", number="LOCAL-1")
    decision = decide(record(title="好饿的毛毛虫（新版）", number="LOCAL-1"), [existing], POINTS)
    assert (decision.kind, decision.record_id, decision.reason) == ("matched", 9, "control_number")


@pytest.mark.parametrize("incoming_title, existing_title", [
    ("Where the wild things are /", "Where the Wild Things Are"),  # ISBD punctuation, case
    ("好餓的毛毛蟲", "好饿的毛毛虫"),  # traditional and simplified
    ("Cafe\u0301 stories", "Café stories"),  # a combining accent (MARC-8) and a precomposed one
    ("ＡＢＣ　绘本", "ABC绘本"),  # full-width letters and space
])
def test_titles_fold_alike(incoming_title, existing_title):
    assert fold_title(incoming_title) == fold_title(existing_title)
    decision = decide(record(title=incoming_title), [record(1, title=existing_title)], POINTS)
    assert decision.kind == "matched"


def test_any_isbn_in_common_counts():
    existing = record(2, isbn="9787533259594", others=["9787533278267"])
    assert decide(record(isbn="9787533278267"), [existing], POINTS).kind == "matched"


def test_the_first_agreeing_point_wins_and_the_oldest_candidate_first():
    by_isbn = record(1)
    by_number = record(2, title="别的书", isbn="9787544291170", number="N-1")
    incoming = record(number="N-1")
    decision = decide(incoming, [by_isbn, by_number], POINTS)
    assert (decision.record_id, decision.reason) == (2, "control_number")  # the first point, whoever is first
    twins = [record(4), record(6)]
    assert decide(record(), twins, POINTS).record_id == 4


def test_same_title_author_and_year_without_identifiers_is_a_possible_duplicate():
    existing = record(8, isbn=None)
    decision = decide(record(isbn=None), [existing], POINTS)
    assert (decision.kind, decision.reason) == ("possible_duplicate", "title_author_year")
    assert decide(record(isbn=None, year=2010), [existing], POINTS).kind == "new"
    assert decide(record(isbn=None, author="别人"), [existing], POINTS).kind == "new"
    assert decide(record(isbn=None, author=""), [record(8, isbn=None, author="")], POINTS).kind == "new"


def test_a_candidate_with_nothing_in_common_leaves_the_record_new():
    assert decide(record(), [record(1, title="别的书", isbn="9787544291170")], POINTS).kind == "new"
    assert decide(record(), [], POINTS).kind == "new"


def test_a_missing_key_never_agrees():
    # Two records without ISBN and without title cannot agree on "isbn+title".
    assert decide(record(isbn=None, title=""), [record(1, isbn=None, title="")], POINTS).kind == "new"
    year_only = parse_match_points("year")
    assert decide(record(year=None), [record(1, year=None)], year_only).kind == "possible_duplicate"  # the ISBN


def test_configured_points_can_match_on_title_author_and_year():
    points = parse_match_points("title+author+year")
    decision = decide(record(isbn=None), [record(3, isbn="9787544291170")], points)
    assert (decision.kind, decision.reason) == ("matched", "title+author+year")
    assert needs_title_lookup(points) and not needs_title_lookup(POINTS)


def test_a_possible_duplicate_is_flagged_against_a_few_records_at_most():
    shelf = [record(n, title=f"第{n}册") for n in range(1, 9)]
    decision = decide(record(title="第九册"), shelf, POINTS)
    assert decision.kind == "possible_duplicate" and [d[0] for d in decision.duplicates] == [1, 2, 3, 4, 5]


def test_json_columns_as_text_are_read_too():
    stored = {"id": 1, "title": "好饿的毛毛虫", "isbn13": None, "other_isbns": '["9787533278267"]',
              "contributors": '[{"name": "艾瑞·卡尔", "role": "author"}]', "publication_year": 2008}
    assert decide(record(), [stored], POINTS).kind == "matched"
    assert keys_of(stored).author == keys_of(record()).author


def test_lookup_keys():
    keys = lookup_keys(record(others=["9787533259594"], number=" N-1 ", title="  Where the Wild Things Are /"))
    assert keys == {"isbns": ["9787533259594", "9787533278267"], "control_number": "N-1",
                    "title": "Where the Wild Things Are /", "folded_title": "wherethewildthingsare"}


@pytest.mark.parametrize("text, points", [
    ("control_number,isbn+title", (("control_number",), ("isbn", "title"))),
    (" isbn + title , title+author+year ", (("isbn", "title"), ("title", "author", "year"))),
    ("isbn,,", (("isbn",),)),
])
def test_parse_match_points(text, points):
    assert parse_match_points(text) == tuple(MatchPoint(keys) for keys in points)


@pytest.mark.parametrize("text, message", [
    ("isbn,issn", "issn"),
    ("title+ author + publisher", "publisher"),
    ("", "no match point"),
    (" , ", "no match point"),
    ("isbn+isbn", "twice"),
])
def test_parse_match_points_refuses_what_it_does_not_know(text, message):
    with pytest.raises(MatchPointError, match=message):
        parse_match_points(text)


def test_the_setting_is_read_and_checked_when_the_service_starts():
    from library.app import create_app
    from library.settings import SettingsError, load_settings

    base = {"LIBRARY_DATA_DIR": "/tmp/library-test-matching", "LIBRARY_SECRET_KEY": "x" * 40}
    assert checked_setting(load_settings(base)) == "control_number,isbn+title"
    assert checked_setting(load_settings({**base, "LIBRARY_CATALOG_MATCH_POINTS": "isbn + title"})) == "isbn+title"
    wrong = load_settings({**base, "LIBRARY_CATALOG_MATCH_POINTS": "isbn,issn"})
    with pytest.raises(SettingsError, match="LIBRARY_CATALOG_MATCH_POINTS"):
        create_app(wrong)
