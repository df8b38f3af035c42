"""Checksums and field layout against the examples printed in the 3M SIP2 specification (2.00).

The examples are copied as the specification prints them. Some of its printed checksums do
not add up over the message as printed (its typesetting collapsed runs of blanks in the dates:
the checkin example "09N19980821 085721APCertification..." ends in AZEB80 as often quoted,
but only the 18-character dates with the 18-blank return date give a checksum of the bytes,
D6A5, which is what this suite checks). Those that add up are used here, verbatim.
"""

from __future__ import annotations

import datetime as dt

import pytest

from library.selfcheck import protocol, rules
from library.selfcheck.protocol import ChecksumError, Message, ProtocolError, format_message, parse

# (message as printed, whether the specification's checksum adds up over it)
SPEC_EXAMPLES = [
    "09N19980821    085721                  APCertification Terminal Location|AOCertification Institute ID|"
    "ABCheckInBook|ACTPWord|BIN|AY2AZD6A5",
    "1719980723    100000AOCertification Institute ID|ABItemBook|AY1AZEBEB",
    "3519980723    094014AOCertification Institute ID|AAPatronID|AY3AZEBF2",
    "941AY3AZFDFA",
    "1808000119980723    115615CF00000|ABItemBook|AJTitle For Item Book|CK003|AQPermanent Location for ItemBook, "
    "Language 1|APCurrent Location ItemBook|CHFree-form text with new item property|AY0AZC05B",
    "36Y19980723    110658AOInstitutionID for PatronID|AAPatronID|AFScreenMessage 0 for PatronID, Language 1|"
    "AFScreen Message 1 for PatronID, Language 1|AFScreen Message 2 for PatronID, Language 1|AGPrint Line 0 for "
    "PatronID, Language 1|AGPrint Line 1 for PatronID, Language 1|AGPrint Line 2 for PatronID, language 1|AY5AZ970F",
]


@pytest.mark.parametrize("example", SPEC_EXAMPLES, ids=lambda example: example[:2])
def test_the_specifications_checksums(example):
    body, given = example[:-4], example[-4:]
    assert protocol.checksum(body.encode("ascii")) == given
    parse(example.encode("ascii"))  # and it is accepted as it stands


def test_the_often_quoted_checkin_checksum_does_not_add_up():
    # "EB80" belongs to another message (one with a return date and different fields); over the
    # example with its dates collapsed, the checksum is D945.
    quoted = "09N19980821 085721APCertification Terminal Location|AOCertification Institute ID|" \
             "ABCheckInBook|ACTPWord|BIN|AY2AZEB80"
    with pytest.raises(ChecksumError):
        parse(quoted.encode("ascii"))
    assert protocol.checksum(quoted[:-4].encode("ascii")) == "D945"


def test_checkin_request_fields_in_their_positions():
    message = parse(SPEC_EXAMPLES[0].encode("ascii"))
    assert message.code == "09" and message.sequence == "2" and message.error_detection
    assert message.fixed == {"no_block": "N", "transaction_date": "19980821    085721", "return_date": " " * 18}
    assert message.fields == [("AP", "Certification Terminal Location"), ("AO", "Certification Institute ID"),
                              ("AB", "CheckInBook"), ("AC", "TPWord"), ("BI", "N")]


def test_item_information_response_fields_in_their_positions():
    message = parse(SPEC_EXAMPLES[4].encode("ascii"))
    assert message.fixed == {"circulation_status": "08", "security_marker": "00", "fee_type": "01",
                             "transaction_date": "19980723    115615"}
    assert message.get("CF") == "00000" and message.get("CK") == "003" and message.get("AJ") == "Title For Item Book"


@pytest.mark.parametrize("example", [SPEC_EXAMPLES[4], SPEC_EXAMPLES[5], SPEC_EXAMPLES[3]], ids=["18", "36", "94"])
def test_formatting_reproduces_the_specifications_answers_byte_for_byte(example):
    message = parse(example.encode("ascii"))
    fixed = list(message.fixed.values())
    assert format_message(message.code, fixed, message.fields, message.sequence, True) == \
        example.encode("ascii") + b"\r"


def test_a_message_without_error_detection():
    raw = format_message("94", ["1"])
    assert raw == b"941\r"
    message = parse(raw)
    assert not message.error_detection and message.sequence is None and message.fixed == {"ok": "1"}


def test_sequence_without_checksum_is_read():
    message = parse(b"9900802.00AY4")
    assert message.sequence == "4" and not message.error_detection
    assert message.fixed == {"status_code": "0", "max_print_width": "080", "protocol_version": "2.00"}


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
def test_chinese_text_in_either_encoding(encoding):
    raw = format_message("36", ["Y", "20261207    100000"], [("AO", "ZX"), ("AF", "感谢光临，再见！")], "3", True,
                         encoding)
    assert "感谢光临".encode(encoding) in raw
    assert parse(raw, encoding).get("AF") == "感谢光临，再见！"
    # The checksum is over the bytes that travel.
    assert raw[-5:-1].decode() == protocol.checksum(raw[:-5])


def test_a_checksum_over_characters_is_accepted_too():
    # Some clients (the Sip2 library among them) sum characters, not bytes: for ASCII the same.
    text = "9300CNzx|COsecret|CP一楼|AY0AZ"
    by_characters = format(-sum(map(ord, text)) & 0xFFFF, "04X")
    message = parse((text + by_characters).encode("utf-8"))
    assert message.get("CP") == "一楼"


@pytest.mark.parametrize("raw, reason", [
    (b"XX garbage", "unknown_message"),
    (b"\x00\x01\x02", "control_character"),
    (b"09N1998", "short_fixed_field"),
    (b"09Nnot-a-date-at-all----------------APx|", "bad_date"),
    (b"9900802.00|garbage without an id", "bad_field"),
    (b"9300CN\xff\xfe|", "encoding"),
    (b"9300CNa|COb|AY1AZ0000", "checksum"),
])
def test_malformed_messages(raw, reason):
    with pytest.raises(ProtocolError) as refused:
        parse(raw)
    assert refused.value.reason == reason


def test_renew_all_without_its_transaction_date_is_read():
    # The Sip2 client library sends 65 without the date; the other fields are what matter.
    message = parse(b"65AOZX|AAZX10000001|ADsecret|AC|BON|")
    assert message.get("AA") == "ZX10000001" and message.fixed == {"transaction_date": ""}


def test_fixed_fields_of_the_wrong_length_are_a_bug():
    with pytest.raises(ValueError):
        format_message("94", ["10"])


def test_values_cannot_break_the_framing():
    raw = format_message("36", ["Y", "20261207    100000"], [("AF", "a|b\rc\nd"), ("AG", "x" * 300)])
    message = parse(raw)
    assert message.get("AF") == "a b c d" and len(message.get("AG")) == protocol.FIELD_LIMIT


def test_dates_are_local_time_of_the_branch():
    moment = dt.datetime(2026, 12, 7, 2, 30, 5, tzinfo=dt.timezone.utc)
    assert protocol.sip_datetime(moment, "Asia/Shanghai") == "20261207    103005"
    assert protocol.sip_due_date(dt.date(2026, 12, 28)) == "20261228    235959"


@pytest.mark.parametrize("codes, flags", [
    ([], " " * 14),
    (["card_expired"], "YYYY" + " " * 10),
    (["card_blocked", "loan_limit"], "YYYY Y" + " " * 8),
    (["loan_limit"], "Y    Y" + " " * 8),
])
def test_patron_status_flags(codes, flags):
    assert rules.patron_status(codes) == flags


@pytest.mark.parametrize("route, alert", [("shelve", None), ("hold_shelf", "01"), ("hold_transit", "02"),
                                          ("transit_home", "04"), ("still_in_transit", "04")])
def test_checkin_alert_types(route, alert):
    assert rules.checkin_alert(route) == alert


def test_supported_messages_follow_the_kiosks_allowance():
    assert rules.supported_messages(frozenset(rules.OPTIONAL_MESSAGES)) == "YYYNYYYYYNYNNYYY"
    assert rules.supported_messages(frozenset({"09"})) == "NNYNYYYNYNNNNNNN"


@pytest.mark.parametrize("start, end, total, expected", [
    ("1", "5", 10, (0, 5)), ("", "", 3, (0, 3)), ("3", "2", 10, (2, 3)), ("x", "y", 100, (0, 50)),
    ("8", "20", 10, (7, 10)),
])
def test_item_range(start, end, total, expected):
    assert rules.item_range(start, end, total) == expected


def test_message_accessors():
    message = Message("64", fields=[("AU", "a"), ("AU", "b"), ("AE", "")])
    assert message.all("AU") == ["a", "b"] and message.get("AE", "x") == "" and not message.has("AS")
