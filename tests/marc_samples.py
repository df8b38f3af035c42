"""MARC files shaped like the ones other library systems send, built with pymarc."""

from __future__ import annotations

import pymarc
from pymarc import Field, Subfield


def marc21(title: str, *, isbns: list[str] = (), control: str | None = None, author: str | None = None,
           holdings: list[dict] = (), extra: list[Field] = ()) -> pymarc.Record:
    record = pymarc.Record(force_utf8=True, leader="00000nam a2200000 i 4500")
    if control:
        record.add_field(Field(tag="001", data=control))
    for isbn in isbns:
        record.add_field(Field(tag="020", indicators=[" ", " "], subfields=[Subfield("a", isbn)]))
    if author:
        record.add_field(Field(tag="100", indicators=["1", " "], subfields=[Subfield("a", author + ","),
                                                                             Subfield("e", "author.")]))
    record.add_field(Field(tag="245", indicators=["1", "0"], subfields=[Subfield("a", title + " /")]))
    record.add_field(Field(tag="264", indicators=[" ", "1"], subfields=[Subfield("b", "明天出版社,"),
                                                                         Subfield("c", "2008.")]))
    for field in extra:
        record.add_field(field)
    for holding in holdings:
        record.add_field(Field(tag="952", indicators=[" ", " "], subfields=[
            Subfield(code, value) for code, value in holding.items()]))
    return record


def cnmarc(title: str, isbn: str, *, holdings: list[dict] = ()) -> pymarc.Record:
    record = pymarc.Record(force_utf8=True, leader="00000nam0 2200000   450 ")
    record.add_field(Field(tag="001", data="CN" + isbn[-6:]))
    record.add_field(Field(tag="010", indicators=[" ", " "], subfields=[Subfield("a", isbn), Subfield("d", "CNY29.80")]))
    record.add_field(Field(tag="101", indicators=["1", " "], subfields=[Subfield("a", "chi"), Subfield("c", "eng")]))
    record.add_field(Field(tag="200", indicators=["1", " "], subfields=[
        Subfield("a", title), Subfield("d", "= Guess how much I love you"), Subfield("f", "(英)山姆·麦克布雷尼文")]))
    record.add_field(Field(tag="210", indicators=[" ", " "], subfields=[Subfield("a", "济南"), Subfield("c", "明天出版社"),
                                                                         Subfield("d", "2013")]))
    record.add_field(Field(tag="215", indicators=[" ", " "], subfields=[Subfield("a", "32页")]))
    record.add_field(Field(tag="333", indicators=[" ", " "], subfields=[Subfield("a", "3-6岁")]))
    record.add_field(Field(tag="606", indicators=["0", " "], subfields=[Subfield("a", "图画故事"), Subfield("y", "英国")]))
    record.add_field(Field(tag="690", indicators=[" ", " "], subfields=[Subfield("a", "I561.85"), Subfield("v", "5")]))
    record.add_field(Field(tag="701", indicators=[" ", "1"], subfields=[Subfield("a", "麦克布雷尼"), Subfield("4", "著")]))
    record.add_field(Field(tag="702", indicators=[" ", "0"], subfields=[Subfield("a", "梅子涵"), Subfield("4", "译")]))
    for holding in holdings:
        record.add_field(Field(tag="905", indicators=[" ", " "], subfields=[
            Subfield(code, value) for code, value in holding.items()]))
    return record


def iso2709(*records: pymarc.Record) -> bytes:
    return b"".join(record.as_marc() for record in records)
