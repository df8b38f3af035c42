"""A hostile branch: a broken or stolen ZX box uploads what ZX is not entitled to change.

One database acts as the central node (the demo network: JX, ZX, XZ). For every kind of
change a branch uploads, an upload ZX may not make is refused with its reason, recorded as
a conflict with what ZX asked for, and changes nothing at the central node — checked by
reading every replicated table before and after. The rest of an upload still applies.
Also here: the branch's clock (a year ahead, a year behind), PIN changes as their own
operation, and which readers' secrets the feed gives a branch.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from typing import Any

import pytest

from library.accounts.hashing import hash_secret, verify_secret
from library.accounts.tables import Patron, PinChange
from library.branches.tables import AuditEntry, Branch
from library.catalog.tables import Item, Record
from library.demo import load_demo
from library.loans import service as loans
from library.loans.tables import Hold, Loan
from library.sync import feed
from library.sync.apply import UploadClock, apply_upload, parse_upload
from library.sync.entities import KINDS, images_of
from library.sync.tables import SyncConflict
from tests.sync.worker import _desk

TODAY = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.timezone.utc)
REPLICATED = ("patron", "guardian_link", "pin_change", "record", "item", "loan", "hold", "transit", "transfer")


async def _branch(code: str) -> dict[str, Any]:
    row = (await Branch.raw("SELECT id, uuid, code FROM branch WHERE code = {}", code))[0]
    return {"id": row["id"], "uuid": str(row["uuid"]), "code": code}


@pytest.fixture
async def world() -> dict[str, Any]:
    await load_demo(TODAY)
    zx, jx, xz = await _branch("ZX"), await _branch("JX"), await _branch("XZ")
    on_jx_shelf = await _copy_where("current_branch = {} AND status = 'available'", jx["id"])
    # a JX copy lent at JX's desk (the demo lends at ZX only)
    lent = await _copy_where("current_branch = {} AND status = 'available' AND uuid != {}", jx["id"], on_jx_shelf)
    barcode = (await Item.select(Item.barcode).where(Item.uuid == lent).first())["barcode"]
    jx_loan = (await loans.checkout(_desk(), "JX", "JX20000001", barcode, NOW)).loan_uuid
    return {"ZX": zx, "JX": jx, "XZ": xz, "on_jx_shelf": on_jx_shelf, "jx_loan": jx_loan, "lent_at_jx": lent,
            "on_zx_shelf": await _copy_where("current_branch = {} AND status = 'available'", zx["id"]),
            "jx_reader": await _reader("JX20000001"), "xz_reader": await _reader("XZ30000001"),
            "zx_reader": await _reader("ZX10000004"), "jx_hold": str((await Hold.select(Hold.uuid).first())["uuid"])}


async def _copy_where(where: str, *args: Any) -> str:
    return str((await Item.raw(f"SELECT uuid FROM item WHERE {where} ORDER BY id LIMIT 1", *args))[0]["uuid"])


async def _reader(card: str) -> str:
    return str((await Patron.select(Patron.uuid).where(Patron.card_number == card).first())["uuid"])


async def _image(kind: str, entity: str) -> dict[str, Any]:
    return copy.deepcopy((await images_of(KINDS[kind], [entity]))[entity])


async def _central_state() -> dict[str, list]:
    """Every row of every replicated table (and the audit trail), as the central node holds them."""
    state = {}
    for kind in REPLICATED:
        state[kind] = [tuple(sorted((k, str(v)) for k, v in row.items()))
                       for row in await Branch.raw(f"SELECT * FROM {KINDS[kind].table_name} ORDER BY id")]
    state["audit"] = await AuditEntry.count()
    return state


async def _upload(branch: dict[str, Any], *changes: dict[str, Any], clock: UploadClock | None = None,
                  now: dt.datetime | None = None) -> dict[str, Any]:
    """`now`: the central node's clock (the demo's rows were written a moment ago, in real time)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    upload, parsed = parse_upload({"uuid": str(uuid.uuid4()), "changes": list(changes)})
    if clock is None:
        clock = UploadClock(seen_through=await _log_position())
    return await apply_upload(branch, upload, parsed, clock, now)


async def _log_position() -> int:
    return int((await Branch.raw("SELECT MAX(seq) AS s FROM sync_change"))[0]["s"] or 0)


def change(kind: str, image: dict[str, Any] | None, entity: str | None = None) -> dict[str, Any]:
    return {"kind": kind, "uuid": entity or image["uuid"], "image": image}


def loan_image(world, item: str, patron: str, branch: str, **overrides) -> dict[str, Any]:
    return {"uuid": str(uuid.uuid4()), "item": item, "patron": patron, "patron_category": "adult",
            "branch": branch, "rule": None, "rule_scope": "*|*|*", "checked_out_at": NOW.isoformat(),
            "due_on": "2026-12-26", "due_at": "2026-12-26T15:59:59+00:00", "renewals": 0, "last_renewed_at": None,
            "returned_at": None, "returned_branch": None, "days_overdue_at_return": 0, "fine_cents": 0,
            "overrides": [], "created_by": "branch desk", "updated_at": NOW.isoformat(), **overrides}


# --- what a hostile ZX box tries, kind by kind ------------------------------------------------


async def lend_a_copy_on_jxs_shelf(w):
    item = await _image("item", w["on_jx_shelf"])
    loan = loan_image(w, item["uuid"], w["zx_reader"], w["ZX"]["uuid"])
    return [change("item", {**item, "status": "on_loan", "current_branch": w["ZX"]["uuid"]}),
            change("loan", loan)], {"item": "copy_elsewhere", "loan": "copy_elsewhere"}


async def lend_it_without_touching_the_copy(w):
    loan = loan_image(w, w["on_jx_shelf"], w["zx_reader"], w["ZX"]["uuid"])
    return [change("loan", loan)], {"loan": "copy_elsewhere"}


async def open_a_loan_in_jxs_name(w):
    loan = loan_image(w, w["on_zx_shelf"], w["zx_reader"], w["JX"]["uuid"])
    return [change("loan", loan)], {"loan": "not_this_branch"}


async def return_jxs_loan(w):
    loan = await _image("loan", w["jx_loan"])
    return [change("loan", {**loan, "returned_at": NOW.isoformat(), "returned_branch": w["ZX"]["uuid"]})], \
        {"loan": "not_this_branch"}


async def renew_jxs_loan(w):
    loan = await _image("loan", w["jx_loan"])
    return [change("loan", {**loan, "renewals": 1, "due_on": "2027-03-01"})], {"loan": "not_this_branch"}


async def delete_jxs_loan(w):
    return [change("loan", None, w["jx_loan"])], {"loan": "not_this_branch"}


async def mark_jxs_copy_lost(w):
    item = await _image("item", w["on_jx_shelf"])
    return [change("item", {**item, "status": "lost"})], {"item": "copy_elsewhere"}


async def catalogue_a_copy_into_jx(w):
    item = await _image("item", w["on_zx_shelf"])
    new = {**item, "uuid": str(uuid.uuid4()), "barcode": "JX-FAKE-0001", "home_branch": w["JX"]["uuid"],
           "current_branch": w["JX"]["uuid"]}
    return [change("item", new)], {"item": "copy_elsewhere"}


async def place_a_hold_for_pickup_at_jx(w):
    record = (await Item.select(Item.record.uuid).where(Item.uuid == w["on_zx_shelf"]).first())["record.uuid"]
    hold = {"uuid": str(uuid.uuid4()), "record": str(record), "patron": w["xz_reader"],
            "pickup_branch": w["JX"]["uuid"], "status": "waiting", "placed_at": NOW.isoformat(), "item": None,
            "ready_at": None, "expires_on": None, "closed_at": None, "created_by": "", "updated_at": NOW.isoformat()}
    return [change("hold", hold)], {"hold": "not_this_branch"}


async def cancel_a_hold_waiting_at_jx(w):
    hold = await _image("hold", w["jx_hold"])
    return [change("hold", {**hold, "status": "cancelled", "closed_at": NOW.isoformat()})], {"hold": "not_this_branch"}


async def trap_jxs_copy_for_a_hold(w):
    hold = await _image("hold", w["jx_hold"])
    return [change("hold", {**hold, "status": "in_transit", "item": w["on_jx_shelf"]})], {"hold": "copy_elsewhere"}


async def send_jxs_copy_on_a_journey(w):
    transit = {"uuid": str(uuid.uuid4()), "item": w["on_jx_shelf"], "from_branch": w["JX"]["uuid"],
               "to_branch": w["ZX"]["uuid"], "hold": None, "sent_at": NOW.isoformat(), "received_at": None,
               "updated_at": NOW.isoformat()}
    return [change("transit", transit)], {"transit": "not_this_branch"}


async def register_a_reader_into_jx(w):
    reader = await _image("patron", w["jx_reader"])
    new = {**reader, "uuid": str(uuid.uuid4()), "card_number": "JX29999999", "name": "假读者"}
    return [change("patron", new)], {"patron": "reader_elsewhere"}


async def rewrite_a_jx_reader_with_a_future_timestamp(w):
    reader = await _image("patron", w["jx_reader"])
    forged = {**reader, "name": "被改名", "pin_hash": await hash_secret("999999"),
              "updated_at": "2030-01-01T00:00:00+00:00"}
    # the 2030 timestamp also tells staff the box's clock is far ahead
    return [change("patron", forged)], {"patron": "reader_elsewhere", "upload": "clock_skew"}


async def set_a_jx_readers_pin(w):
    pin = {"uuid": str(uuid.uuid4()), "patron": w["jx_reader"], "branch": None, "set_by": "reader",
           "set_at": NOW.isoformat(), "pin_hash": await hash_secret("999999")}
    return [change("pin_change", pin)], {"pin_change": "reader_elsewhere"}


async def make_itself_guardian_of_an_xz_reader(w):
    link = {"uuid": str(uuid.uuid4()), "guardian": await _reader("ZX10000001"), "child": w["xz_reader"],
            "relationship": "mother", "created_at": NOW.isoformat()}
    return [change("guardian_link", link)], {"guardian_link": "reader_elsewhere"}


async def delete_a_jx_reader(w):
    return [change("patron", None, w["jx_reader"])], {"patron": "reader_elsewhere"}


async def retitle_a_central_record(w):
    record = (await Record.select(Record.uuid).first())["uuid"]
    image = await _image("record", str(record))
    return [change("record", {**image, "title": "BRANCH EDIT"})], {"record": "central_authority"}


HOSTILE = [lend_a_copy_on_jxs_shelf, lend_it_without_touching_the_copy, open_a_loan_in_jxs_name, return_jxs_loan,
           renew_jxs_loan, delete_jxs_loan, mark_jxs_copy_lost, catalogue_a_copy_into_jx,
           place_a_hold_for_pickup_at_jx, cancel_a_hold_waiting_at_jx, trap_jxs_copy_for_a_hold,
           send_jxs_copy_on_a_journey, register_a_reader_into_jx, rewrite_a_jx_reader_with_a_future_timestamp,
           set_a_jx_readers_pin, make_itself_guardian_of_an_xz_reader, delete_a_jx_reader, retitle_a_central_record]


@pytest.mark.parametrize("attempt", HOSTILE, ids=lambda f: f.__name__)
async def test_a_change_the_branch_is_not_entitled_to_is_refused_recorded_and_changes_nothing(world, attempt):
    changes, expected = await attempt(world)
    before = await _central_state()
    answer = await _upload(world["ZX"], *changes)
    assert {c["kind"]: c["rule"] for c in answer["conflicts"]} == expected
    assert answer["applied"] == 0
    assert await _central_state() == before, "nothing of the refused change reached the central node"
    for conflict in answer["conflicts"]:
        kept = await SyncConflict.select().where(SyncConflict.uuid == conflict["uuid"]).first()
        assert kept["branch_code"] == "ZX" and kept["rule"] == expected[kept["kind"]]
        assert kept["state"] == "open", "staff must look at it"


async def test_the_rest_of_an_upload_still_applies_around_the_refusals(world):
    hostile = [c for attempt in (lend_a_copy_on_jxs_shelf, rewrite_a_jx_reader_with_a_future_timestamp)
               for c in (await attempt(world))[0]]
    shelf = await _image("item", world["on_zx_shelf"])
    answer = await _upload(world["ZX"], *hostile, change("item", {**shelf, "shelf_location": "新书架"}))
    assert answer["applied"] == 1
    assert sorted(c["rule"] for c in answer["conflicts"]) == ["clock_skew", "copy_elsewhere", "copy_elsewhere",
                                                             "reader_elsewhere"]
    assert (await Item.select(Item.shelf_location).where(Item.uuid == world["on_zx_shelf"]).first())[
        "shelf_location"] == "新书架"
    # the refused reader edit keeps what ZX asked for, for review, but never the PIN verifier
    kept = await SyncConflict.select(SyncConflict.detail).where(SyncConflict.rule == "reader_elsewhere").first()
    detail = kept["detail"] if isinstance(kept["detail"], dict) else __import__("json").loads(kept["detail"])
    assert detail["image"]["name"] == "被改名" and detail["image"]["pin_hash"] == ""


async def test_regression_a_loan_of_a_copy_on_jxs_shelf_leaves_jxs_desk_free_to_lend_it(world):
    changes, _ = await lend_a_copy_on_jxs_shelf(world)
    await _upload(world["ZX"], *changes)
    assert await Loan.count().where(Loan.item.uuid == world["on_jx_shelf"]) == 0
    barcode = (await Item.select(Item.barcode).where(Item.uuid == world["on_jx_shelf"]).first())["barcode"]
    lent = await loans.checkout(_desk(), "JX", "XZ30000001", barcode, NOW, override_comment="expired card, test")
    assert lent.loan_uuid


async def test_regression_a_forged_reader_edit_never_signs_in_at_the_central_node(world):
    changes, _ = await rewrite_a_jx_reader_with_a_future_timestamp(world)
    await _upload(world["ZX"], *changes)
    row = await Patron.select(Patron.name, Patron.pin_hash).where(Patron.uuid == world["jx_reader"]).first()
    assert row["name"] == "张建国"
    assert not await verify_secret(row["pin_hash"], "999999")
    assert await verify_secret(row["pin_hash"], "123456")


# --- what ZX may do -----------------------------------------------------------------------------


async def test_the_branch_edits_its_own_reader_but_not_the_card_number_home_or_pin(world):
    reader = await _image("patron", world["zx_reader"])
    edit = {**reader, "phone": "13900000000", "card_number": "ZX1999", "home_branch": world["JX"]["uuid"],
            "pin_hash": await hash_secret("999999")}
    answer = await _upload(world["ZX"], change("patron", edit))
    assert answer["applied"] == 1 and answer["conflicts"] == []
    row = await Patron.select(Patron.phone, Patron.card_number, Patron.home_branch.code, Patron.pin_hash).where(
        Patron.uuid == world["zx_reader"]).first()
    assert (row["phone"], row["card_number"], row["home_branch.code"]) == ("13900000000", "ZX10000004", "ZX")
    assert await verify_secret(row["pin_hash"], "123456")


async def test_a_pin_set_at_the_branch_is_its_own_audited_operation(world):
    verifier = await hash_secret("654321")
    pin = {"uuid": str(uuid.uuid4()), "patron": world["zx_reader"], "branch": None, "set_by": "desk-librarian",
           "set_at": NOW.isoformat(), "pin_hash": verifier}
    answer = await _upload(world["ZX"], change("pin_change", pin))
    assert answer["applied"] == 1 and answer["conflicts"] == []
    row = await Patron.select(Patron.pin_hash).where(Patron.uuid == world["zx_reader"]).first()
    assert await verify_secret(row["pin_hash"], "654321")
    kept = await PinChange.select(PinChange.set_by, PinChange.branch.code).where(PinChange.uuid == pin["uuid"]).first()
    assert (kept["set_by"], kept["branch.code"]) == ("desk-librarian", "ZX")
    audited = await AuditEntry.select().where(AuditEntry.action == "patron.pin_set_at_branch")
    assert [a["actor"] for a in audited] == ["sync:ZX"]
    # a malformed verifier is refused with the whole upload
    from library.errors import InvalidInput
    with pytest.raises(InvalidInput):
        parse_upload({"uuid": str(uuid.uuid4()), "changes": [change("pin_change", {**pin, "uuid": str(uuid.uuid4()),
                                                                                   "pin_hash": "123456"})]})


async def test_a_reader_from_elsewhere_who_borrowed_at_the_branch_may_change_their_pin_there(world):
    loan = loan_image(world, world["on_zx_shelf"], world["jx_reader"], world["ZX"]["uuid"])
    item = await _image("item", world["on_zx_shelf"])
    now = dt.datetime.now(dt.timezone.utc)
    loan["checked_out_at"] = now.isoformat()
    answer = await _upload(world["ZX"], change("item", {**item, "status": "on_loan"}), change("loan", loan), now=now)
    assert answer["applied"] == 2, answer
    pin = {"uuid": str(uuid.uuid4()), "patron": world["jx_reader"], "branch": None, "set_by": "reader",
           "set_at": now.isoformat(), "pin_hash": await hash_secret("246810")}
    answer = await _upload(world["ZX"], change("pin_change", pin), now=now)
    assert answer["conflicts"] == [] and answer["applied"] == 1
    row = await Patron.select(Patron.pin_hash).where(Patron.uuid == world["jx_reader"]).first()
    assert await verify_secret(row["pin_hash"], "246810")


# --- the branch's clock ---------------------------------------------------------------------


async def test_a_branch_clock_a_year_ahead_is_not_taken_and_does_not_beat_later_honest_edits(world):
    now = dt.datetime.now(dt.timezone.utc)
    ahead = now + dt.timedelta(days=365)
    reader = await _image("patron", world["zx_reader"])
    seen = await _log_position()
    answer = await _upload(world["ZX"], change("patron", {**reader, "phone": "111", "updated_at": ahead.isoformat()}),
                           clock=UploadClock(seen_through=seen, sent_at=ahead), now=now)
    assert answer["applied"] == 1
    assert answer["clock_ahead_seconds"] > 364 * 86400
    stored = await Patron.select(Patron.updated_at).where(Patron.uuid == world["zx_reader"]).first()
    assert stored["updated_at"] <= now + dt.timedelta(minutes=5)
    skew = await SyncConflict.select(SyncConflict.detail, SyncConflict.state).where(
        SyncConflict.rule == "clock_skew").first()
    assert skew["state"] == "open"
    # an honest edit at the central library afterwards ...
    await Patron.update({Patron.phone: "222"}).where(Patron.uuid == world["zx_reader"])
    # ... is not beaten by the branch's next edit made before the branch heard of it
    answer = await _upload(world["ZX"], change("patron", {**reader, "phone": "333", "updated_at": ahead.isoformat()}),
                           clock=UploadClock(seen_through=seen, sent_at=ahead), now=now)
    assert [c["rule"] for c in answer["conflicts"]] == ["concurrent_edit"]
    assert (await Patron.select(Patron.phone).where(Patron.uuid == world["zx_reader"]).first())["phone"] == "222"
    # one open clock conflict per branch, not one per upload
    assert await SyncConflict.count().where(SyncConflict.rule == "clock_skew") == 1
    # and once the branch has read the central edit, its next edit is taken
    answer = await _upload(world["ZX"], change("patron", {**reader, "phone": "444"}), now=now)
    assert answer["conflicts"] == [] and answer["applied"] == 1


async def test_a_branch_clock_a_year_behind_still_has_its_edits_taken(world):
    now = dt.datetime.now(dt.timezone.utc)
    behind = now - dt.timedelta(days=365)
    reader = await _image("patron", world["zx_reader"])
    await Patron.update({Patron.email: "central@example.org"}).where(Patron.uuid == world["zx_reader"])
    answer = await _upload(world["ZX"], change("patron", {**reader, "phone": "555", "email": "branch@example.org",
                                                          "updated_at": behind.isoformat()}),
                           clock=UploadClock(seen_through=await _log_position(), sent_at=behind), now=now)
    assert answer["applied"] == 1 and [c["rule"] for c in answer["conflicts"]] == ["clock_skew"]
    row = await Patron.select(Patron.phone, Patron.email).where(Patron.uuid == world["zx_reader"]).first()
    assert (row["phone"], row["email"]) == ("555", "branch@example.org"), "an old timestamp is no reason to drop it"


# --- what the feed gives a branch of other branches' readers ------------------------------------


async def _feed_readers(branch, cursor="") -> tuple[dict[str, dict], str]:
    readers = {}
    while True:
        page = await feed.changes(branch, cursor, 500)
        readers.update({c["uuid"]: c["image"] for c in page["changes"] if c["kind"] == "patron"})
        cursor = page["cursor"]
        if not page["more"]:
            return readers, cursor


async def test_a_branch_is_given_pin_verifiers_and_contacts_only_of_readers_it_serves(world):
    await Patron.update({Patron.phone: "13511112222"}).where(Patron.uuid.is_in([world["jx_reader"],
                                                                                world["xz_reader"]]))
    readers, cursor = await _feed_readers(world["ZX"])
    assert readers[world["zx_reader"]]["pin_hash"].startswith("$argon2id$")
    for stranger in (world["jx_reader"], world["xz_reader"]):
        assert (readers[stranger]["pin_hash"], readers[stranger]["phone"], readers[stranger]["email"]) == ("", "", "")
        assert readers[stranger]["name"], "the desk still knows who the card belongs to"
    # JX has its own reader's verifier, and none of ZX's
    jx_readers, _ = await _feed_readers(world["JX"])
    assert jx_readers[world["jx_reader"]]["pin_hash"] and jx_readers[world["zx_reader"]]["pin_hash"] == ""
    # once the JX reader borrows at ZX, ZX is sent their verifier
    item = await _image("item", world["on_zx_shelf"])
    now = dt.datetime.now(dt.timezone.utc)
    loan = loan_image(world, item["uuid"], world["jx_reader"], world["ZX"]["uuid"], checked_out_at=now.isoformat())
    await _upload(world["ZX"], change("item", {**item, "status": "on_loan"}), change("loan", loan), now=now)
    later, _ = await _feed_readers(world["ZX"], cursor)
    assert later[world["jx_reader"]]["pin_hash"].startswith("$argon2id$")
    assert later[world["jx_reader"]]["phone"] == "13511112222"


async def test_the_allowed_clock_skew_and_the_verifier_days_are_settings(world):
    """LIBRARY_SYNC_CLOCK_SKEW_SECONDS: a timestamp 30 minutes ahead is clamped under the default (300)
    but taken under 3600. LIBRARY_SYNC_VERIFIER_DAYS: a JX reader who borrowed at ZX 10 days ago is a
    reader ZX holds the verifier of under the default (90), not under 7."""
    import os

    from library.settings import load_settings

    default = load_settings({**os.environ})
    wide = load_settings({**os.environ, "LIBRARY_SYNC_CLOCK_SKEW_SECONDS": "3600", "LIBRARY_SYNC_VERIFIER_DAYS": "7"})
    assert (default.sync_clock_skew_seconds, wide.sync_clock_skew_seconds) == (300, 3600)
    now = dt.datetime.now(dt.timezone.utc)
    ahead = (now + dt.timedelta(minutes=30)).isoformat()
    reader = await _image("patron", world["zx_reader"])
    for settings, taken in ((default, False), (wide, True)):
        upload, parsed = parse_upload({"uuid": str(uuid.uuid4()), "changes": [
            change("patron", {**reader, "phone": str(settings.sync_clock_skew_seconds), "updated_at": ahead})]})
        await apply_upload(world["ZX"], upload, parsed, UploadClock(seen_through=await _log_position()), now,
                           settings.sync_clock_skew_seconds)
        stored = (await Patron.select(Patron.updated_at).where(Patron.uuid == world["zx_reader"]).first())[
            "updated_at"]
        assert (stored == dt.datetime.fromisoformat(ahead)) is taken, settings.sync_clock_skew_seconds

    item = await _image("item", world["on_zx_shelf"])
    ten_days_ago = now - dt.timedelta(days=10)
    loan = loan_image(world, item["uuid"], world["jx_reader"], world["ZX"]["uuid"],
                      checked_out_at=ten_days_ago.isoformat())
    await _upload(world["ZX"], change("item", {**item, "status": "on_loan"}), change("loan", loan), now=now)
    for settings, holds in ((default, True), (wide, False)):
        since = feed.verifier_since(now, settings.sync_verifier_days)
        assert bool(await feed.holders_among(world["ZX"]["id"], [world["jx_reader"]], since)) is holds
