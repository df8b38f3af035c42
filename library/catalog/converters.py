"""The worker processes that convert a big MARC file while the importing process writes.

Light on purpose (no Piccolo, no catalogue): `library catalog import` starts the workers
before it loads the rest of the import, so that their start-up (the conversion's modules,
OpenCC and the pinyin tables: about 0.2 s of CPU each) overlaps the command's own instead of
following it.
"""

from __future__ import annotations

import concurrent.futures
import gc
import multiprocessing
import sys
import threading

# Files bigger than this are read and converted in other processes while this one writes.
PARALLEL_FROM_BYTES = 1_000_000
WORKERS = 2  # measured: with one, the worker was the slower side (writing waited for it)


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
