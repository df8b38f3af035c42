"""A dead branch box: the ZX box's disk dies and a new box is rebuilt from the central node.

What lives only on the box — rooms, staff accounts, programmes, sessions, registrations with
their attendance, challenge participants, reading logs — goes to the central node's vault with
every sync round. A new box recovers with `library recover-branch`: every row the central node
had acknowledged comes back equal (same uuids); a row written after the last acknowledged
round does not (the documented window of one sync interval).

The adversary: a stolen or broken box of another branch (XZ) with its own valid credential
asks for ZX's vault or writes into it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import httpx

from tests.sync.conftest import Templates
from tests.sync.nodes import Node, sync


def _new_box(templates: Templates, old: Node) -> Node:
    """A new, empty box for ZX: migrated, and told only its branch code (the central node and the
    credential come on the command line, as the operator types them)."""
    data_dir = Path(tempfile.mkdtemp(prefix="branch-new-", dir=templates.root))
    settings = {k: v for k, v in old.settings.items()
                if k not in ("LIBRARY_CENTRAL_URL", "LIBRARY_SYNC_CREDENTIAL")}
    box = Node("new-box", data_dir, f"sqlite:///{data_dir / 'branch.sqlite3'}", settings)
    box.library("migrate")
    return box


def test_a_dead_box_comes_back_from_the_central_node_with_everything_acknowledged(
        templates: Templates, central: Node, branch: Node, credential: str):
    sync(branch)
    first = branch.in_node("own_rows", "ZX", "first")
    sync(branch)
    assert central.count("sync_vault", "kind = 'registration'") == 2
    # more happens at the desk, and goes up with the next round: a new week, a reader marked
    # present at last week's session, a reading log taken back
    second = branch.in_node("own_rows", "ZX", "second")
    branch.in_node("attend", first["registration"])
    branch.in_node("forget_reading_log", first["reading_log"])
    sync(branch)
    acknowledged = branch.in_node("own_images")
    assert f"reading_log/{first['reading_log']}" not in acknowledged
    assert acknowledged[f"registration/{first['registration']}"]["status"] == "attended"
    assert {key.split("/")[0] for key in acknowledged} >= {
        "room", "staff_member", "staff_branch", "programme", "event", "occurrence", "registration", "reading_log",
        "programme_participant"}
    # written after the last acknowledged round: the box dies before the next one
    late = branch.in_node("own_rows", "ZX", "late")
    loans_before = branch.count("loan")
    readers_before = branch.count("patron")

    branch.stop()
    branch.sqlite_path.unlink()  # the disk is gone

    box = _new_box(templates, branch)
    try:
        done = box.library("recover-branch", "--from", central.url, "--credential", credential)
        assert "branch ZX recovered" in done.stdout, done.stdout
        assert "skipped" not in done.stderr, done.stderr
        recovered = box.in_node("own_images")
        assert recovered == acknowledged, "every acknowledged row, equal, and nothing else"
        for uuid in late.values():
            assert not any(uuid in key for key in recovered), "the late row is the documented window"
        assert second["registration"] and f"registration/{second['registration']}" in recovered
        # the catalogue and the loans came as to any new node
        assert box.count("patron") == readers_before and box.count("loan") == loans_before

        # running it again is safe: the same rows, no duplicate
        box.library("recover-branch", "--from", central.url, "--credential", credential)
        assert box.in_node("own_images") == acknowledged
        assert box.count("registration") == sum(1 for key in acknowledged if key.startswith("registration/"))

        # the new box syncs on as the old one did; what it got from the vault is not sent back,
        # and the vault still holds exactly what was acknowledged
        vault_before = central.rows("SELECT kind, entity_key, digest FROM sync_vault ORDER BY kind, entity_key")
        box.settings.update({"LIBRARY_CENTRAL_URL": central.url, "LIBRARY_SYNC_CREDENTIAL": credential})
        sync(box)
        assert central.rows("SELECT kind, entity_key, digest FROM sync_vault ORDER BY kind, entity_key") \
            == vault_before
        assert box.count("sync_vault_sent") == len(acknowledged)
    finally:
        shutil.rmtree(box.data_dir, ignore_errors=True)


def test_a_box_of_another_branch_can_neither_read_nor_write_this_vault(central: Node, branch: Node):
    sync(branch)
    made = branch.in_node("own_rows", "ZX", "ours")
    sync(branch)
    zx_vault = central.rows("SELECT kind, entity_key, digest FROM sync_vault WHERE branch = "
                            "(SELECT id FROM branch WHERE code = 'ZX') ORDER BY kind, entity_key")
    assert zx_vault
    image = branch.in_node("own_images")[f"registration/{made['registration']}"]

    stolen = central.library("sync", "credential", "--branch", "XZ").stdout.strip().splitlines()[-1].strip()
    assert stolen.startswith("XZ.")
    with httpx.Client(base_url=central.url, headers={"Authorization": f"Bearer {stolen}"}, timeout=20) as xz:
        assert xz.get("/api/sync/vault", params={"branch": "ZX"}).status_code == 403
        own = xz.get("/api/sync/vault")
        assert own.status_code == 200 and own.json()["rows"] == [], "XZ's vault is its own, and empty"
        # writing into ZX's vault by naming ZX: refused
        forged = {**image, "status": "cancelled"}
        put = {"kind": "registration", "key": image["uuid"], "image": forged}
        assert xz.post("/api/sync/vault", json={"branch": "ZX", "put": [put], "gone": []}).status_code == 403
        # ... by not naming a branch, or deleting ZX's rows: it lands in XZ's own vault only
        answer = xz.post("/api/sync/vault", json={
            "put": [put], "gone": [{"kind": "reading_log", "key": made["reading_log"]}]})
        assert answer.status_code == 200, answer.text
        # a malformed row is refused whole, nothing kept
        broken = xz.post("/api/sync/vault", json={"put": [{"kind": "registration", "key": "x", "image": {}}]})
        assert broken.status_code == 422, broken.text
        wrong_kind = xz.post("/api/sync/vault", json={"put": [{"kind": "loan", "key": image["uuid"],
                                                               "image": image}]})
        assert wrong_kind.status_code == 422
    with httpx.Client(base_url=central.url, timeout=20) as nobody:
        assert nobody.get("/api/sync/vault").status_code == 401
    assert central.rows("SELECT kind, entity_key, digest FROM sync_vault WHERE branch = "
                        "(SELECT id FROM branch WHERE code = 'ZX') ORDER BY kind, entity_key") == zx_vault
    assert central.count("sync_vault", "branch = (SELECT id FROM branch WHERE code = 'XZ')") == 1


def test_the_last_usb_backup_first_then_the_vault_for_what_is_newer(
        templates: Templates, central: Node, branch: Node, credential: str):
    sync(branch)
    first = branch.in_node("own_rows", "ZX", "first")
    sync(branch)
    usb = templates.root / f"usb-{branch.data_dir.name}"
    branch.library("backup", "--to", str(usb))
    # after the night's backup: a log taken back, a reader marked present, a new week
    branch.in_node("forget_reading_log", first["reading_log"])
    branch.in_node("attend", first["registration"])
    second = branch.in_node("own_rows", "ZX", "second")
    sync(branch)
    acknowledged = branch.in_node("own_images")
    branch.stop()
    branch.sqlite_path.unlink()

    data_dir = Path(tempfile.mkdtemp(prefix="branch-usb-", dir=templates.root))
    box = Node("usb-box", data_dir, f"sqlite:///{data_dir / 'branch.sqlite3'}", dict(branch.settings))
    try:
        [backup] = sorted(usb.glob("backup-*"))
        box.library("restore", str(backup))
        assert f"reading_log/{first['reading_log']}" in box.in_node("own_images"), "the backup is older"
        done = box.library("recover-branch")  # the settings name the central node and the credential
        assert "dropped" in done.stdout and "reading_log" in done.stdout, done.stdout
        recovered = box.in_node("own_images")
        assert recovered == acknowledged
        assert f"event/{second['event']}" in recovered
        assert f"reading_log/{first['reading_log']}" not in recovered, "deleted after the backup: stays deleted"
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(usb, ignore_errors=True)


def test_a_broken_box_sending_one_row_twice_or_garbage_gets_no_500(central: Node, branch: Node, credential: str):
    sync(branch)
    made = branch.in_node("own_rows", "ZX", "twice")
    image = branch.in_node("own_images")[f"registration/{made['registration']}"]
    row = {"kind": "registration", "key": image["uuid"], "image": image}
    with httpx.Client(base_url=central.url, headers={"Authorization": f"Bearer {credential}"}, timeout=20) as zx:
        again = {"kind": "registration", "key": image["uuid"], "image": {**image, "status": "attended"}}
        answer = zx.post("/api/sync/vault", json={"branch": "ZX", "put": [row, again], "gone": [
            {"kind": "room", "key": made["room"]}, {"kind": "room", "key": made["room"]}]})
        assert answer.status_code == 200, answer.text
        kept = [row["image"] for row in central.rows("SELECT entity_key, image FROM sync_vault")
                if row["entity_key"] == image["uuid"]]
        assert len(kept) == 1 and json.loads(kept[0])["status"] == "attended", "one row, the last image sent"
        for body in ([1, 2], {"put": "x"}, {"put": [{"kind": "registration", "key": "k" * 81, "image": image}]},
                     {"put": [{"kind": "registration", "key": "not-its-uuid", "image": image}]},
                     {"put": [{**row, "image": {**image, "arrival": "first"}}]}):
            refused = zx.post("/api/sync/vault", json=body)
            assert refused.status_code == 422, (body, refused.text)
        assert zx.post("/api/sync/vault", content=b"{not json").status_code == 422
