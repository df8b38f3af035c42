"""The same copy lent at the central library and at the branch while they could not talk."""

from __future__ import annotations

import json

from tests.sync.nodes import Node, sync


def test_one_copy_lent_at_two_places_is_one_conflict_for_staff(central: Node, branch: Node):
    sync(branch)
    office = central.staff()
    # The branch is offline; at the central library's desk a reader borrows the copy ZX still shows on its shelf.
    central_loan = office.checkout("ZX", "JX20000001", "ZX000000026")["loan"]
    branch_loan = branch.in_node("checkout", "ZX", "ZX10000001", "ZX000000026")
    loans_before = central.count("loan")

    done = sync(branch)
    assert "conflicts reported by the central node: 1" in done.stdout

    conflicts = central.rows("SELECT uuid, rule, kind, entity_uuid, branch_code, state, detail FROM sync_conflict")
    assert len(conflicts) == 1
    conflict = conflicts[0]
    assert (conflict["rule"], conflict["kind"], conflict["branch_code"], conflict["state"]) == (
        "lent_twice", "loan", "ZX", "open")
    detail = json.loads(conflict["detail"]) if isinstance(conflict["detail"], str) else conflict["detail"]
    assert detail["barcode"] == "ZX000000026"
    assert (detail["this_loan"]["uuid"], detail["this_loan"]["card_number"]) == (branch_loan, "ZX10000001")
    assert (detail["other_loan"]["uuid"], detail["other_loan"]["card_number"]) == (central_loan, "JX20000001")

    # The central node's loan stands; the branch's is recorded in the conflict, not lent a second time.
    assert central.count("loan") == loans_before
    assert central.count("loan", "uuid = ?", branch_loan) == 0
    assert central.rows("SELECT l.uuid, p.card_number FROM loan l JOIN patron p ON p.id = l.patron "
                        "JOIN item i ON i.id = l.item WHERE i.barcode = 'ZX000000026' AND l.returned_at IS NULL") == [
        {"uuid": central_loan, "card_number": "JX20000001"}]

    # Sent again (another round, the same state): still one conflict, nothing applied twice.
    applied = central.count("sync_applied")
    sync(branch)
    assert central.count("sync_conflict") == 1 and central.count("sync_applied") == applied
    assert central.count("loan") == loans_before

    # At the branch the reader who has the copy there keeps the loan; the central node's loan could not
    # be written beside it (one open loan per copy) and is listed for the branch's staff too, beside the
    # central node's own conflict (the same uuid on both nodes, listed once however often it is answered).
    assert branch.rows("SELECT l.uuid FROM loan l JOIN item i ON i.id = l.item WHERE i.barcode = 'ZX000000026' "
                       "AND l.returned_at IS NULL") == [{"uuid": branch_loan}]
    assert sorted((row["rule"], row["entity_uuid"]) for row in branch.rows(
        "SELECT rule, entity_uuid FROM sync_conflict")) == [("lent_twice", branch_loan),
                                                             ("not_applied_here", central_loan)]
    assert branch.value("SELECT uuid FROM sync_conflict WHERE rule = 'lent_twice'") == conflict["uuid"]

    # Staff see it on the central node's sync page and resolve it there.
    page = office.get("/staff/sync/")
    assert page.status_code == 200 and "ZX000000026" in page.text and conflict["uuid"] in page.text
    resolved = office.post(f"/staff/sync/conflicts/{conflict['uuid']}/resolve",
                           data={"resolution": "phoned ZX10000001: the copy goes back to Zhenxing"},
                           follow_redirects=False)
    assert resolved.status_code == 303
    row = central.rows("SELECT state, resolved_by, resolution FROM sync_conflict WHERE uuid = ?", conflict["uuid"])[0]
    assert row["state"] == "resolved" and row["resolution"].startswith("phoned") and row["resolved_by"]
    assert conflict["uuid"] not in office.get("/staff/sync/").text
    office.close()
