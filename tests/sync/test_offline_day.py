"""A day without the link: the branch goes on working, then everything reaches the central node once."""

from __future__ import annotations

import isbnlib

from tests.sync.conftest import BRANCH_STAFF
from tests.sync.nodes import Node, sync

DONATED_ISBN = "9787" + "99000001"
DONATED_ISBN += isbnlib.check_digit13(DONATED_ISBN)


def test_a_day_offline_then_reconnect(central: Node, branch: Node):
    sync(branch)
    branch.start()
    desk = branch.staff(*BRANCH_STAFF)
    loans_before = central.count("loan")
    patrons_before = central.count("patron")
    records_before = central.count("record")

    central.stop()  # the link is down for the day

    demo_loan = branch.value("SELECT l.uuid FROM loan l JOIN item i ON i.id = l.item WHERE i.barcode = 'ZX000000018'")
    renewed = desk.renew(demo_loan)
    morning = desk.checkout("ZX", "JX20000001", "ZX000000026")
    noon = desk.checkout("ZX", "ZX10000001", "ZX000000034")
    desk.checkin("ZX", "ZX000000034")
    desk.register(card_number="ZX10000099", name="赵六", pin="246810", home_branch="ZX", category="adult",
                  language="zh_CN")
    desk.register(card_number="ZX10000098", name="赵小六", pin="135790", home_branch="ZX", category="child",
                  language="zh_CN", guardian_card_number="ZX10000099", birth_date="2019-05-01")
    donated = desk.new_record(title="小河的故事", isbn=DONATED_ISBN, publisher="社区捐赠", publication_year=2024)
    assert desk.add_copies(donated["uuid"], "ZX", ["ZX900000001"]) == ["ZX900000001"]
    evening = desk.checkout("ZX", "ZX10000099", "ZX900000001")
    assert branch.count("sync_change") > 0

    # Rounds fail while the central node is away; they say why, and lose nothing.
    failed = sync(branch, check=False)
    assert failed.returncode != 0
    assert "sync stopped (what was done is kept; run it again)" in failed.stderr
    state = branch.state()
    assert "ConnectError" in state["last_error"] and state["last_success_at"] is not None
    waiting = branch.rows("SELECT uuid, changes FROM sync_outbox WHERE acknowledged_at IS NULL")
    assert waiting and branch.count("sync_change") == 0, "packaged once, waiting in the outbox"
    status = branch.library("sync", "status").stdout
    assert f"{len(waiting)} packaged uploads" in status and "last error" in status.lower()

    # Meanwhile at the central library (back up): a hold on a book on ZX's shelf, a rotation of two copies.
    central.start()
    office = central.staff()
    blue_and_yellow = central.value("SELECT r.uuid FROM record r JOIN item i ON i.record = r.id "
                                    "WHERE i.barcode = 'ZX000000067'")
    hold = office.place_hold(blue_and_yellow, "ZX", "JX20000001")
    page = office.post("/staff/sync/transfers", data={"barcodes": "ZX000000042 ZX000000059", "to_branch": "XZ",
                                                      "batch": "rotation 2026-12"})
    assert page.status_code == 200 and "ZX000000042" in page.text, page.text[:2000]
    assert central.count("transfer", "status = 'requested'") == 2

    # Reconnect: one round.
    done = sync(branch)
    assert f"uploads sent: {len(waiting)}" in done.stdout

    # Everything the branch did is at the central node, once.
    applied = {row["uuid"] for row in central.rows("SELECT uuid FROM sync_applied")}
    assert applied == {str(row["uuid"]) for row in waiting}
    assert central.count("sync_conflict") == 0
    assert central.count("loan") == loans_before + 3
    assert central.rows("SELECT item FROM loan WHERE returned_at IS NULL GROUP BY item HAVING COUNT(*) > 1") == []
    loans = {row["uuid"]: row for row in central.rows(
        "SELECT l.uuid, l.renewals, l.returned_at, p.card_number, i.barcode FROM loan l JOIN patron p ON p.id = l.patron "
        "JOIN item i ON i.id = l.item WHERE l.uuid IN (?, ?, ?, ?)", demo_loan, morning["loan"], noon["loan"],
        evening["loan"])}
    assert loans[demo_loan]["renewals"] == 1 and loans[demo_loan]["returned_at"] is None
    assert (loans[morning["loan"]]["card_number"], loans[morning["loan"]]["returned_at"]) == ("JX20000001", None)
    assert loans[noon["loan"]]["returned_at"] is not None
    assert (loans[evening["loan"]]["card_number"], loans[evening["loan"]]["barcode"]) == ("ZX10000099", "ZX900000001")
    assert str(central.value("SELECT due_on FROM loan WHERE uuid = ?", demo_loan)) == renewed["due_on"]
    assert central.count("patron") == patrons_before + 2
    assert central.rows("SELECT g.card_number AS guardian FROM guardian_link gl JOIN patron g ON g.id = gl.guardian "
                        "JOIN patron c ON c.id = gl.child WHERE c.card_number = 'ZX10000098'") == [
        {"guardian": "ZX10000099"}]
    assert central.count("record") == records_before + 1
    assert central.rows("SELECT r.uuid, r.title, i.status, b.code FROM record r JOIN item i ON i.record = r.id "
                        "JOIN branch b ON b.id = i.home_branch WHERE r.isbn13 = ?", DONATED_ISBN) == [
        {"uuid": donated["uuid"], "title": "小河的故事", "status": "on_loan", "code": "ZX"}]
    statuses = {row["barcode"]: row["status"] for row in central.rows(
        "SELECT barcode, status FROM item WHERE barcode IN ('ZX000000018', 'ZX000000026', 'ZX000000034')")}
    assert statuses == {"ZX000000018": "on_loan", "ZX000000026": "on_loan", "ZX000000034": "available"}

    # What the central library did meanwhile is at the branch.
    assert branch.rows("SELECT h.status, p.card_number FROM hold h JOIN patron p ON p.id = h.patron "
                       "WHERE h.uuid = ?", hold["hold"]) == [{"status": "waiting", "card_number": "JX20000001"}]
    transfers = branch.rows("SELECT i.barcode, tf.status, fb.code AS from_code, tb.code AS to_code, "
                            "hb.code AS home FROM transfer tf JOIN item i ON i.id = tf.item "
                            "JOIN branch fb ON fb.id = tf.from_branch JOIN branch tb ON tb.id = tf.to_branch "
                            "JOIN branch hb ON hb.id = i.home_branch ORDER BY i.barcode")
    assert transfers == [
        {"barcode": "ZX000000042", "status": "requested", "from_code": "ZX", "to_code": "XZ", "home": "XZ"},
        {"barcode": "ZX000000059", "status": "requested", "from_code": "ZX", "to_code": "XZ", "home": "XZ"}]
    to_send = desk.get("/staff/sync/")
    assert to_send.status_code == 200 and "ZX000000042" in to_send.text and "ZX000000059" in to_send.text
    state = branch.state()
    assert state["last_error"] == "" and branch.count("sync_outbox", "acknowledged_at IS NULL") == 0

    # And once is once: another round sends nothing and changes nothing centrally.
    seq = central.value("SELECT MAX(seq) FROM sync_change")
    again = sync(branch)
    assert "uploads sent: 0" in again.stdout
    assert central.count("sync_applied") == len(waiting) and central.count("loan") == loans_before + 3
    assert central.value("SELECT MAX(seq) FROM sync_change") == seq
    desk.close()
    office.close()
