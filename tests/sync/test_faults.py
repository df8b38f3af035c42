"""The central server killed mid-sync, the connection dropped mid-answer: once is still once."""

from __future__ import annotations

import time

from tests.sync.nodes import CuttingProxy, Node, start_sync, sync
from tests.sync.views import branch_copies, central_zx_copies

ATTEMPTS = 5  # library.sync.client.ATTEMPTS: a round gives up after this many tries of one request


def _wait_for(condition, what: str, timeout: float = 60, every: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def _finish(process, timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def test_central_killed_during_the_initial_sync_resumes_where_it_stopped(central: Node, branch: Node):
    central.in_node("seed_copies", "ZX", 2500, "KS")  # a snapshot of several pages
    wanted = central_zx_copies(central)
    running = start_sync(branch)
    _wait_for(lambda: branch.state()["cursor"].startswith("snapshot:"), "the first page written at the branch")
    central.kill()

    code, _, err = _finish(running)
    assert code != 0 and "sync stopped" in err
    state = branch.state()
    assert state["cursor"].startswith("snapshot:"), "the pages done are kept, with their cursor"
    assert state["last_success_at"] is None and state["last_error"]
    assert 0 < branch.count("record") and branch.count("item") < len(wanted)

    central.start()
    resumed = sync(branch)
    received = int(resumed.stdout.split("changes received: ")[1].split()[0])
    assert branch_copies(branch) == wanted
    assert branch.count("record") == central.value(
        "SELECT COUNT(DISTINCT i.record) FROM item i JOIN branch b ON b.id = i.home_branch WHERE b.code = 'ZX'")
    assert received < branch.count("record") + branch.count("item"), "the pages done were not fetched again"
    state = branch.state()
    assert state["cursor"] == f"log:{central.value('SELECT MAX(seq) FROM sync_change')}" and state["last_error"] == ""
    assert "changes received: 0" in sync(branch).stdout


def test_central_killed_during_uploads_every_upload_applied_once(central: Node, branch: Node):
    sync(branch)
    branch.in_node("seed_copies", "ZX", 1000, "KU")  # 2,000 local changes: eight uploads of 250
    running = start_sync(branch)
    _wait_for(lambda: central.count("sync_applied") >= 2, "two uploads applied at the central node")
    central.kill()
    assert central.count("sync_applied") < 8, "killed before the last upload"
    central.start()  # back within the round's retries, or for the next round

    code, _, _ = _finish(running)
    if code != 0:
        sync(branch)
    outbox = {row["uuid"]: row for row in branch.rows("SELECT uuid, changes, acknowledged_at FROM sync_outbox")}
    assert len(outbox) == 8 and all(row["acknowledged_at"] for row in outbox.values())
    applied = {row["uuid"]: row["changes"] for row in central.rows("SELECT uuid, changes FROM sync_applied")}
    assert applied == {uuid: row["changes"] for uuid, row in outbox.items()}
    assert sum(applied.values()) == 2000
    assert central.count("record", "title LIKE ?", "KU %") == 1000
    assert central.count("item", "barcode LIKE ?", "KU%") == 1000
    assert central.count("sync_conflict") == 0
    assert branch_copies(branch) == central_zx_copies(central)
    assert branch.state()["cursor"] == f"log:{central.value('SELECT MAX(seq) FROM sync_change')}"


def test_answer_to_an_upload_lost_every_time_then_the_next_round_is_told_already_applied(central: Node,
                                                                                         branch: Node):
    sync(branch)
    loan = branch.in_node("checkout", "ZX", "ZX10000001", "ZX000000026")
    loans_before = central.count("loan")
    with CuttingProxy(central.port, b"POST /api/sync/uploads", after_bytes=30, times=ATTEMPTS) as proxy:
        branch.settings["LIBRARY_CENTRAL_URL"] = proxy.url
        failed = sync(branch, check=False)
        assert failed.returncode != 0 and "RemoteProtocolError" in failed.stderr
        assert proxy.cuts == ATTEMPTS
        # The central node applied the upload the first time and answered "already applied" after.
        assert central.count("sync_applied") == 1 and central.count("loan") == loans_before + 1
        waiting = branch.rows("SELECT uuid, attempts, acknowledged_at FROM sync_outbox")
        assert len(waiting) == 1 and waiting[0]["attempts"] == 1 and waiting[0]["acknowledged_at"] is None

        done = sync(branch)  # the link works again
        assert "uploads sent: 1 (0 packaged this round)" in done.stdout
        assert proxy.sent(b"POST /api/sync/uploads") == ATTEMPTS + 1
    sent = branch.rows("SELECT uuid, attempts, acknowledged_at, result FROM sync_outbox")
    assert [row["uuid"] for row in sent] == [waiting[0]["uuid"]]
    assert sent[0]["acknowledged_at"] and '"already_applied": true' in sent[0]["result"]
    assert central.count("sync_applied") == 1 and central.count("loan") == loans_before + 1
    assert central.count("loan", "uuid = ?", loan) == 1
    assert central.value("SELECT status FROM item WHERE barcode = 'ZX000000026'") == "on_loan"


def test_a_feed_page_cut_off_mid_answer_is_fetched_again_within_the_round(central: Node, branch: Node):
    sync(branch)
    branch.in_node("checkout", "ZX", "ZX10000001", "ZX000000026")
    central.in_node("seed_copies", "ZX", 50, "KD")
    cut_on = b"GET /api/sync/changes"
    with CuttingProxy(central.port, cut_on, after_bytes=200, times=1) as proxy:
        branch.settings["LIBRARY_CENTRAL_URL"] = proxy.url
        sync(branch)
        assert proxy.cuts == 1 and proxy.sent(cut_on) == 2
    assert central.count("sync_applied") == 1
    assert central.count("loan", "item = (SELECT id FROM item WHERE barcode = 'ZX000000026') "
                                 "AND returned_at IS NULL") == 1
    assert branch_copies(branch) == central_zx_copies(central)
    assert branch.state()["cursor"] == f"log:{central.value('SELECT MAX(seq) FROM sync_change')}"
