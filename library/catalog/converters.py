"""The worker processes that convert a big MARC file while the importing process writes.

Light on purpose (no Piccolo, no catalogue): `library catalog import` begins the conversion
first thing, before it loads the rest of the import or reaches the database, so that the
workers' start-up (the conversion's modules, OpenCC and the pinyin tables: about 0.2 s of CPU
each) and their first chunks overlap the command's own start instead of following it.
"""

from __future__ import annotations

import collections
import concurrent.futures
import datetime as dt
import gc
import multiprocessing
import sys
import threading
from collections.abc import AsyncIterator

# Files bigger than this are read and converted in other processes while this one writes.
PARALLEL_FROM_BYTES = 1_000_000
WORKERS = 2  # measured: with one, the worker was the slower side (writing waited for it)
CHUNK_RECORDS = 1000  # a task's records (the first task's, a quarter of it: writing starts sooner)


def wanted(data: bytes) -> bool:
    """Whether `data` is converted by workers: big ISO 2709 files (MARCXML is read in-process)."""
    return len(data) >= PARALLEL_FROM_BYTES and data.lstrip()[:1] != b"<"


def _warm() -> None:
    from library.catalog import conversion  # noqa: F401 - what every task runs
    from library.catalog.search_text import index_text

    index_text(["预热 warm"])  # load OpenCC and the pinyin dictionaries once per worker
    # What is loaded by now (above all the pinyin dictionaries) lives as long as the worker:
    # the cycle collector need not walk it again every time converted rows pile up.
    gc.freeze()


def _started() -> None:
    pass


def _in_event_loop() -> bool:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def start() -> concurrent.futures.ProcessPoolExecutor:
    """The workers, starting now (the pool starts them with the first task it is given). The
    caller shuts the pool down.

    Forked where this process has no other thread and no event loop yet (the import command
    starts them first thing, see library.cli): a worker then begins as a copy of it instead
    of a new interpreter that imports the command's module again (about 0.1 s of CPU less a
    worker). Spawned otherwise: a server's threads, connections and loop are not for copying."""
    forking = sys.platform.startswith("linux") and threading.active_count() == 1 and not _in_event_loop()
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=WORKERS, initializer=_warm,
                                                  mp_context=multiprocessing.get_context(
                                                      "fork" if forking else "spawn"))
    for _ in range(WORKERS):
        pool.submit(_started)
    return pool


class Conversion:
    """A big ISO 2709 file converted by the workers, CHUNK_RECORDS records a task, a few tasks
    ahead of whoever takes the results (in file order). Begins at once; `close` ends it."""

    def __init__(self, data: bytes, flavour: str, today: dt.date) -> None:
        if len(data) < 24 or not data[:5].isdigit():
            from library.errors import InvalidInput

            raise InvalidInput("marc_not_marc")
        self._pool = start()  # first: the workers start up while the rest is imported here
        from library.catalog import marc
        from library.catalog.conversion import convert_chunk

        self._convert = convert_chunk
        self._chunks = marc.iso2709_chunks(data, CHUNK_RECORDS, max(1, CHUNK_RECORDS // 4))
        self._task = (flavour, today, marc._looks_like_utf8(data))
        self._pending: collections.deque[concurrent.futures.Future] = collections.deque()
        # Enough for the workers to go on with while the importing process starts up and reaches
        # the database (about half a second), after which it hands them one a result it takes.
        for _ in range(3 * WORKERS):
            self._submit()

    def _submit(self) -> None:
        chunk = next(self._chunks, None)
        if chunk:
            self._pending.append(self._pool.submit(self._convert, chunk[1], chunk[0], *self._task))

    async def results(self) -> AsyncIterator[tuple]:
        """Each task's (entries, skipped, records read, flavour seen), in file order."""
        import asyncio

        while self._pending:
            result = await asyncio.wrap_future(self._pending.popleft())
            self._submit()
            yield result

    def close(self, wait: bool = False) -> None:
        """Ends the conversion (what was not taken yet is dropped). `wait`: until the workers have
        exited, which a process about to exit wants: Python 3.11 may otherwise try to wake the
        pool's manager thread through a pipe that thread has just closed, and print an OSError
        as it exits."""
        self._pool.shutdown(wait=wait, cancel_futures=True)
