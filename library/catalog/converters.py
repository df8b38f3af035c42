"""The conversion of a MARC file on disk into rows, in worker processes while the importing
process writes (big ISO 2709 files), or in the importing process itself (small files, MARCXML).

Light on purpose (no Piccolo, no catalogue): `library catalog import` begins the conversion
first thing, before it loads the rest of the import or reaches the database, so that the
workers' start-up (the conversion's modules, OpenCC and the pinyin tables: about 0.2 s of CPU
each) and their first chunks overlap the command's own start instead of following it.

The file is read from disk a block at a time and cut into frames here (see
library.catalog.conversion); at most a few chunks are in flight, so neither this process nor
the workers ever hold the whole file, whatever its size.
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
from pathlib import Path

# Files bigger than this are read and converted in other processes while this one writes.
PARALLEL_FROM_BYTES = 1_000_000
WORKERS = 2  # measured: with one, the worker was the slower side (writing waited for it)
CHUNK_RECORDS = 1000  # a task's records (the first task's, a quarter of it: writing starts sooner)
# Tasks handed to the workers ahead of the one being taken: enough for them to go on with
# while the importing process starts up and reaches the database (about half a second), and
# few enough that what waits for the writer stays small.
AHEAD = 3 * WORKERS


def is_xml(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(512).lstrip()[:1] == b"<"


def wanted(path: Path) -> bool:
    """Whether the file is converted by workers: big ISO 2709 files (MARCXML is read in-process)."""
    return path.stat().st_size >= PARALLEL_FROM_BYTES and not is_xml(path)


def check_marc(path: Path) -> None:
    """Refuses at once a file that is neither ISO 2709 nor MARCXML (nothing is read into a batch)."""
    from library.errors import InvalidInput

    with path.open("rb") as handle:
        head = handle.read(512).lstrip(b" \t\r\n\x00\xef\xbb\xbf")
    if not head:
        raise InvalidInput("marc_empty")
    if head[:1] == b"<":
        if b"<html" in head[:100].lower() or b"<!doctype html" in head[:100].lower():
            raise InvalidInput("marc_not_marc")
        return
    if len(head) < 24 or not head[:5].isdigit():
        raise InvalidInput("marc_not_marc")


def count_records(path: Path) -> int:
    """For a progress bar: record terminators in ISO 2709, closing record tags in MARCXML; read a
    block at a time."""
    import re

    xml = is_xml(path)
    pattern = re.compile(rb"</(?:\w+:)?record>")
    count, tail = 0, b""
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            if xml:
                data = tail + block
                count += len(pattern.findall(data))
                tail = data[-32:] if not data.endswith(b">") else b""
            else:
                count += block.count(b"\x1d")
    return max(1, count)


def _warm() -> None:
    from library.catalog import conversion  # noqa: F401 - what every task runs
    from library.catalog.search_text import index_text

    index_text(["预热 warm"])  # load OpenCC and the pinyin dictionaries once per worker
    # What is loaded by now (above all the pinyin dictionaries) lives as long as the worker, and
    # a worker only converts (no cycles: what it makes is freed by reference counting once
    # sent): the cycle collector stands aside (measured: 3-4% of a worker's time otherwise).
    gc.freeze()
    gc.disable()


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
    """A MARC file on disk converted CHUNK_RECORDS records a task, a few tasks ahead of whoever
    takes the results (in file order): by the workers for a big ISO 2709 file, else here.
    Begins at once; `close` ends it. `source`: what each record's marc_source begins with."""

    def __init__(self, path: Path, flavour: str, today: dt.date, encoding: str = "auto",
                 source: str = "import", parallel: bool | None = None,
                 workers: concurrent.futures.ProcessPoolExecutor | None = None) -> None:
        """`workers`: a pool `start` began earlier (forked before the caller's event loop), which
        this conversion then owns."""
        check_marc(path)
        self.path = path
        self._parallel = wanted(path) if parallel is None else parallel and not is_xml(path)
        if workers is not None and not self._parallel:
            workers.shutdown(wait=False, cancel_futures=True)
            workers = None
        # First: the workers start up while the rest is imported here.
        self._pool = (workers or start()) if self._parallel else None
        from library.catalog import conversion

        self._conversion = conversion
        self._handle = path.open("rb")
        frames = conversion.xml_records(self._handle) if is_xml(path) else conversion.iso2709_frames(self._handle)
        self._chunks = conversion.frame_chunks(frames, CHUNK_RECORDS, max(1, CHUNK_RECORDS // 4))
        self._task = (flavour, today, encoding, source)
        self._pending: collections.deque[concurrent.futures.Future] = collections.deque()
        if self._pool is not None:
            for _ in range(AHEAD):
                self._submit()

    def _submit(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        position, frames = chunk
        self._pending.append(self._pool.submit(self._conversion.convert_chunk, frames, position, *self._task))
        return True

    async def results(self) -> AsyncIterator[tuple]:
        """Each task's ChunkResult (library.catalog.conversion), in file order."""
        import asyncio

        if self._pool is None:
            # In this process, but off the event loop: a server answers other requests meanwhile.
            while (chunk := await asyncio.to_thread(next, self._chunks, None)) is not None:
                position, frames = chunk
                yield await asyncio.to_thread(self._conversion.convert_chunk, frames, position, *self._task)
            return
        while self._pending:
            result = await asyncio.wrap_future(self._pending.popleft())
            self._submit()
            yield result

    def close(self, wait: bool = False) -> None:
        """Ends the conversion (what was not taken yet is dropped). `wait`: until the workers have
        exited, which a process about to exit wants: Python 3.11 may otherwise try to wake the
        pool's manager thread through a pipe that thread has just closed, and print an OSError
        as it exits."""
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
        self._handle.close()
