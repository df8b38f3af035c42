"""Self-check decisions about the machine (library.selfcheck.rules), as tables: no database."""

from __future__ import annotations

import pytest

from library.selfcheck.rules import outcome_counts


@pytest.mark.parametrize(("code", "fixed", "failed", "counted"), [
    ("12", ["1", "N", "N", "Y", "date"], False, [("checkout", 1)]),
    ("12", ["0", "N", "U", "N", "date"], False, [("refusal", 1)]),
    ("10", ["1", "Y", "N", "N", "date"], False, [("checkin", 1)]),
    ("10", ["0", "N", "U", "Y", "date"], False, [("refusal", 1)]),
    ("30", ["1", "Y", "N", "N", "date"], False, [("renewal", 1)]),
    ("30", ["0", "N", "U", "N", "date"], False, [("refusal", 1)]),
    ("66", ["1", "0002", "0001", "date"], False, [("renewal", 2), ("refusal", 1)]),
    ("66", ["1", "0000", "0000", "date"], False, []),
    ("66", ["0", "0000", "0000", "date"], False, [("refusal", 1)]),
    ("12", ["0", "N", "U", "N", "date"], True, [("error", 1)]),
    ("94", ["0"], True, [("error", 1)]),
    ("24", [" " * 14, "019", "date"], False, []),
    ("18", ["03", "00", "01", "date"], False, []),
])
def test_what_one_answer_adds_to_its_machines_day(code, fixed, failed, counted):
    assert outcome_counts(code, fixed, failed) == counted
