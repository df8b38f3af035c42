"""A stolen branch box: what the ZX node holds of the city's readers, and PINs set at its desk.

The adversary has the box's disk. It should hold the PIN verifiers (and phone, e-mail) of
ZX's own readers and of readers who borrowed at ZX lately — never of every reader in the
city — and no verifier in what it has already sent. A PIN set at the ZX desk reaches the
central node as its own operation, audited there; one set for a reader ZX has no business
with is refused on both nodes and leaves the reader's PIN as it was.
"""

from __future__ import annotations

import json

from tests.sync.nodes import Node, sync

ARGON = "$argon2id$"


def _readers(branch: Node) -> dict[str, dict]:
    return {row["card_number"]: row for row in branch.rows(
        "SELECT p.card_number, p.name, p.pin_hash, p.phone, p.email, b.code AS home FROM patron p "
        "JOIN branch b ON b.id = p.home_branch")}


def test_a_stolen_box_holds_verifiers_only_of_readers_who_use_that_branch(central: Node, branch: Node):
    central.execute("UPDATE patron SET phone = '13700000000', email = 'reader@example.org'")
    sync(branch)
    readers = _readers(branch)
    assert set(readers) == {row["card_number"] for row in central.rows("SELECT card_number FROM patron")}, \
        "every card still works at the desk"
    strangers = {card: row for card, row in readers.items() if row["home"] != "ZX"}
    assert set(strangers) == {"JX20000001", "XZ30000001"}
    for card, row in strangers.items():
        assert (row["pin_hash"], row["phone"], row["email"]) == ("", "", ""), card
        assert row["name"], "the desk still sees whose card it is"
    for card, row in readers.items():
        if row["home"] == "ZX":
            assert row["pin_hash"].startswith(ARGON) and row["phone"] == "13700000000", card

    # 张建国 (JX) borrows at the ZX desk by card, no PIN needed; after the next round ZX holds his verifier
    barcode = branch.value("SELECT barcode FROM item WHERE status = 'available' AND current_branch = "
                           "(SELECT id FROM branch WHERE code = 'ZX') ORDER BY id LIMIT 1")
    branch.in_node("checkout", "ZX", "JX20000001", barcode)
    sync(branch)
    sync(branch)  # the central node's answer comes down with the page after the upload
    assert _readers(branch)["JX20000001"]["pin_hash"].startswith(ARGON)
    assert _readers(branch)["XZ30000001"]["pin_hash"] == "", "Emma never used ZX"
    # what the box has sent keeps no verifier
    for row in branch.rows("SELECT payload FROM sync_outbox WHERE acknowledged_at IS NOT NULL"):
        assert ARGON not in row["payload"]


def test_a_pin_set_at_the_desk_is_its_own_audited_operation_and_refused_for_strangers(central: Node, branch: Node):
    sync(branch)
    old_xz = central.value("SELECT pin_hash FROM patron WHERE card_number = 'XZ30000001'")
    branch.in_node("reset_pin", "ZX10000001", "24681357")   # ZX's own reader, at the ZX desk
    branch.in_node("reset_pin", "XZ30000001", "11112222")   # a reader ZX has no business with
    done = sync(branch)
    assert "conflicts reported by the central node: 1" in done.stdout, done.stdout
    sync(branch)

    # ZX's reader: the new PIN signs in at the central node; the change is kept as who/when/where
    office = central.staff()
    reader = office.http.post("/api/session", json={"kind": "patron", "login": "ZX10000001", "secret": "24681357"},
                              headers={"X-CSRFToken": office.http.cookies["library_csrf"]})
    office.close()
    assert reader.status_code == 201, reader.text
    kept = central.rows("SELECT pc.set_by, b.code FROM pin_change pc JOIN branch b ON b.id = pc.branch "
                        "JOIN patron p ON p.id = pc.patron WHERE p.card_number = 'ZX10000001'")
    assert len(kept) == 1 and kept[0]["code"] == "ZX" and kept[0]["set_by"].startswith("staff:"), kept
    assert central.count("audit_entry", "action = 'patron.pin_set_at_branch' AND actor = 'sync:ZX'") == 1

    # the stranger: refused, listed on both nodes, the PIN unchanged, and the box forgets the verifier it made
    assert central.value("SELECT pin_hash FROM patron WHERE card_number = 'XZ30000001'") == old_xz
    for node in (central, branch):
        rules = [row["rule"] for row in node.rows("SELECT rule FROM sync_conflict WHERE kind = 'pin_change'")]
        assert rules == ["reader_elsewhere"], node.name
    assert _readers(branch)["XZ30000001"]["pin_hash"] == ""
    detail = central.value("SELECT detail FROM sync_conflict WHERE kind = 'pin_change'")
    detail = json.loads(detail) if isinstance(detail, str) else detail
    assert detail["card_number"] == "XZ30000001" and ARGON not in json.dumps(detail)
