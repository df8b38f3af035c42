"""Two nodes on loopback: the initial sync, then incremental sync both ways."""

from __future__ import annotations

from tests.sync.conftest import BRANCH_STAFF
from tests.sync.nodes import Node, sync
from tests.sync.views import central_zx_copies, branch_copies, loans_of, uuids

ZX_COPIES = {"ZX000000018", "ZX000000026", "ZX000000034", "ZX000000042", "ZX000000059", "ZX000000067"}


def test_initial_sync_brings_what_the_branch_needs_and_a_second_round_nothing(central: Node, branch: Node):
    log_before = central.value("SELECT MAX(seq) FROM sync_change")

    done = sync(branch)
    assert "changes received" in done.stdout

    # Every branch with its calendar, every rule, every reader and family link.
    for table in ("branch", "circulation_rule", "patron", "guardian_link", "opening_period", "calendar_exception"):
        assert branch.count(table) == central.count(table), table
    assert uuids(branch, "patron") == uuids(central, "patron")
    # ZX's copies, exactly, with their records; nobody else's.
    assert branch_copies(branch) == central_zx_copies(central)
    assert {c["barcode"] for c in branch_copies(branch).values()} == ZX_COPIES
    assert branch.count("record") == central.value(
        "SELECT COUNT(DISTINCT i.record) FROM item i JOIN branch b ON b.id = i.home_branch WHERE b.code = 'ZX'")
    # The open loan of a ZX copy (ZX000000018, lent to ZX10000001), and no loan of another branch's copy.
    assert loans_of(branch) == {row["uuid"]: row for row in central.rows(
        "SELECT l.uuid, i.barcode, p.card_number, l.due_on, l.returned_at FROM loan l JOIN item i ON i.id = l.item "
        "JOIN patron p ON p.id = l.patron WHERE i.barcode LIKE 'ZX%' AND l.returned_at IS NULL")}
    assert [row["barcode"] for row in loans_of(branch).values()] == ["ZX000000018"]

    state = branch.state()
    assert state["cursor"] == f"log:{log_before}"
    assert state["last_error"] == "" and state["last_success_at"]
    assert branch.count("sync_change") == 0, "what came from the central node is not sent back up"
    assert branch.count("sync_outbox") == 0 and central.count("sync_applied") == 0

    again = sync(branch)
    assert "changes received: 0 in 1 pages" in again.stdout
    assert branch.state()["cursor"] == f"log:{log_before}"
    assert central.value("SELECT MAX(seq) FROM sync_change") == log_before, "a sync round writes nothing centrally"


def test_incremental_sync_both_ways(central: Node, branch: Node):
    sync(branch)
    branch.start()
    desk = branch.staff(*BRANCH_STAFF)
    office = central.staff()

    # At the branch: a renewal (of the demo's loan, due in a few days), a checkout, a return.
    demo_loan = branch.value("SELECT l.uuid FROM loan l JOIN item i ON i.id = l.item WHERE i.barcode = 'ZX000000018'")
    renewed = desk.renew(demo_loan)
    lent = desk.checkout("ZX", "JX20000001", "ZX000000026")
    short = desk.checkout("ZX", "ZX10000001", "ZX000000034")
    assert desk.checkin("ZX", "ZX000000034")["was_on_loan"]
    loans_before = central.count("loan")

    # At the central library: a hold on a record ZX has a copy of, an edit of a ZX record.
    together = central.value("SELECT r.uuid FROM record r JOIN item i ON i.record = r.id "
                             "WHERE i.barcode = 'ZX000000067'")
    hold = office.place_hold(together, "ZX", "JX20000001")
    record = office.get(f"/api/records/{together}").json()
    edited = office.ok(office.put(f"/api/records/{together}", json={
        "title": record["title"], "isbn": record["isbn13"], "publisher": record["publisher"],
        "summary": "中央馆编目更新：春节团圆的故事。"}))
    assert edited["summary"].startswith("中央馆")

    first = sync(branch)
    assert "uploads sent: 1" in first.stdout

    # Up: each change once at the central node.
    assert central.count("loan") == loans_before + 2
    loans = {row["uuid"]: row for row in central.rows(
        "SELECT l.uuid, l.renewals, l.due_on, l.returned_at, p.card_number, i.barcode FROM loan l "
        "JOIN patron p ON p.id = l.patron JOIN item i ON i.id = l.item WHERE l.uuid IN (?, ?, ?)",
        demo_loan, lent["loan"], short["loan"])}
    assert loans[demo_loan]["renewals"] == 1 and str(loans[demo_loan]["due_on"]) == renewed["due_on"]
    assert loans[lent["loan"]]["card_number"] == "JX20000001" and loans[lent["loan"]]["returned_at"] is None
    assert loans[short["loan"]]["returned_at"] is not None
    statuses = {row["barcode"]: row["status"] for row in central.rows(
        "SELECT barcode, status FROM item WHERE barcode IN ('ZX000000018', 'ZX000000026', 'ZX000000034')")}
    assert statuses == {"ZX000000018": "on_loan", "ZX000000026": "on_loan", "ZX000000034": "available"}
    assert central.count("sync_applied") == 1 and central.count("sync_conflict") == 0

    # Down: the hold and the edited record at the branch.
    assert branch.rows("SELECT h.status, p.card_number, b.code FROM hold h JOIN patron p ON p.id = h.patron "
                       "JOIN branch b ON b.id = h.pickup_branch WHERE h.uuid = ?", hold["hold"]) == [
        {"status": "waiting", "card_number": "JX20000001", "code": "ZX"}]
    assert branch.value("SELECT summary FROM record WHERE uuid = ?", together) == "中央馆编目更新：春节团圆的故事。"
    assert branch.count("sync_outbox", "acknowledged_at IS NULL") == 0

    # A second round: nothing goes up twice, nothing new comes down.
    second = sync(branch)
    assert "uploads sent: 0" in second.stdout and "changes received: 0" in second.stdout
    assert central.count("sync_applied") == 1 and central.count("loan") == loans_before + 2
    desk.close()
    office.close()
