"""Our record as CNMARC (the Chinese UNIMARC), for a record catalogued here or one that came in
as MARC21: written from its columns, as a Chinese cataloguer lays it out.

A record that came in as CNMARC goes out as it came (library.catalog.marc_record); this is
what fills the field groups that no longer say what the columns say, and the whole record when
there is no CNMARC record to keep. The fields read back by `marc.from_cnmarc` to the same
columns (tests/integration/test_marc_round_trip.py):

- 001 control number (ours, or the record's uuid), 100 general processing data (36
  characters; its character set, positions 26-29, is set by the writer), 101 language;
- 010 $a ISBN (one field per ISBN), $d price (from the first copy that has one);
- 200 1# $a title $d parallel title $e other title information $f first statement of
  responsibility (the authors) $g the others; 454 $t the original title of a translation;
- 210 $c publisher $d year; 215 $a pages ("32页"); 225 2# $a series $v number;
- 330 summary; 333 audience ("3-6岁": numbers in it are ages);
- 606 0# topical subjects; 690 CLC ($v 5: the fifth edition);
- 701 (authors, illustrators, adapters: primary responsibility) and 702 (translators, editors,
  contributors) with $4 UNIMARC relator codes; a name "Asimov, Isaac" as $a Asimov $b Isaac
  (second indicator 1, inverted), "梅子涵" as $a (indicator 0, direct order);
- 801 #0 the cataloguing agency; 905 holdings, one per copy, as CALIS lays it out: $a branch,
  $b barcode, $c shelf location, $d call number, $s status.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pymarc
from pymarc import Field, Indicators, Subfield

# Our roles (library.catalog.rules.ROLES) as UNIMARC relator codes (Appendix C), read back by
# marc.ROLE_FROM_RELATOR; "contributor" is 205 (collaborator).
UNIMARC_RELATOR = {"author": "070", "illustrator": "440", "adapter": "010", "translator": "730", "editor": "340",
                   "contributor": "205"}
# Names of primary responsibility go in 701, the others in 702 (CNMARC: 70X/71X).
PRIMARY_ROLES = ("author", "illustrator", "adapter")
LEADER = "00000nam0 2200000   450 "


def _data(tag: str, indicators: str, *subfields: tuple[str, str]) -> Field:
    return Field(tag=tag, indicators=Indicators(indicators[0], indicators[1]),
                 subfields=[Subfield(code, value) for code, value in subfields if value])


def general_processing_data(entered: dt.date, year: int | None, children: bool) -> str:
    """100 $a: date entered, publication date type and year, target audience (a: juvenile,
    m: adult general), not a government publication, not a modified record, Chinese as the
    language of cataloguing, no transliteration, the character set (filled by the writer:
    marc.CNMARC_CHARSETS) and the script of the title (ea: Chinese)."""
    date = f"d{year:04d}    " if year else "u        "
    audience = "a  " if children else "m  "
    return f"{entered:%Y%m%d}{date}{audience}y0chiy50      ea"


def _name(contributor: dict[str, Any], role: str) -> Field:
    """701/702: a name with a comma is inverted (entry element, rest), one without is direct."""
    tag = "701" if role in PRIMARY_ROLES else "702"
    entry, _, rest = contributor["name"].partition(",")
    if rest.strip():
        return _data(tag, " 1", ("a", entry.strip()), ("b", rest.strip()), ("4", UNIMARC_RELATOR[role]))
    return _data(tag, " 0", ("a", contributor["name"].strip()), ("4", UNIMARC_RELATOR[role]))


def _audience(age_min: int | None, age_max: int | None) -> str:
    if age_min is not None and age_max is not None:
        return f"{age_min}-{age_max}岁"
    if age_min is not None:
        return f"{age_min}岁以上"
    return f"{age_max}岁以下"


def to_cnmarc(record: dict[str, Any], items: list[dict[str, Any]], today: dt.date | None = None) -> pymarc.Record:
    """One record and its copies (branches as codes) as CNMARC."""
    marc = pymarc.Record(force_utf8=True, leader=LEADER)
    marc.add_field(Field(tag="001", data=record.get("control_number") or str(record["uuid"])))
    price = next((item["price_cents"] for item in items if item.get("price_cents") is not None), None)
    isbns = [isbn for isbn in [record.get("isbn13"), *(record.get("other_isbns") or [])] if isbn]
    for position, isbn in enumerate(isbns):
        marc.add_field(_data("010", "  ", ("a", isbn),
                             ("d", f"CNY{price / 100:.2f}" if price is not None and position == 0 else "")))
    created = record.get("created_at")
    entered = created.date() if isinstance(created, dt.datetime) else (today or dt.date.today())
    year = record.get("publication_year")
    children = record.get("age_max") is not None and record["age_max"] < 18
    marc.add_field(_data("100", "  ", ("a", general_processing_data(entered, year, children))))
    marc.add_field(_data("101", "0 ", ("a", (record.get("language") or "chi")[:3])))
    contributors = [c for c in record.get("contributors") or [] if (c.get("name") or "").strip()]
    authors = " ; ".join(c["name"] for c in contributors if c.get("role") == "author")
    others = " ; ".join(c["name"] for c in contributors if c.get("role") != "author")
    marc.add_field(_data("200", "1 ", ("a", record["title"]), ("d", record.get("parallel_title") or ""),
                         ("e", record.get("subtitle") or ""), ("f", authors), ("g", others)))
    if record.get("publisher") or year:
        marc.add_field(_data("210", "  ", ("c", record.get("publisher") or ""), ("d", str(year) if year else "")))
    if record.get("pages"):
        marc.add_field(_data("215", "  ", ("a", f"{record['pages']}页")))
    if record.get("series"):
        marc.add_field(_data("225", "2 ", ("a", record["series"]), ("v", record.get("series_number") or "")))
    if record.get("summary"):
        marc.add_field(_data("330", "  ", ("a", record["summary"])))
    if record.get("age_min") is not None or record.get("age_max") is not None:
        marc.add_field(_data("333", "  ", ("a", _audience(record.get("age_min"), record.get("age_max")))))
    if record.get("original_title"):
        marc.add_field(_data("454", " 1", ("t", record["original_title"])))
    for subject in record.get("subjects") or []:
        marc.add_field(_data("606", "0 ", ("a", subject)))
    if record.get("clc"):
        marc.add_field(_data("690", "  ", ("a", record["clc"]), ("v", "5")))
    # Fields in tag order: the 701s, then the 702s (each in the record's order).
    roles = [(c, c.get("role") if c.get("role") in UNIMARC_RELATOR else "contributor") for c in contributors]
    for contributor, role in sorted(roles, key=lambda pair: pair[1] not in PRIMARY_ROLES):
        marc.add_field(_name(contributor, role))
    if record.get("control_agency"):
        marc.add_field(_data("801", " 0", ("a", "CN"), ("b", record["control_agency"])))
    for item in items:
        marc.add_field(_data("905", "  ", ("a", item["home_branch"]), ("b", item["barcode"]),
                             ("c", item.get("shelf_location") or ""), ("d", record.get("call_number") or ""),
                             ("s", item["status"])))
    return marc
