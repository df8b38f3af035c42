"""A branch node's sync round: package local changes, send them up, pull what changed centrally.

Upload before pull: what the branch did reaches the central node (and its answer comes down
in the same round) before the central node's older view of those rows could overwrite it.

Nothing is lost when the link drops: local changes wait in `sync_change`, packaged uploads
in `sync_outbox` with their uuid (a resend after a lost answer is applied once), and the
feed's cursor is stored with the rows of each page.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import uuid as uuid_module
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

from library import db
from library.accounts.tables import Patron
from library.branches.leases import claim, lease_seconds, this_process
from library.branches.tables import Branch
from library.errors import InvalidInput
from library.settings import Settings
from library.sync import vault
from library.sync.apply import apply_aliases, apply_page, ensure_state
from library.sync.entities import KINDS, ORDER, UPLOADED, images_of
from library.sync.tables import SyncConflict, SyncOutbox

log = logging.getLogger("library.sync")
logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request every round is noise

PACKAGE_SIZE = 250  # entities per upload transaction
PAGE_SIZE = 2000  # feed rows per page (the central node's PAGE_LIMIT)
ATTEMPTS = 5
Progress = Callable[[str, int, int | None], None]


class SyncFailed(Exception):
    """A round stopped; what it finished is kept, the next round goes on from there."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class RoundReport:
    packaged: int = 0
    uploaded: int = 0
    upload_conflicts: int = 0
    pages: int = 0
    received: int = 0
    kept_local: int = 0
    refused_here: int = 0
    vault_sent: int = 0  # own rows (activities, registrations, staff...) the central node now keeps
    errors: list[str] = field(default_factory=list)


# --- packaging -------------------------------------------------------------------------------


async def package_changes(size: int = PACKAGE_SIZE) -> int:
    """Freeze every waiting local change into upload transactions; how many were made."""

    async def work() -> int:
        rows = await Branch.raw("SELECT seq, kind, entity_uuid FROM sync_change ORDER BY seq")
        if not rows:
            return 0
        # How far into the central node's log this branch had read: the central node tells the
        # branch's own edits from concurrent ones by it, not by this box's clock.
        state = await Branch.raw("SELECT cursor FROM sync_state WHERE id = 1")
        seen_through = seen_through_of(state[0]["cursor"] if state else "")
        through = rows[-1]["seq"]
        latest: dict[tuple[str, str], int] = {}
        for row in rows:
            if row["kind"] in UPLOADED:
                latest[(row["kind"], row["entity_uuid"])] = row["seq"]
        entities = sorted(latest, key=lambda key: (ORDER[key[0]], latest[key]))
        made = 0
        for start in range(0, len(entities), size):
            chunk = entities[start:start + size]
            changes = []
            by_kind: dict[str, list[str]] = {}
            for kind, entity in chunk:
                by_kind.setdefault(kind, []).append(entity)
            images = {kind: await images_of(KINDS[kind], uuids) for kind, uuids in by_kind.items()}
            await _with_verifiers(images.get("pin_change", {}))
            for kind, entity in chunk:
                changes.append({"kind": kind, "uuid": entity, "image": images[kind].get(entity)})
            await SyncOutbox.insert(SyncOutbox(uuid=str(uuid_module.uuid4()), seq_through=through,
                                               changes=len(changes),
                                               payload={"changes": changes, "seen_through": seen_through}))
            made += 1
        await Branch.raw("DELETE FROM sync_change WHERE seq <= {}", through)
        return made

    return await db.run_in_write_transaction(work)


def seen_through_of(cursor: str) -> int:
    """The central log position a cursor has read through ("log:N", or a snapshot's starting point)."""
    parts = (cursor or "").split(":")
    try:
        if parts[0] == "log" and len(parts) == 2:
            return int(parts[1])
        if parts[0] == "snapshot" and len(parts) == 4:
            return int(parts[3])
    except ValueError:
        pass
    return 0


async def _with_verifiers(pin_changes: dict[str, dict[str, Any]]) -> None:
    """A PIN change carries the reader's verifier as it is now (the row itself keeps none)."""
    readers = sorted({image["patron"] for image in pin_changes.values() if image.get("patron")})
    if not readers:
        return
    verifiers = {str(row["uuid"]): row["pin_hash"] for row in
                 await Patron.select(Patron.uuid, Patron.pin_hash).where(Patron.uuid.is_in(readers))}
    for image in pin_changes.values():
        image["pin_hash"] = verifiers.get(image.get("patron") or "", "")


def _scrubbed(payload: dict[str, Any]) -> dict[str, Any]:
    """An acknowledged upload as kept for the record: without the PIN verifiers it carried."""
    changes = []
    for change in payload.get("changes", []):
        image = change.get("image")
        if isinstance(image, dict) and "pin_hash" in image:
            change = {**change, "image": {**image, "pin_hash": ""}}
        changes.append(change)
    return {**payload, "changes": changes}


# --- transport ---------------------------------------------------------------------------


async def _call(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
    """One request with retries and back-off on a dropped link or a 5xx; a 4xx fails at once."""
    delay = getattr(client, "retry_seconds", 0.5)
    last = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            response = await client.request(method, url, **kwargs)
            if response.status_code == 429 and attempt < ATTEMPTS:
                # the central node asks this branch to slow down: wait as long as it says (bounded)
                last = f"429 {_problem_detail(response)}"
                await asyncio.sleep(min(_retry_after(response, delay), 60.0))
                continue
            if response.status_code < 500:
                if response.status_code >= 400:
                    detail = _problem_detail(response)
                    raise SyncFailed(f"{method} {url}: {response.status_code} {detail}", response.status_code)
                return msgspec.json.decode(response.content)  # a feed page: several MB of JSON
            last = f"{response.status_code} {_problem_detail(response)}"
        except (httpx.TransportError, ValueError) as error:  # ValueError (msgspec's too): a body cut off mid-JSON
            last = f"{type(error).__name__}: {error}"
        if attempt < ATTEMPTS:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 8.0)
    raise SyncFailed(f"{method} {url}: {last}")


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return default


def _problem_detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", ""))[:300]
    except ValueError:
        return response.text[:300]


class CentralClient(httpx.AsyncClient):
    """A branch's client of the central node; `retry_seconds` is its first back-off (doubling)."""

    def __init__(self, *, retry_seconds: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.retry_seconds = retry_seconds


async def recover_box(settings: Settings, progress: Progress | None = None) -> dict[str, Any]:
    """A new box in place of a dead one: the initial sync, then the branch's own rows from the vault."""
    async with _client(settings) as client:
        return await vault.recover(settings, sync_round, _call, client, progress)


def _client(settings: Settings) -> httpx.AsyncClient:
    return CentralClient(
        base_url=settings.central_url or "",
        headers={"Authorization": f"Bearer {settings.sync_credential}", "Accept": "application/json"},
        timeout=settings.sync_timeout_seconds,
        retry_seconds=settings.sync_retry_ms / 1000,
    )


# --- the round ---------------------------------------------------------------------------


async def upload_waiting(client: httpx.AsyncClient, settings: Settings, report: RoundReport,
                         progress: Progress | None = None) -> None:
    waiting = await SyncOutbox.raw("SELECT id, uuid, payload FROM sync_outbox WHERE acknowledged_at IS NULL "
                                   "ORDER BY id")
    for position, row in enumerate(waiting, start=1):
        payload = db.json_object(row["payload"])
        await Branch.raw("UPDATE sync_outbox SET attempts = attempts + 1 WHERE id = {}", row["id"])
        try:
            answer = await _call(client, "POST", "/api/sync/uploads",
                                 json={"uuid": str(row["uuid"]), "branch": settings.branch_code,
                                       "changes": payload.get("changes", []),
                                       "seen_through": int(payload.get("seen_through") or 0),
                                       "sent_at": dt.datetime.now(dt.timezone.utc).isoformat()})
        except SyncFailed as error:
            if error.status not in REFUSED_FOR_GOOD:
                raise
            # The central node will never take this one: park it for staff and go on, so one
            # bad package does not hold back every later change and the pull.
            await _park(row["id"], str(row["uuid"]), str(error))
            report.errors.append(str(error))
            continue
        await apply_aliases(answer.get("aliases") or {}, answer.get("alias_kinds") or {})
        await _record_conflicts(answer, str(row["uuid"]), settings.branch_code or "")
        await Branch.raw("UPDATE sync_outbox SET acknowledged_at = {}, result = {}, payload = {} WHERE id = {}",
                         dt.datetime.now(dt.timezone.utc),
                         json.dumps({k: answer.get(k) for k in ("applied", "conflicts", "already_applied",
                                                                "clock_ahead_seconds")}),
                         json.dumps(_scrubbed(payload), ensure_ascii=False), row["id"])
        await Branch.raw("UPDATE sync_state SET uploaded_through = {} WHERE id = 1",
                         (await SyncOutbox.raw("SELECT seq_through FROM sync_outbox WHERE id = {}",
                                               row["id"]))[0]["seq_through"])
        report.uploaded += 1
        report.upload_conflicts += len(answer.get("conflicts") or [])
        if progress:
            progress("upload", position, len(waiting))


REFUSED_FOR_GOOD = (400, 413, 422)


async def _record_conflicts(answer: dict[str, Any], upload: str, branch_code: str) -> None:
    """What the central node did not take, listed here too (staff see it on both nodes).

    A resend of an upload already applied gets the same answer: its conflicts are kept once."""
    for conflict in answer.get("conflicts") or []:
        if not isinstance(conflict, dict) or not conflict.get("uuid"):
            continue
        if await SyncConflict.exists().where(SyncConflict.uuid == str(conflict["uuid"])):
            continue
        resolved = bool(conflict.get("resolved"))
        await SyncConflict.insert(SyncConflict(
            uuid=str(conflict["uuid"]), branch_code=branch_code, kind=str(conflict.get("kind", ""))[:24],
            entity_uuid=str(conflict.get("entity", ""))[:36], rule=str(conflict.get("rule", ""))[:40],
            detail=conflict.get("detail") if isinstance(conflict.get("detail"), dict) else {}, upload=upload,
            state="resolved" if resolved else "open",
            resolved_at=dt.datetime.now(dt.timezone.utc) if resolved else None,
            resolved_by="sync" if resolved else "", resolution="settled by the central node" if resolved else ""))


async def _park(outbox_id: int, upload: str, why: str) -> None:
    await Branch.raw("UPDATE sync_outbox SET acknowledged_at = {}, result = {} WHERE id = {}",
                     dt.datetime.now(dt.timezone.utc), json.dumps({"refused": why[:500]}), outbox_id)
    await SyncConflict.insert(SyncConflict(uuid=str(uuid_module.uuid4()), kind="upload", entity_uuid=upload,
                                           rule="upload_refused", detail={"why": why[:500]}, upload=upload))


async def pull(client: httpx.AsyncClient, report: RoundReport, progress: Progress | None = None) -> None:
    state = await Branch.raw("SELECT cursor FROM sync_state WHERE id = 1")
    cursor = state[0]["cursor"]
    total: int | None = None
    done = 0

    def fetch(after: str) -> asyncio.Future:
        return asyncio.ensure_future(_call(client, "GET", "/api/sync/changes",
                                           params={"cursor": after, "limit": PAGE_SIZE}))

    # The next page travels (and the central node reads it) while this one is written here;
    # pages are still written one after another, each with its own cursor.
    pending: asyncio.Future | None = fetch(cursor)
    try:
        while True:
            page = await pending
            pending = None
            changes, next_cursor = page.get("changes"), page.get("cursor")
            if not isinstance(changes, list) or not isinstance(next_cursor, str):
                raise SyncFailed("the central node answered with a page that is not a feed page")
            if page.get("snapshot_total") is not None:
                total = int(page["snapshot_total"])
            if page.get("more"):
                pending = fetch(next_cursor)
            counts = await apply_page(changes, next_cursor, snapshot=bool(page.get("snapshot")))
            report.pages += 1
            report.received += counts["written"] + counts["deleted"]
            report.kept_local += counts["kept_local"]
            report.refused_here += counts["refused"]
            done += len(changes)
            if progress:
                progress("snapshot" if page.get("snapshot") else "changes", done, total)
            if not page.get("more"):
                return
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending


async def sync_round(settings: Settings, progress: Progress | None = None,
                     client: httpx.AsyncClient | None = None) -> RoundReport:
    """One round; SyncFailed (with what was done kept) when the central node cannot be reached."""
    if settings.node_role != "branch" or not settings.central_url or not settings.sync_credential:
        raise InvalidInput("sync_not_configured")
    report = RoundReport()
    now = dt.datetime.now(dt.timezone.utc)
    await ensure_state()
    await Branch.raw("UPDATE sync_state SET last_attempt_at = {} WHERE id = 1", now)
    own_client = client is None
    client = client or _client(settings)
    try:
        report.packaged = await package_changes()
        try:
            await upload_waiting(client, settings, report, progress)
        except SyncFailed as upload_error:
            if upload_error.status in (401, 403):
                raise
            # what waits to go up stays queued (and keeps its local state); still take what came down
            await pull(client, report, progress)
            raise
        # The branch's own rows go to the central node's vault after the uploads they may name
        # (a reader made here) and before the pull; acknowledged here means kept there.
        report.vault_sent = await vault.send_changes(_call, client, settings)
        await pull(client, report, progress)
    except SyncFailed as error:
        await Branch.raw("UPDATE sync_state SET last_error = {} WHERE id = 1", str(error)[:1000])
        raise
    finally:
        if own_client:
            await client.aclose()
    await Branch.raw("UPDATE sync_state SET last_success_at = {}, last_error = '' WHERE id = 1",
                     dt.datetime.now(dt.timezone.utc))
    return report


_round_lock: asyncio.Lock | None = None


async def sync_round_once(settings: Settings, progress: Progress | None = None) -> RoundReport:
    """A round, never two at once in this process (the loop and a staff click)."""
    global _round_lock
    if _round_lock is None:
        _round_lock = asyncio.Lock()
    async with _round_lock:
        return await sync_round(settings, progress)


def start_sync_loop(settings: Settings) -> Callable[[], Awaitable[None]]:
    """Every interval: a round on a branch node that has a central node, compaction of the change
    log on the central node. Returns the stopper."""
    central = settings.node_role == "central"
    if settings.sync_interval_seconds <= 0 or not (central or settings.central_url):
        async def nothing_to_stop() -> None:
            return None

        return nothing_to_stop
    stop = asyncio.Event()
    interval = settings.sync_interval_seconds
    # Every worker (and every instance on the database) runs this loop; the one that claims the
    # interval's lease does the interval's work: one compaction, one round of this branch box.
    lease = "sync.compaction" if central else "sync.round"
    holder = this_process()

    async def loop() -> None:
        clock = asyncio.get_running_loop()
        while not stop.is_set():
            started = clock.time()
            try:
                if not await claim(lease, holder, lease_seconds(interval), dt.datetime.now(dt.timezone.utc)):
                    pass  # another worker has this interval's work
                elif central:
                    from library.sync.feed import compact_log

                    dropped = await compact_log()
                    if dropped:
                        log.info("change log compacted: %s redundant rows dropped", dropped)
                else:
                    report = await sync_round_once(settings)
                    if report.uploaded or report.received:
                        log.info("sync round: %s uploads sent, %s changes received", report.uploaded,
                                 report.received)
            except SyncFailed as error:
                log.warning("sync round failed (will retry): %s", error)
            except Exception:  # noqa: BLE001 - the loop must outlive one bad round
                log.exception("sync round failed")
            try:
                # The interval's beat: a round's own time is not added to it (see notice_loop).
                await asyncio.wait_for(stop.wait(), timeout=interval - (clock.time() - started) % interval)
            except TimeoutError:
                pass

    task = asyncio.create_task(loop(), name="library-sync")

    async def stop_loop() -> None:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=10)
        except TimeoutError:
            task.cancel()
            log.warning("the sync round in progress was cancelled at shutdown")

    return stop_loop
