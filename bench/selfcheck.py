"""selfcheck.sip2_cycle: checkout (11) → checkin (09) cycles over SIP2 from concurrent machines.

The data set is loans.checkout_cycle's (`bench.loans._seed`: generated copies at ZX and as many
readers), with a kiosk account of ZX that lends on the card alone (the generated readers have
no PIN). `library sip2` runs as a user runs it, in its own process; `--concurrency` machines
(16 by default) each hold one connection, log in once, and loop over their own slice of
copies and readers: checkout, then checkin, with error detection (AY/AZ) as machines use it.

The ceiling is loans.checkout_cycle's too: the same cycles by `library.loans.service`'s
checkout and checkin in one process with no network in between, half measured before the
SIP2 phase and half after it. Goal (issue 19): ratio at least 0.7, p99 under 100 ms on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

from bench.harness import ROOT, Measurement, database, free_port, listening
from bench.loans import BRANCH, as_measurement, child, cycle_barcode, cycle_card, cycle_figures

KIOSK, PASSWORD = "bench-kiosk", "bench-kiosk-password"
DATE = "20261207    100000"


@contextlib.contextmanager
def sip2_server(env: dict[str, str]) -> Iterator[int]:
    """`library sip2` as a user runs it, in its own process."""
    port = free_port()
    with listening([sys.executable, "-m", "library.cli", "sip2", "--host", "127.0.0.1", "--port", str(port)],
                   env, port, "SIP2 server"):
        yield port


def _message(code: str, fixed: list[str], fields: list[tuple[str, str]], sequence: int) -> bytes:
    from library.selfcheck.protocol import format_message

    return format_message(code, fixed, fields, str(sequence % 10), True)


async def _ask(reader, writer, data: bytes) -> bytes:
    writer.write(data)
    await writer.drain()
    return await reader.readuntil(b"\r")


async def sip2_cycles(port: int, count: int, concurrency: int, duration: float, warmup: float = 2.0) -> dict:
    result = Measurement(0, 0, 0.0)
    checkout_ms: list[float] = []
    checkin_ms: list[float] = []
    kinds: Counter = Counter()
    machines = []
    for _ in range(concurrency):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = await _ask(reader, writer, _message("93", ["0", "0"], [("CN", KIOSK), ("CO", PASSWORD)], 0))
        if not answer.startswith(b"941"):
            raise RuntimeError(f"kiosk login refused: {answer!r}")
        machines.append((reader, writer))

    async def machine(index: int, deadline: float, record: bool) -> None:
        reader, writer = machines[index]
        slot, sequence = index, 1
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            lent = await _ask(reader, writer, _message("11", ["N", "N", DATE, " " * 18], [
                ("AO", BRANCH), ("AA", cycle_card(slot)), ("AB", cycle_barcode(slot)), ("AC", "")], sequence))
            middle = time.perf_counter()
            # Checked in even after a refused checkout, so a stuck copy frees itself.
            back = await _ask(reader, writer, _message("09", ["N", DATE, DATE], [
                ("AP", BRANCH), ("AO", BRANCH), ("AB", cycle_barcode(slot)), ("AC", "")], sequence + 1))
            ended = time.perf_counter()
            ok = lent.startswith(b"121") and back.startswith(b"101")
            if record:
                result.requests += ok
                result.errors += not ok
                result.latencies_ms.append((ended - began) * 1000)
                if ok:
                    checkout_ms.append((middle - began) * 1000)
                    checkin_ms.append((ended - middle) * 1000)
                else:
                    kinds[(lent[:3] + b" " + back[:3]).decode(errors="replace")] += 1
            slot, sequence = (slot + concurrency) % count, sequence + 2

    start = time.perf_counter()
    await asyncio.gather(*(machine(i, start + warmup, False) for i in range(concurrency)))
    start = time.perf_counter()
    await asyncio.gather(*(machine(i, start + duration, True) for i in range(concurrency)))
    result.duration_s = time.perf_counter() - start
    for _, writer in machines:
        writer.close()
    return {"measurement": result, "checkout": Measurement(len(checkout_ms), 0, 0, checkout_ms),
            "checkin": Measurement(len(checkin_ms), 0, 0, checkin_ms), "error_kinds": dict(kinds.most_common(3))}


def sip2_cycle(engine: str, duration: float = 8.0, concurrency: int = 16, items: int = 5000) -> list[dict]:
    items = max(items, concurrency)
    with database(engine) as env:
        began = time.perf_counter()
        child(env, "_seed", items)
        subprocess.run([sys.executable, "-m", "library.cli", "selfcheck", "add-kiosk", "--login", KIOSK, "--branch",
                        BRANCH, "--no-pin", "--password-stdin"], input=PASSWORD + "\n", text=True, env=env,
                       cwd=ROOT, check=True, capture_output=True)
        prepare_s = time.perf_counter() - began
        many_before = child(env, "_direct", items, concurrency, duration / 2, 1.0)
        one_before = child(env, "_direct", items, 1, duration / 2, 1.0)
        with sip2_server(env) as port:
            sip2 = asyncio.run(sip2_cycles(port, items, concurrency, duration))
            many_after = child(env, "_direct", items, concurrency, duration / 2, 1.0)
            one_after = child(env, "_direct", items, 1, duration / 2, 1.0)
    measured = sip2["measurement"]
    many, one = as_measurement(many_before, many_after), as_measurement(one_before, one_after)
    return [{
        **cycle_figures("selfcheck.sip2_cycle", engine, sip2, many, one, concurrency,
                        "the same cycles by the service functions in one process, no network, same database, same run"),
        "machines": concurrency,
        "items": items, "duration_s": round(measured.duration_s, 2), "prepare_s": round(prepare_s, 1),
        "python": sys.version.split()[0],
    }]
