"""The central node's decisions on a branch's changes, table by table (no database).

The adversary here is a broken or stolen branch box (ZX) that sends changes it is not
entitled to make: to copies on another branch's shelf (JX), to readers registered elsewhere,
with a clock a year off.
"""

import datetime as dt

import pytest

from library.sync import rules

ZX, JX, XZ = "zx-uuid", "jx-uuid", "xz-uuid"
T = "2026-11-28T02:00:00+00:00"


def copy(**overrides):
    return {"uuid": "c", "record": "r", "barcode": "ZX1", "home_branch": ZX, "current_branch": ZX,
            "status": "available", "due_back": None, "updated_at": T,
            "shelf_location": "绘本区", "item_type": "picture_book", "price_cents": 2980, "acquired_on": None,
            "withdrawn_reason": "", **overrides}


def place(travelling=(), **overrides):
    return rules.Place(item=copy(**overrides), travelling_between=frozenset(travelling))


@pytest.mark.parametrize("where, branch, in_hands", [
    (place(), ZX, True),                                                       # on its shelf
    (place(current_branch=JX), ZX, False),                                     # on JX's shelf
    (place(current_branch=JX, status="on_hold_shelf"), ZX, False),             # on JX's hold shelf
    (place(current_branch=ZX, home_branch=JX, status="on_loan"), ZX, True),    # lent here
    (place(current_branch=JX, home_branch=ZX, status="on_loan"), ZX, True),    # ours, returned here
    (place(current_branch=JX, home_branch=JX, status="on_loan"), ZX, False),   # JX's copy lent at JX
    (place((JX, ZX), current_branch=JX, home_branch=JX, status="in_transit"), ZX, True),   # coming here
    (place((JX, XZ), current_branch=JX, home_branch=JX, status="in_transit"), ZX, False),  # JX to XZ
    (place((ZX, JX), current_branch=ZX, home_branch=JX, status="in_transit"), ZX, True),   # sent from here
])
def test_a_copy_is_in_a_branchs_hands_on_its_shelf_on_loan_from_it_or_travelling_to_or_from_it(where, branch,
                                                                                               in_hands):
    assert rules.in_hands_of(where, branch) is in_hands


@pytest.mark.parametrize("where, made_here, refusal, takes_details", [
    (place(), False, None, True),                                              # on its own shelf, at home
    (place(home_branch=JX), False, None, False),                               # held here, home elsewhere
    (place(home_branch=JX), True, None, True),                                 # made here, rotated away
    (place(current_branch=JX), False, "copy_elsewhere", False),                # on JX's shelf
    (place(current_branch=JX, status="on_loan"), False, None, True),           # ours, returned here
    (place(current_branch=JX, home_branch=JX, status="on_loan"), False, "copy_elsewhere", False),
    (place((JX, ZX), current_branch=JX, status="in_transit", home_branch=JX), False, None, False),
])
def test_the_branch_holding_a_copy_decides_its_circulation(where, made_here, refusal, takes_details):
    image = copy(status="on_loan", due_back="2026-12-20", shelf_location="新书架", home_branch=ZX, record="other",
                 current_branch=ZX)
    decision = rules.copy_change(where, image, ZX, made_here)
    assert decision.refusal == refusal
    if refusal:
        assert decision.row is None
        return
    assert (decision.row["status"], decision.row["due_back"]) == ("on_loan", "2026-12-20")
    assert (decision.row["home_branch"], decision.row["record"]) == (where.item["home_branch"], "r")
    assert (decision.row["shelf_location"] == "新书架") is takes_details


@pytest.mark.parametrize("image, refusal", [
    (copy(), None),
    (copy(home_branch=JX, current_branch=JX), "copy_elsewhere"),     # cataloguing JX's copies
    (copy(home_branch=JX), "copy_elsewhere"),                         # giving JX a copy
    (copy(current_branch=JX), "copy_elsewhere"),
])
def test_a_branch_catalogues_only_copies_of_its_own_on_its_own_shelf(image, refusal):
    assert rules.new_copy(image, ZX).refusal == refusal


def loan(**overrides):
    return {"uuid": "l", "item": "c", "patron": "p", "branch": ZX, "returned_at": None, "renewals": 0,
            "checked_out_at": T, **overrides}


@pytest.mark.parametrize("current, image, where, refusal, resolved, written", [
    (None, loan(), place(status="on_loan"), None, False, True),                      # lent here
    (None, loan(branch=JX), place(status="on_loan"), "not_this_branch", False, False),
    (None, loan(), place(current_branch=JX), "copy_elsewhere", False, False),        # a copy on JX's shelf
    (None, loan(), None, "copy_elsewhere", False, False),                            # a copy nobody has
    (loan(returned_at=T), loan(renewals=1), None, "already_returned", True, False),
    (loan(returned_at="t"), loan(returned_at="t"), None, None, False, False),        # nothing new: nothing to write
    (loan(branch=JX), loan(returned_at="t"), place(current_branch=JX), "not_this_branch", False, False),
    (loan(branch=JX), loan(returned_at="t"), place(current_branch=JX, status="on_loan"), None, False, True),
    (loan(branch=JX), loan(renewals=1), place(current_branch=JX, home_branch=JX, status="on_loan"),
     "not_this_branch", False, False),                                               # renewing JX's loan of JX's copy
])
def test_loan_changes(current, image, where, refusal, resolved, written):
    decision = rules.loan_change(current, image, ZX, where)
    assert (decision.refusal, decision.resolved, decision.row is not None) == (refusal, resolved, written)
    if current is not None and written:
        assert (decision.row["branch"], decision.row["patron"]) == (current["branch"], current["patron"])


def hold(**overrides):
    return {"uuid": "h", "record": "r", "patron": "p", "pickup_branch": ZX, "status": "waiting", "item": None,
            "placed_at": T, "ready_at": None, "expires_on": None, "closed_at": None, "created_by": "",
            "updated_at": T, **overrides}


@pytest.mark.parametrize("current, image, where, refusal", [
    (None, hold(), None, None),                                                       # placed at this desk
    (None, hold(pickup_branch=JX), None, "not_this_branch"),                          # placing JX's holds
    (None, hold(status="ready", item="c"), place(current_branch=JX), "copy_elsewhere"),
    (hold(status="cancelled"), hold(status="in_transit"), None, "hold_closed"),
    (hold(), hold(status="ready", item="c"), place(status="on_hold_shelf"), None),    # trapped here
    (hold(pickup_branch=JX), hold(pickup_branch=JX, status="in_transit", item="c"), place(), None),
    (hold(pickup_branch=JX), hold(pickup_branch=JX, status="cancelled"), None, "not_this_branch"),
    (hold(pickup_branch=JX), hold(pickup_branch=JX, status="in_transit", item="c"), place(current_branch=JX),
     "copy_elsewhere"),
])
def test_hold_changes(current, image, where, refusal):
    decision = rules.hold_change(current, image, ZX, where)
    assert decision.refusal == refusal
    if refusal is None:
        assert decision.row["status"] == image["status"]
        if current is not None:
            assert decision.row["pickup_branch"] == current["pickup_branch"]


def transit(**overrides):
    return {"uuid": "t", "item": "c", "from_branch": ZX, "to_branch": JX, "hold": None, "sent_at": T,
            "received_at": None, "updated_at": T, **overrides}


@pytest.mark.parametrize("current, image, where, refusal, written", [
    (None, transit(), place(status="in_transit"), None, True),
    (None, transit(from_branch=JX), place(status="in_transit"), "not_this_branch", False),
    (None, transit(), place(current_branch=JX), "copy_elsewhere", False),
    (transit(from_branch=JX, to_branch=ZX), transit(from_branch=JX, to_branch=ZX, received_at=T), None, None, True),
    (transit(from_branch=JX, to_branch=XZ), transit(from_branch=JX, to_branch=XZ, received_at=T), None,
     "not_this_branch", False),
    (transit(received_at=T), transit(received_at=None), None, None, False),           # received is final
])
def test_transit_changes(current, image, where, refusal, written):
    decision = rules.transit_change(current, image, ZX, where)
    assert (decision.refusal, decision.row is not None) == (refusal, written)


def reader(**overrides):
    return {"uuid": "p", "card_number": "ZX1", "name": "王芳", "birth_date": None, "category": "adult",
            "home_branch": ZX, "phone": "", "email": "", "language": "zh_CN", "expires_on": "2027-01-01",
            "block_reason": None, "pin_hash": "$argon2id$old", "created_at": T, "updated_at": T, **overrides}


def test_a_branch_edits_only_its_own_readers_and_only_the_desks_fields():
    edit = reader(name="王芳芳", phone="13800000000", card_number="NEW", home_branch=JX, pin_hash="$argon2id$new",
                  updated_at="2030-01-01T00:00:00+00:00")
    taken = rules.reader_change(reader(), edit, ZX, concurrent=False).row
    assert (taken["name"], taken["phone"]) == ("王芳芳", "13800000000")
    assert (taken["card_number"], taken["home_branch"], taken["pin_hash"]) == ("ZX1", ZX, "$argon2id$old")
    assert rules.reader_change(reader(home_branch=JX), edit, ZX, concurrent=False).refusal == "reader_elsewhere"
    # another branch's reader sent back as the branch has it (contacts withheld, a PIN set): no edit, no conflict
    as_held = reader(home_branch=JX, phone="", email="", pin_hash="$argon2id$new", updated_at="2030-01-01T00:00:00+00:00")
    untouched = rules.reader_change(reader(home_branch=JX, phone="138", email="a@b.c"), as_held, ZX, concurrent=False)
    assert (untouched.row, untouched.refusal) == (None, None)
    assert rules.reader_change(reader(), edit, ZX, concurrent=True).refusal == "concurrent_edit"
    assert rules.new_reader(reader(), ZX).row is not None
    assert rules.new_reader(reader(home_branch=JX), ZX).refusal == "reader_elsewhere"


def test_pins_and_guardians_of_a_reader_are_for_the_branches_that_serve_them():
    assert rules.pin_change_allowed(reader(), ZX, holds_verifier=False).refusal is None
    assert rules.pin_change_allowed(reader(home_branch=JX), ZX, holds_verifier=True).refusal is None
    assert rules.pin_change_allowed(reader(home_branch=JX), ZX, holds_verifier=False).refusal == "reader_elsewhere"
    assert rules.guardian_link_allowed(reader(), ZX).refusal is None
    assert rules.guardian_link_allowed(reader(home_branch=JX), ZX).refusal == "reader_elsewhere"
    assert rules.guardian_link_allowed(None, ZX).refusal == "reader_elsewhere"


@pytest.mark.parametrize("latest, seen, writer, concurrent", [
    (None, 0, None, False),            # never changed centrally
    (10, 10, None, False),             # the branch had read it
    (11, 10, None, True),              # changed centrally after the branch read the log
    (11, 10, (ZX, 11), False),         # changed last by this branch's own upload
    (12, 10, (ZX, 11), True),          # ... and then centrally
    (11, 10, (JX, 11), True),          # changed last by another branch
])
def test_a_concurrent_edit_is_told_by_the_log_not_by_a_clock(latest, seen, writer, concurrent):
    assert rules.is_concurrent(latest, seen, writer, ZX) is concurrent


def test_a_branchs_timestamps_are_never_taken_beyond_the_central_clock():
    now = dt.datetime(2026, 12, 7, 4, 0, tzinfo=dt.timezone.utc)
    latest = now + dt.timedelta(minutes=5)
    year_ahead = (now + dt.timedelta(days=365)).isoformat()
    year_behind = (now - dt.timedelta(days=365)).isoformat()
    image = {"updated_at": year_ahead, "checked_out_at": year_behind, "returned_at": None, "name": "x"}
    clamped, ahead = rules.clamp_times(image, ("updated_at", "checked_out_at", "returned_at"), latest)
    assert clamped["updated_at"] == latest.isoformat() and clamped["checked_out_at"] == year_behind
    assert ahead == pytest.approx((365 * 86400) - 300)
    assert image["updated_at"] == year_ahead, "the branch's image is not changed in place"
    same, none_ahead = rules.clamp_times({"updated_at": year_behind}, ("updated_at",), latest)
    assert none_ahead == 0 and same["updated_at"] == year_behind
