"""The records a test Zebra serves: MARC21 in UTF-8 (an English-language union catalogue) and
CNMARC in GBK (a Chinese one), with Chinese titles whose GBK bytes a wrong decoding would garble."""

from __future__ import annotations

import datetime as dt
import uuid

import pymarc
from pymarc import Field, Indicators, Subfield

from library.catalog import cnmarc, marc

# ISBN-13 -> (title, author, publisher, year); the ISBNs have valid check digits.
MARC21_BOOKS = {
    "9780399226908": ("The very hungry caterpillar", "Carle, Eric", "Philomel Books", 1987),
    "9780064430173": ("Where the wild things are", "Sendak, Maurice", "HarperCollins", 1988),
    "9787533259334": ("猜猜我有多爱你", "McBratney, Sam", "明天出版社", 2008),
}
CNMARC_BOOKS = {
    "9787544246507": ("团圆", "余丽琼", "南海出版公司", 2009),
    "9787533256982": ("我爸爸", "布朗", "河北教育出版社", 2007),
    "9787539146324": ("小蓝和小黄", "李欧·李奥尼", "南海出版公司", 2010),
}
# One ISBN both servers know (as a union catalogue and a central library both would).
BOTH = "9787533259334"
CNMARC_BOOKS[BOTH] = ("猜猜我有多爱你", "麦克布雷尼", "明天出版社", 2008)


def marc21_record(isbn: str, title: str, author: str, publisher: str, year: int) -> pymarc.Record:
    record = pymarc.Record(force_utf8=True, leader="00000nam a2200000 a 4500")
    record.add_field(Field(tag="001", data=f"Z{isbn}"))
    record.add_field(Field(tag="020", indicators=Indicators(" ", " "), subfields=[Subfield("a", isbn)]))
    record.add_field(Field(tag="100", indicators=Indicators("1", " "), subfields=[Subfield("a", author)]))
    record.add_field(Field(tag="245", indicators=Indicators("1", "0"), subfields=[Subfield("a", title)]))
    record.add_field(Field(tag="264", indicators=Indicators(" ", "1"), subfields=[
        Subfield("a", "New York"), Subfield("b", publisher), Subfield("c", str(year))]))
    record.add_field(Field(tag="300", indicators=Indicators(" ", " "), subfields=[Subfield("a", "32 pages")]))
    return record


def cnmarc_record(isbn: str, title: str, author: str, publisher: str, year: int) -> pymarc.Record:
    return cnmarc.to_cnmarc({"uuid": uuid.uuid5(uuid.NAMESPACE_OID, isbn), "control_number": f"CN{isbn}",
                             "isbn13": isbn, "title": title, "publisher": publisher, "publication_year": year,
                             "contributors": [{"name": author, "role": "author"}], "pages": 40,
                             "age_min": 3, "age_max": 6}, [], today=dt.date(2026, 12, 7))


def marc21_file() -> bytes:
    return marc.write_iso2709([marc21_record(isbn, *book) for isbn, book in MARC21_BOOKS.items()], "utf-8")


def cnmarc_gbk_file() -> bytes:
    return marc.write_iso2709([cnmarc_record(isbn, *book) for isbn, book in CNMARC_BOOKS.items()], "gb18030")
