"""The notice worker: one round runs each domain's scans (its `Step`s), then sends what is due.

The steps come from the domains (circulation's hold shelf and loan reminders, activities'
lapsing offers and session reminders) and are handed in by the entry points (library.app,
library.cli): this package imports no domain. A step that fails is logged and reported; the
next steps still run (a broken reminder scan must not keep the hold-ready notices from going
out).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from library.branches.leases import claim, lease_seconds, this_process
from library.clock import now_utc
from library.notices.messages import MESSAGES
from library.notices.outbox import SendReport, _describe, send_due
from library.settings import Settings

log = logging.getLogger("library.notices")

# The lease of the server loop's round (library.branches.leases).
NOTICE_LEASE = "notices"


@dataclass(frozen=True)
class Step:
    """One scan of a round: `run(now, settings)` returns counts by name (notices queued by kind,
    holds expired, offers lapsed...)."""

    name: str
    run: Callable[[dt.datetime, Settings], Awaitable[dict[str, int]]]


@dataclass
class CycleReport:
    counts: dict[str, int] = field(default_factory=dict)
    sending: SendReport = field(default_factory=SendReport)
    # Steps that failed, with the error; the other steps still ran.
    failures: list[str] = field(default_factory=list)

    @property
    def queued(self) -> dict[str, int]:
        """The counts that are notices queued, by kind."""
        return {name: count for name, count in self.counts.items() if name in MESSAGES}

    @property
    def holds_expired(self) -> int:
        return self.counts.get("holds_expired", 0)


async def run_cycle(now: dt.datetime, settings: Settings, steps: Sequence[Step]) -> CycleReport:
    """One round: every step in the order given, then the sending."""
    report = CycleReport()
    for step in steps:
        try:
            counts = await step.run(now, settings) or {}
        except Exception as error:  # noqa: BLE001 - one failed step does not stop the round
            log.exception("notice cycle: %s failed", step.name)
            report.failures.append(f"{step.name}: {_describe(error)}")
            continue
        for name, count in counts.items():
            report.counts[name] = report.counts.get(name, 0) + count
    try:
        report.sending = await send_due(now, settings)
    except Exception as error:  # noqa: BLE001 - reported like any step
        log.exception("notice cycle: sending failed")
        report.failures.append(f"send notices: {_describe(error)}")
    return report


async def notice_loop(settings: Settings, stop: asyncio.Event, steps: Sequence[Step] = (),
                      first_delay: float = 5.0) -> None:
    """Every LIBRARY_NOTICE_INTERVAL_SECONDS until `stop` is set; never raises.

    Every worker of every instance on the database runs this loop; a round runs only in the
    one that claims the interval's lease: the scans and the sending once per interval, not
    once per worker.
    """
    interval = settings.notice_interval_seconds
    if interval <= 0:
        return
    delay = min(first_delay, interval)
    holder = this_process()
    clock = asyncio.get_running_loop()
    while True:
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
            return
        except TimeoutError:
            pass
        started = clock.time()
        try:
            now = now_utc()
            # Else another worker has this interval's round.
            if await claim(NOTICE_LEASE, holder, lease_seconds(interval), now):
                report = await run_cycle(now, settings, steps)
                if report.sending.sent or report.sending.failed or report.failures:
                    log.info("notices: sent %d, failed %d, steps failed %d", report.sending.sent,
                             report.sending.failed, len(report.failures))
        except Exception:  # noqa: BLE001 - the loop outlives any one round
            log.exception("notice cycle failed")
        # The timer keeps the interval's beat: a round's own time is not added to it (else the
        # winner's next try comes later than the others'), and a round that overruns skips the
        # beats it covered.
        delay = interval - (clock.time() - started) % interval


def start_notice_loop(settings: Settings, steps: Sequence[Step] = ()) -> Callable[[], Awaitable[None]]:
    """Start the loop in the running event loop; returns the coroutine function that stops it
    (a round in progress gets a few seconds to finish, then is cancelled; a notice it had
    claimed is sent by a later round once the claim lapses)."""
    if settings.notice_interval_seconds <= 0:
        async def nothing_to_stop() -> None:
            return None

        return nothing_to_stop
    stop = asyncio.Event()
    task = asyncio.create_task(notice_loop(settings, stop, steps), name="library-notices")

    async def stop_loop() -> None:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=10)
        except TimeoutError:
            log.warning("the notice round in progress was cancelled at shutdown")
        except Exception:  # noqa: BLE001 - shutting down; the loop logs its own errors
            log.exception("notice loop ended with an error")

    return stop_loop
