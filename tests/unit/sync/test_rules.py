"""The central node's decisions on a branch's changes, table by table (no database)."""

import pytest

from library.sync import rules

ZX, JX = "zx-uuid", "jx-uuid"


def copy(**overrides):
    return {"uuid": "c", "record": "r", "barcode": "ZX1", "home_branch": ZX, "current_branch": ZX,
            "status": "available", "due_back": None, "updated_at": "2026-11-28T02:00:00+00:00",
            "shelf_location": "绘本区", "item_type": "picture_book", "price_cents": 2980, "acquired_on": None,
            "withdrawn_reason": "", **overrides}


@pytest.mark.parametrize("current, branch, made_here, refusal, takes_details", [
    (copy(), ZX, False, None, True),                                               # on its own shelf, at home
    (copy(home_branch=JX), ZX, False, None, False),                                # held here, home elsewhere
    (copy(home_branch=JX), ZX, True, None, True),                                  # made here, rotated away
    (copy(current_branch=JX), ZX, False, "copy_elsewhere", False),                 # on JX's shelf
    (copy(current_branch=JX, status="on_loan"), ZX, False, None, True),            # returned here
    (copy(current_branch=JX, status="in_transit", home_branch=JX), ZX, False, None, False),
])
def test_the_branch_holding_a_copy_decides_its_circulation(current, branch, made_here, refusal, takes_details):
    image = copy(status="on_loan", due_back="2026-12-20", shelf_location="新书架", home_branch=branch, record="other",
                 current_branch=branch)
    decision = rules.copy_change(current, image, branch, made_here)
    assert decision.refusal == refusal
    if refusal:
        assert decision.row is None
        return
    assert (decision.row["status"], decision.row["due_back"]) == ("on_loan", "2026-12-20")
    assert (decision.row["home_branch"], decision.row["record"]) == (current["home_branch"], "r")
    assert (decision.row["shelf_location"] == "新书架") is takes_details


def loan(**overrides):
    return {"uuid": "l", "item": "c", "patron": "p", "branch": ZX, "returned_at": None, "renewals": 0,
            **overrides}


@pytest.mark.parametrize("current, image, item, refusal, resolved, written", [
    (None, loan(), None, None, False, True),
    (None, loan(branch=JX), None, "not_this_branch", False, False),
    (loan(returned_at="2026-11-28T02:00:00+00:00"), loan(renewals=1), None, "already_returned", True, False),
    (loan(returned_at="t"), loan(returned_at="t"), None, None, False, False),      # nothing new: nothing to write
    (loan(branch=JX), loan(returned_at="t"), copy(current_branch=JX), "not_this_branch", False, False),
    (loan(branch=JX), loan(returned_at="t"), copy(current_branch=JX, status="on_loan"), None, False, True),
])
def test_loan_changes(current, image, item, refusal, resolved, written):
    decision = rules.loan_change(current, image, ZX, item)
    assert (decision.refusal, decision.resolved, decision.row is not None) == (refusal, resolved, written)
    if current is not None and written:
        assert (decision.row["branch"], decision.row["patron"]) == (current["branch"], current["patron"])


def test_a_closed_hold_stays_closed_and_the_newer_reader_edit_wins():
    assert rules.hold_change({"status": "cancelled"}, {"status": "in_transit"}).refusal == "hold_closed"
    assert rules.hold_change({"status": "waiting"}, {"status": "ready"}).row == {"status": "ready"}
    assert rules.hold_change(None, {"status": "waiting"}).row == {"status": "waiting"}
    older, newer = {"updated_at": "2026-11-28T01:00:00+00:00"}, {"updated_at": "2026-11-28T02:00:00+00:00"}
    assert rules.reader_change(older, newer).row == newer
    assert rules.reader_change(newer, older).row is None
