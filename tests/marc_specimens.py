"""Generated bibliographic records that use every tag of MARC21 and CNMARC the project claims to
keep: all of them, since a record is kept whole. Each tag appears with the indicators and
subfields a real record would give it, including the ones the catalogue reads into its columns
(so the conversion sees realistic values) and plenty it does not (so keeping them is proved).
"""

from __future__ import annotations

import pymarc
from pymarc import Field, Indicators, Subfield

# MARC 21 Format for Bibliographic Data: the tags of a monograph's record (the LC list, less the
# obsolete ones and those for serials, maps and music only).
MARC21_TAGS = (
    "010", "015", "016", "017", "020", "022", "024", "025", "027", "028", "035", "037", "040", "041", "042", "043",
    "044", "045", "050", "055", "060", "066", "070", "072", "074", "080", "082", "083", "084", "086", "088", "090",
    "100", "110", "111", "130",
    "210", "222", "240", "242", "243", "245", "246", "247", "250", "254", "255", "256", "257", "258", "260", "263",
    "264", "270",
    "300", "306", "310", "321", "336", "337", "338", "340", "344", "346", "347", "348", "362", "370", "377", "380",
    "381", "382", "383", "384", "385", "386", "388",
    "490",
    "500", "501", "502", "504", "505", "506", "507", "508", "510", "511", "513", "514", "515", "516", "518", "520",
    "521", "522", "524", "525", "526", "530", "533", "534", "535", "536", "538", "540", "541", "542", "544", "545",
    "546", "547", "550", "552", "555", "556", "561", "562", "563", "565", "567", "580", "581", "583", "584", "585",
    "586", "588", "590",
    "600", "610", "611", "630", "647", "648", "650", "651", "653", "654", "655", "656", "657", "658", "662", "688",
    "700", "710", "711", "720", "730", "740", "751", "752", "753", "754", "758", "760", "762", "765", "767", "770",
    "772", "773", "774", "775", "776", "777", "780", "785", "786", "787",
    "800", "810", "811", "830", "850", "856", "880", "881", "883", "884", "885", "886", "887",
)
# CNMARC (the UNIMARC of the National Library of China): the tags of a monograph's record.
CNMARC_TAGS = (
    "005", "010", "011", "013", "014", "015", "016", "017", "020", "021", "022", "035", "071", "091", "092",
    "100", "101", "102", "105", "106", "110", "115", "116", "117", "122", "123", "124", "126", "127", "128", "130",
    "135", "140", "181", "182", "183",
    "200", "204", "205", "206", "207", "208", "210", "211", "214", "215", "225", "230",
    "300", "301", "302", "303", "304", "305", "306", "307", "308", "310", "311", "312", "313", "314", "315", "316",
    "317", "318", "320", "321", "322", "323", "324", "325", "326", "327", "328", "330", "332", "333", "334", "336",
    "337", "345",
    "410", "411", "421", "422", "423", "424", "425", "430", "434", "440", "451", "452", "453", "454", "455", "456",
    "461", "462", "463", "464", "470", "481", "482", "488",
    "500", "501", "503", "510", "512", "513", "514", "515", "516", "517", "518", "520", "530", "531", "532", "540",
    "541", "545",
    "600", "601", "602", "604", "605", "606", "607", "608", "610", "615", "616", "620", "626", "660", "661", "670",
    "675", "676", "680", "686", "690", "692",
    "700", "701", "702", "710", "711", "712", "716", "720", "721", "722", "730",
    "801", "802", "830", "856", "905",
)


def isbn13(n: int) -> str:
    """A valid ISBN-13 in the Chinese group (978-7-...), distinct for each n."""
    body = f"9787{n:08d}"
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _data(tag: str, ind: str, *subfields: tuple[str, str]) -> Field:
    return Field(tag=tag, indicators=Indicators(ind[0], ind[1]), subfields=[Subfield(c, v) for c, v in subfields])


def _generic(tag: str, n: int) -> Field:
    """A field the catalogue does not read: realistic enough, and different per record."""
    return _data(tag, " 0" if tag.startswith("6") else "  ", ("a", f"{tag} value {n} — 第{n}册 naïve"),
                 ("b", f"second subfield of {tag}"))


def marc21_specimen(n: int, *, holdings: list[dict] = ()) -> pymarc.Record:
    """Record n: every MARC21 tag of MARC21_TAGS, with the ones the catalogue reads made real."""
    record = pymarc.Record(force_utf8=True, leader="00000nam a2200000 i 4500")
    record.add_field(Field(tag="001", data=f"spec{n:06d}"))
    record.add_field(Field(tag="003", data="DLC"))
    record.add_field(Field(tag="005", data="20261207101500.0"))
    record.add_field(Field(tag="006", data="a     j      000 0 "))
    record.add_field(Field(tag="007", data="ta"))
    record.add_field(Field(tag="008", data="261207s2019    cc a   j      000 1 chi d"))
    real = {
        "020": [_data("020", "  ", ("a", isbn13(n)), ("q", "hardcover"), ("c", "CNY39.80"))],
        "041": [_data("041", "1 ", ("a", "chi"), ("h", "eng"))],
        "050": [_data("050", "00", ("a", "PZ7.C2"), ("b", f"Sp{n} 2019"))],
        "082": [_data("082", "04", ("a", "[E]"), ("2", "23"))],
        "084": [_data("084", "  ", ("a", "I287.8"), ("2", "clc"))],
        "100": [_data("100", "1 ", ("a", f"Carle, Eric {n},"), ("d", "1929-2021,"), ("e", "author,"), ("e", "illustrator."))],
        "245": [_data("245", "14", ("a", f"The very hungry caterpillar {n} /"), ("c", "by Eric Carle."))],
        "246": [_data("246", "31", ("a", f"好饿的毛毛虫 {n}"))],
        "250": [_data("250", "  ", ("a", "1st board book ed."))],
        "264": [_data("264", " 1", ("a", "Jinan :"), ("b", "Mingtian Chubanshe,"), ("c", "2019.")),
                _data("264", " 4", ("c", "©1969"))],
        "300": [_data("300", "  ", ("a", "32 pages :"), ("b", "color illustrations ;"), ("c", "26 cm"))],
        "490": [_data("490", "1 ", ("a", "Eric Carle classics ;"), ("v", f"v. {n}"))],
        "505": [_data("505", "0 ", ("a", "Monday -- Tuesday -- Saturday."))],
        "520": [_data("520", "  ", ("a", f"A caterpillar eats its way through the week ({n})."))],
        "521": [_data("521", "1 ", ("a", "Ages 2-5."))],
        "600": [_data("600", "10", ("a", "Carle, Eric,"), ("x", "Juvenile literature."))],
        "610": [_data("610", "20", ("a", "Mingtian Chubanshe"), ("x", "History."))],
        "650": [_data("650", " 0", ("a", "Caterpillars"), ("v", "Juvenile fiction.")),
                _data("650", " 0", ("a", "Days"), ("v", "Juvenile fiction."))],
        "651": [_data("651", " 0", ("a", "China"), ("v", "Juvenile fiction."))],
        "655": [_data("655", " 7", ("a", "Picture books."), ("2", "lcgft"))],
        "700": [_data("700", "1 ", ("a", "Zheng, Minglun,"), ("e", "translator."))],
        "710": [_data("710", "2 ", ("a", "Eric Carle Museum."))],
        "830": [_data("830", " 0", ("a", "Eric Carle classics ;"), ("v", f"v. {n}."))],
        "856": [_data("856", "41", ("u", f"https://example.org/records/{n}"), ("z", "Cover image"))],
        "880": [_data("880", "10", ("6", "245-01/$1"), ("a", f"好饿的毛毛虫 {n} /"), ("c", "艾瑞·卡尔著."))],
    }
    for tag in MARC21_TAGS:
        for marc_field in real.get(tag, [_generic(tag, n)]):
            record.add_field(marc_field)
    for holding in holdings:
        record.add_field(_data("952", "  ", *holding.items()))
    return record


def cnmarc_specimen(n: int, *, holdings: list[dict] = ()) -> pymarc.Record:
    """Record n: every CNMARC tag of CNMARC_TAGS, with the ones the catalogue reads made real."""
    record = pymarc.Record(force_utf8=True, leader="00000nam0 2200000   450 ")
    record.add_field(Field(tag="001", data=f"CN{n:08d}"))
    real = {
        "005": [Field(tag="005", data="20261207101500.0")],
        "010": [_data("010", "  ", ("a", isbn13(n)), ("b", "精装"), ("d", "CNY39.80"))],
        "100": [_data("100", "  ", ("a", "20261207d2019    em y0chiy50      ea"))],
        "101": [_data("101", "1 ", ("a", "chi"), ("c", "eng"))],
        "102": [_data("102", "  ", ("a", "CN"), ("b", "370000"))],
        "105": [_data("105", "  ", ("a", "a   z   000yy"))],
        "106": [_data("106", "  ", ("a", "r"))],
        "200": [_data("200", "1 ", ("a", f"\x88The \x89very hungry caterpillar {n}"), ("d", f"= 好饿的毛毛虫 {n}"),
                      ("e", "绘本"), ("f", "(美)艾瑞·卡尔文·图"), ("g", "郑明进译"))],
        "205": [_data("205", "  ", ("a", "2版"))],
        "210": [_data("210", "  ", ("a", "济南"), ("c", "明天出版社"), ("d", "2019"))],
        "215": [_data("215", "  ", ("a", "32页"), ("c", "彩图"), ("d", "26cm"))],
        "225": [_data("225", "2 ", ("a", "信谊世界精选图画书"), ("v", f"{n}"))],
        "330": [_data("330", "  ", ("a", f"一条毛毛虫吃了一个星期（{n}）。"))],
        "333": [_data("333", "  ", ("a", "3-6岁"))],
        "410": [_data("410", " 0", ("1", "2001 "), ("a", "信谊世界精选图画书"))],
        "454": [_data("454", " 1", ("1", "2001 "), ("a", "The very hungry caterpillar"))],
        "517": [_data("517", "1 ", ("a", "毛毛虫"))],
        "606": [_data("606", "0 ", ("a", "图画故事"), ("y", "美国"), ("z", "现代"))],
        "690": [_data("690", "  ", ("a", "I712.85"), ("v", "5"))],
        "701": [_data("701", " 0", ("a", "卡尔"), ("g", "Carle, Eric"), ("4", "著"))],
        "702": [_data("702", " 0", ("a", "郑明进"), ("4", "译"))],
        "801": [_data("801", " 0", ("a", "CN"), ("b", "JXLIB"), ("c", "20261207"))],
        "856": [_data("856", "4 ", ("u", f"https://example.org/cn/{n}"))],
    }
    for tag in CNMARC_TAGS:
        if tag == "905":
            continue
        for marc_field in real.get(tag, [_generic(tag, n)]):
            record.add_field(marc_field)
    for holding in holdings:
        record.add_field(_data("905", "  ", *holding.items()))
    return record
