"""The import's own ISO 2709 reader gives what pymarc gives: the same records, converted the same,
and the same positions and reasons for what cannot be read. No database."""

import datetime as dt
import io
import re

import pymarc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymarc import Field, Subfield

from library.catalog import conversion, marc
from tests.marc_samples import cnmarc, iso2709, marc21


def pymarc_reading(data: bytes) -> list[tuple[int, object, str]]:
    reader = pymarc.MARCReader(io.BytesIO(data), to_unicode=True, force_utf8=marc._looks_like_utf8(data),
                               utf8_handling="replace", permissive=True, hide_utf8_warnings=True)
    found = []
    for position, record in enumerate(reader, start=1):
        error = reader.current_exception
        found.append((position, record, "" if record else f"{type(error).__name__}: {error}".strip()))
    return found


def marc8(title: str) -> bytes:
    record = marc21(title, control="M8")
    record.leader = record.leader[:9] + " " + record.leader[10:]
    record.force_utf8 = False
    buffer = io.BytesIO()
    pymarc.MARCWriter(buffer).write(record)
    return buffer.getvalue()


GOOD = iso2709(
    marc21("好饿的毛毛虫", isbns=["9787533278267 (精装)", "7533259599"], author="卡尔, 艾瑞",
           holdings=[{"a": "ZX", "b": "JX", "p": "ZX900001", "y": "picture_book", "g": "29.80", "d": "2026-03-01"}],
           extra=[Field(tag="008", data="000000s2008    xx            000 1 chi d"),
                  Field(tag="521", indicators=["1", " "], subfields=[Subfield("a", "2-6")]),
                  Field(tag="650", indicators=[" ", "4"], subfields=[Subfield("a", "昆虫.")])]),
    marc21("Where the Wild Things Are", isbns=["0060254920 (lib. bdg.)"]),
    marc21("无 ISBN 的社区自编绘本", control="ZX-LOCAL-0001"),
    cnmarc("猜猜我有多爱你", "978-7-5332-5959-4", holdings=[{"a": "JX", "b": "JX0000123", "d": "I561.85/M"}]),
)
BODY = b"garbage that is no directory\x1e\x1d"
NO_DIRECTORY = f"{24 + len(BODY):05d}nam a2200037 i 4500".encode() + BODY  # right length, no directory
BAD_UTF8 = GOOD[:GOOD.index(b"\x1d") + 1].replace("好饿".encode(), b"\xff\xfe\xfd\xfc\xfb\xfa")
FILES = {
    "good": GOOD,
    "broken in the middle": GOOD + NO_DIRECTORY + iso2709(marc21("", isbns=["9787533259594"])) + GOOD,
    "truncated": GOOD[:-40],
    "bad length": GOOD + b"abcde" + GOOD,
    "no record terminator": GOOD[:-1] + b"x" + GOOD,
    "bad utf-8 bytes": BAD_UTF8 + GOOD,
    "marc-8": marc8("Cafe\u0301 stories") + marc8("Second"),
    "nothing but a leader": GOOD + b"00024nam a2200025 i 4500",
    "a letter tag (Aleph's CAT)": iso2709(marc21("有 CAT 字段", control="A1", extra=[
        Field(tag="CAT", indicators=[" ", " "], subfields=[Subfield("a", "BATCH")])])) + GOOD,
}


@pytest.mark.parametrize("name", [name for name in FILES if name != "bad utf-8 bytes"])
def test_the_reader_reads_as_pymarc_does(name):
    data = FILES[name]
    ours = list(marc.read_marc(data))
    theirs = pymarc_reading(data)
    assert [(p, r is None, reason) for p, r, reason in ours] == [(p, r is None, reason) for p, r, reason in theirs]
    for (_, mine, _), (_, reference, _) in zip(ours, theirs):
        if reference is not None:
            flavour = marc.detect_flavour(reference)
            assert marc.detect_flavour(mine) == flavour
            assert marc.convert(mine, flavour) == marc.convert(reference, flavour)


def test_a_record_whose_bytes_are_no_character_set_is_refused_not_stored_as_garbage():
    """pymarc replaces the bad bytes with U+FFFD and reads on; the catalogue would then hold a
    title of question marks. Ours refuses that one record, says which field, and reads the rest."""
    ours = list(marc.read_marc(FILES["bad utf-8 bytes"]))
    assert [(p, r is None) for p, r, _ in ours] == [(1, True), *[(p, False) for p in range(2, len(ours) + 1)]]
    assert "245" in ours[0][2] and "\ufffd" not in ours[1][1]["245"].get_subfields("a")[0]
    theirs = pymarc_reading(FILES["bad utf-8 bytes"])
    assert "\ufffd" in theirs[0][1]["245"]["a"]  # what we refuse to store


def test_the_fast_path_is_taken_for_utf8_records():
    assert all(isinstance(record, marc.LightRecord) for _, record, _ in marc.read_marc(GOOD))


def test_a_converted_chunk_carries_rows_in_column_order_and_copies_placed_at_branches_after():
    frames = list(conversion.iso2709_frames(io.BytesIO(FILES["broken in the middle"])))
    entries, refusals, read, seen = conversion.convert_chunk(frames, 1, "auto", dt.date(2026, 11, 28))
    assert (read, seen, [r.position for r in refusals]) == (len(frames), "marc21", [5, 6])
    entry = entries[0]
    values = dict(zip(conversion.ROW_COLUMNS, entry.row))
    assert (entry.position, values["isbn13"], values["control_number"]) == (1, "9787533278267", None)
    assert values["title"] == "好饿的毛毛虫" and values["other_isbns"] == '["9787533259594"]'
    assert values["contributors"] == '[{"name": "卡尔, 艾瑞", "role": "author"}]'
    assert len(values["uuid"]) == 36 and values["search_text"]
    assert values["marc_format"] == "marc21" and values["marc_source"] == "import #1" and values["marc"]
    # The bytes of a record are found again where the file holds them.
    assert FILES["broken in the middle"][entry.offset:entry.offset + entry.length] == frames[0][1]
    holdings = entry.holdings
    assert [h[1:] for h in holdings] == [("ZX900001", "ZX", "JX", "", "picture_book", "available", 2980,
                                          dt.date(2026, 3, 1))]
    assert entries[3].holdings[0][1:4] == ("JX0000123", "JX", "JX")
    # Branch codes become ids; an unknown home goes to the default, or the copy is left out.
    first_uuid = holdings[0][0]
    conversion.place_copies(entries, {"ZX": 1, "JX": 2}, None)
    assert holdings[0][:4] == (first_uuid, "ZX900001", 1, 2) and entries[3].holdings[0][1:4] == ("JX0000123", 2, 2)
    unknown = [conversion.Entry(0, 0, 0, entry.keys, (), [
        ("u1", "B1", "XX", "", "", "book", "available", None, None),
        ("u2", "B2", "ZX", "XX", "", "book", "available", None, None)], [])]
    placed = conversion.place_copies(unknown, {"ZX": 1}, None)[0]
    assert [h[1:4] for h in placed.holdings] == [("B2", 1, 1)] and "B1" in str(placed.warnings[0])
    unknown[0].holdings[:] = [("u1", "B1", "XX", "", "", "book", "available", None, None)]
    assert [h[1:4] for h in conversion.place_copies(unknown, {"ZX": 1, "JX": 2}, 2)[0].holdings] == [("B1", 2, 2)]


@given(st.text(alphabet=" \t\n\u3000\xa0\x1f/:;,=.-a题", max_size=12))
def test_trim_cuts_isbd_punctuation_as_the_pattern_says(text):
    # The pattern it replaced: spaces and / : ; , = . at the end in any mix, then spaces at the start.
    assert marc._trim(text) == re.sub(r"[\s/:;,=.]+$", "", text).strip()


def test_what_pymarc_warns_about_goes_into_the_records_report_not_the_terminal(capfd, caplog):
    """A vendor's record whose 264 lost its indicators: pymarc reads it and logs a warning to
    stderr. The import reads it too, and says so in the record's own report, not on stderr."""
    whole = iso2709(marc21("缺指示符的书", control="NO-IND"))
    head = whole.index(b"\x1e", 24) + 1  # the field data starts after the directory
    broken = whole[:head] + whole[head:].replace(b" 1\x1fb", b"\x1fb", 1)
    base = int(broken[12:17])
    # Put the directory right: 264 is one byte shorter, and so is the record.
    directory, body = broken[24:base - 1].decode(), broken[base:]
    entries = [directory[i:i + 12] for i in range(0, len(directory), 12)]
    fixed, shift = [], 0
    for entry in entries:
        tag, length, offset = entry[:3], int(entry[3:7]), int(entry[7:])
        if tag == "264":
            length -= 1
            fixed.append(f"{tag}{length:04d}{offset:05d}")
            shift = -1
        else:
            fixed.append(f"{tag}{length:04d}{offset + shift if offset else offset:05d}" if shift else entry)
    data = f"{len(broken):05d}".encode() + broken[5:24] + "".join(fixed).encode() + b"\x1e" + body
    caplog.clear()
    [(_, record, reason)] = list(marc.read_marc(data))
    assert record is not None, reason
    assert record["264"].indicators == "  " and record["264"].get_subfields("b") == ["明天出版社,"]
    assert [str(note) for note in record.notes] == ['Field 264 has 0 indicators instead of two: read as "  ".']
    assert capfd.readouterr().err == "" and not caplog.records
    frames = list(conversion.iso2709_frames(io.BytesIO(data)))
    entry = conversion.convert_chunk(frames, 1, "auto", dt.date(2026, 12, 7)).entries[0]
    assert [str(w) for w in entry.warnings] == ['Field 264 has 0 indicators instead of two: read as "  ".']
    # A subfield code that is no ASCII letter is left to pymarc, whose warning becomes a note too.
    odd = data.replace(b"\x1fc2008.", b"\x1f\xc3\xa9008.", 1)  # "é" as the code; same length
    [(_, repaired, reason)] = list(marc.read_marc(odd))
    assert repaired is not None, reason
    assert any("BadSubfieldCodeWarning" in note for note in repaired.notes)
    assert capfd.readouterr().err == "" and not caplog.records


@given(st.sampled_from(["978", "979", "123"]), st.text(alphabet="0123456789", min_size=10, max_size=10),
       st.text(alphabet="0123456789 -X()精装pbk.\t９", max_size=10))
def test_an_isbn_with_a_qualifier_is_read_as_isbns_in_reads_it(prefix, digits, qualifier):
    """marc._isbns_of reads "9787544254588 (精装)" without isbns_in's search: the same ISBNs."""
    from library.catalog.isbn import isbns_in

    value = f"{prefix}{digits} {qualifier}"
    assert marc._isbns_of(value) == isbns_in(value)
    valid = f"9787544254588 {qualifier}"
    assert marc._isbns_of(valid) == isbns_in(valid)
