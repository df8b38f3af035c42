"""A record catalogued here goes out as CNMARC that a Chinese system reads back to the same
record: `cnmarc.to_cnmarc` against `marc.from_cnmarc`, column by column. No database."""

import datetime as dt
import io

import pymarc
import pytest

from library.catalog import marc
from library.catalog.cnmarc import to_cnmarc

TODAY = dt.date(2026, 12, 7)
RECORD = {
    "uuid": "0192e0c0-0000-7000-8000-000000000001", "control_number": "ZX2026000123", "control_agency": "ZX",
    "isbn13": "9787533278267", "other_isbns": ["9787533259594"], "title": "好饿的毛毛虫", "subtitle": "绘本",
    "parallel_title": "The very hungry caterpillar", "original_title": "The very hungry caterpillar",
    # Primary responsibility first, as CNMARC orders it (701 before 702).
    "contributors": [{"name": "卡尔, 艾瑞", "role": "author"}, {"name": "王晓明", "role": "illustrator"},
                     {"name": "郑明进", "role": "translator"}, {"name": "Asimov, Isaac", "role": "contributor"}],
    "publisher": "明天出版社", "publication_year": 2019, "language": "chi", "series": "信谊世界精选图画书",
    "series_number": "第12辑 (珍藏版)", "subjects": ["图画故事-美国-现代", "昆虫"], "age_min": 3, "age_max": 6,
    "format": "picture_book", "pages": 32, "summary": "一条毛毛虫吃了一个星期。", "clc": "I712.85",
    "call_number": "I712.85/K12",
}
ITEMS = [{"barcode": "ZX000123", "home_branch": "ZX", "current_branch": "ZX", "shelf_location": "邻乐空间",
          "status": "available", "price_cents": 3980}]


def read_back(record: pymarc.Record, encoding: str) -> marc.Converted:
    data = marc.write_iso2709([record], encoding)
    [(_, light, reason)] = list(marc.read_marc(data, encoding="auto"))
    assert light is not None, reason
    assert marc.detect_flavour(light) == "cnmarc"
    return marc.convert(light, "cnmarc", TODAY)


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
def test_a_record_goes_out_as_cnmarc_and_reads_back_the_same(encoding):
    back = read_back(to_cnmarc(RECORD, ITEMS, TODAY), encoding)
    got = back.record
    for column in ("title", "subtitle", "parallel_title", "original_title", "contributors", "publisher",
                   "publication_year", "language", "series", "series_number", "subjects", "age_min", "age_max",
                   "pages", "summary", "clc", "control_number", "other_isbns"):
        assert getattr(got, column) == RECORD[column], column
    assert got.isbn and got.isbn.replace("-", "") == RECORD["isbn13"]
    assert [(h.barcode, h.home_branch, h.shelf_location, h.status, h.price_cents) for h in back.holdings] == [
        ("ZX000123", "ZX", "邻乐空间", "available", 3980)]
    assert not back.warnings


def test_the_layout_is_what_a_chinese_cataloguer_expects():
    out = to_cnmarc(RECORD, ITEMS, TODAY)
    assert out.leader[6:8] == "am" and out["200"].indicators == pymarc.Indicators("1", " ")
    general = out["100"]["a"]
    assert len(general) == 36 and general[8:13] == "d2019" and general[17] == "a" and general[22:25] == "chi"
    names = [(f.tag, f.indicators[1], f.get_subfields("a", "b"), f["4"]) for f in out.get_fields("701", "702")]
    assert names == [("701", "1", ["卡尔", "艾瑞"], "070"), ("701", "0", ["王晓明"], "440"),
                     ("702", "0", ["郑明进"], "730"), ("702", "1", ["Asimov", "Isaac"], "205")]
    reordered = {**RECORD, "contributors": RECORD["contributors"][::-1]}
    assert [f.tag for f in to_cnmarc(reordered, [], TODAY).get_fields("701", "702")] == ["701", "701", "702", "702"]
    assert out["200"]["f"] == "卡尔, 艾瑞" and out["690"]["a"] == "I712.85" and out["333"]["a"] == "3-6岁"
    assert out["010"]["d"] == "CNY39.80" and out["905"]["d"] == "I712.85/K12"


def test_gb18030_says_its_character_set_in_100_and_has_no_utf8():
    data = marc.write_iso2709([to_cnmarc(RECORD, ITEMS, TODAY)], "gb18030")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    record = next(pymarc.MARCReader(io.BytesIO(data), to_unicode=True, file_encoding="gb18030"))
    assert record["100"]["a"][26:30] == marc.CNMARC_CHARSETS["gb18030"]


@pytest.mark.parametrize("ages", [(3, None), (None, 6)])
def test_an_open_age_range_reads_back_open(ages):
    record = {**RECORD, "age_min": ages[0], "age_max": ages[1]}
    got = read_back(to_cnmarc(record, [], TODAY), "utf-8").record
    assert (got.age_min, got.age_max) == ages
