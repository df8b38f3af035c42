"""Rotation between the two nodes: the central library recalls a copy, the branch sends it, XZ receives it."""

from __future__ import annotations

from tests.sync.conftest import BRANCH_STAFF
from tests.sync.nodes import Node, sync


def test_a_rotation_travels_both_ways(central: Node, branch: Node):
    sync(branch)
    branch.start()
    desk = branch.staff(*BRANCH_STAFF)
    office = central.staff()

    requested = office.post("/staff/sync/transfers", data={"barcodes": "ZX000000042", "to_branch": "XZ",
                                                           "batch": "recall"})
    assert requested.status_code == 200
    sync(branch)
    transfer = branch.value("SELECT uuid FROM transfer WHERE status = 'requested'")
    assert transfer and transfer in desk.get("/staff/sync/").text

    # The branch packs the copy: in transit to XZ.
    sent = desk.post("/staff/sync/transfers/send", data={"branch": "ZX", "transfer": transfer})
    assert sent.status_code == 200, sent.text[:2000]
    assert branch.value("SELECT status FROM item WHERE barcode = 'ZX000000042'") == "in_transit"
    transit = branch.value("SELECT uuid FROM transit WHERE received_at IS NULL")
    sync(branch)
    assert central.rows("SELECT tf.status, i.status AS item_status FROM transfer tf JOIN item i ON i.id = tf.item "
                        "WHERE tf.uuid = ?", transfer) == [{"status": "sent", "item_status": "in_transit"}]
    assert central.rows("SELECT b.code, t.received_at FROM transit t JOIN branch b ON b.id = t.to_branch "
                        "WHERE t.uuid = ?", transit) == [{"code": "XZ", "received_at": None}]
    assert central.count("sync_conflict") == 0

    # XZ (no node of its own: its desk works on the central node) receives it; the branch sees the copy go.
    received = office.checkin("XZ", "ZX000000042")
    assert received["received_transit"], received
    assert central.value("SELECT status FROM transfer WHERE uuid = ?", transfer) == "received"
    sync(branch)
    assert branch.rows("SELECT i.status, hb.code AS home, cb.code AS here FROM item i "
                       "JOIN branch hb ON hb.id = i.home_branch JOIN branch cb ON cb.id = i.current_branch "
                       "WHERE i.barcode = 'ZX000000042'") == [{"status": "available", "home": "XZ", "here": "XZ"}]
    assert branch.value("SELECT status FROM transfer WHERE uuid = ?", transfer) == "received"
    assert branch.value("SELECT received_at FROM transit WHERE uuid = ?", transit) is not None
    assert transfer not in desk.get("/staff/sync/").text
    desk.close()
    office.close()
