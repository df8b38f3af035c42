"""A real Z39.50 (and SRU) server for the copy-cataloguing tests: Debian's Zebra (idzebra-2.0),
indexed from the records in tests/zebra_records.py and started on free ports.

Two servers, as a branch would configure two targets: a union catalogue serving MARC21 in
UTF-8 (database MARC21), and a Chinese library's server serving CNMARC in GBK that also reads
its query terms as GBK (database CNMARC). Each answers Z39.50 and, on the same port, SRU
(`as_sru`: CQL through YAZ's pqf.properties, records as MARCXML). The configuration is in
tests/fixtures/zebra.

Without zebrasrv the tests that need it skip, saying how to install it (scripts/ensure_yaz.sh);
in CI (LIBRARY_REQUIRE_ZEBRA=1, set by .ci/run) a missing Zebra fails them instead, so that they never
silently stop running.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from library.catalog.sources import z3950
from library.catalog.sources.base import Target
from tests import zebra_records
from tests.support import SERVER_START_SECONDS

CONFIG = Path(__file__).parent / "fixtures" / "zebra"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def missing_zebra() -> str | None:
    """Why Zebra cannot run here, or None."""
    missing = [name for name in ("zebrasrv", "zebraidx") if shutil.which(name) is None]
    if not z3950.available():
        missing.append("libyaz5")
    if not missing:
        return None
    return f"{', '.join(missing)} missing: run scripts/ensure_yaz.sh (Debian's idzebra-2.0, yaz, libyaz5)"


def missing_tool(reason: str) -> None:
    """Skip for want of YAZ or Zebra, or fail where the suite must be whole (.ci/run)."""
    if os.environ.get("LIBRARY_REQUIRE_ZEBRA") == "1":
        pytest.fail(f"in CI the Z39.50 and SRU tests must run: {reason}")
    pytest.skip(reason)


def require_zebra() -> None:
    reason = missing_zebra()
    if reason is not None:
        missing_tool(reason)


def _wait_listening(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"zebrasrv stopped: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"zebrasrv is not listening on {port}")


@dataclass
class ZebraServers:
    marc21: Target  # MARC21, UTF-8
    cnmarc: Target  # CNMARC, GBK
    processes: list[subprocess.Popen]

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def start_zebra(folder: Path) -> ZebraServers:
    """Index the fixture records and start both servers. Call `require_zebra()` first."""
    plans = (("marc21", "MARC21", zebra_records.marc21_file()), ("cnmarc", "CNMARC", zebra_records.cnmarc_gbk_file()))
    processes, targets = [], {}
    for flavour, database, data in plans:
        # A folder each: a Zebra server locks its folder ("Zebra server already running").
        home = folder / flavour
        home.mkdir()
        for name in os.listdir(CONFIG):
            shutil.copy(CONFIG / name, home / name)
        (home / f"register-{flavour}").mkdir()
        records = home / f"records-{flavour}"
        records.mkdir(exist_ok=True)
        (records / f"{flavour}.mrc").write_bytes(data)
        subprocess.run(["zebraidx", "-c", f"{flavour}.cfg", "-d", database, "update", records.name], cwd=home,
                       check=True, capture_output=True, timeout=60)
        port = free_port()
        log = home / f"zebrasrv-{flavour}.log"
        front = (home / "yazgfs.xml.in").read_text().format(
            port=port, config=f"{flavour}.cfg", syntax="usmarc" if flavour == "marc21" else "unimarc")
        (home / "yazgfs.xml").write_text(front)
        process = subprocess.Popen(["zebrasrv", "-f", "yazgfs.xml", "-l", log.name], cwd=home,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(process)
        _wait_listening(port, process, log)
        syntax, charset = ("marc21", "utf-8") if flavour == "marc21" else ("unimarc", "gb18030")
        targets[flavour] = Target(name=f"Zebra {database}", protocol="z3950", host="127.0.0.1", port=port,
                                  database=database, syntax=syntax, charset=charset, timeout_seconds=10)
    return ZebraServers(marc21=targets["marc21"], cnmarc=targets["cnmarc"], processes=processes)


def zebra_servers(tmp_path_factory) -> Iterator[ZebraServers]:
    """The body of a test module's fixture: `zebra = pytest.fixture(scope="module")(zebra_servers)`."""
    require_zebra()
    servers = start_zebra(tmp_path_factory.mktemp("zebra"))
    try:
        yield servers
    finally:
        servers.stop()


def as_sru(target: Target) -> Target:
    """The same Zebra asked over SRU (zebrasrv answers HTTP on its Z39.50 port)."""
    return replace(target, protocol="sru", name=target.name.replace("Zebra", "Zebra SRU"))
