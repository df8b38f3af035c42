"""The settings of a branch node's sync rounds: how often, how long a request may take, how it backs off."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

from tests.sync.conftest import Templates
from tests.sync.nodes import Node, free_port
from tests.sync.views import branch_copies, central_zx_copies

ATTEMPTS = 5  # library.sync.client.ATTEMPTS


def _wait_for(condition, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_running_branch_node_syncs_every_interval(central: Node, branch: Node):
    """LIBRARY_SYNC_INTERVAL_SECONDS=1: the branch's server syncs by itself — the initial sync, then
    round after round — with nobody running `library sync`."""
    branch.settings["LIBRARY_SYNC_INTERVAL_SECONDS"] = "1"
    branch.start()
    _wait_for(lambda: branch.state()["last_success_at"] is not None, "the first round of the server's loop")
    first = branch.state()["last_success_at"]
    _wait_for(lambda: branch.state()["last_success_at"] != first, "a later round")
    assert branch_copies(branch) == central_zx_copies(central)
    assert "sync round failed" not in branch.server_log()


class SilentCentral:
    """A 'central node' that takes connections and requests and never answers; it notes when each
    request arrived."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: list[float] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._open.append(connection)
            threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection: socket.socket) -> None:
        try:
            while data := connection.recv(65536):
                if data[:4] in (b"GET ", b"POST"):
                    self.arrivals.append(time.monotonic())
        except OSError:
            pass

    def __enter__(self) -> SilentCentral:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._listener.close()
        for connection in self._open:
            connection.close()


def test_a_request_is_given_up_after_the_timeout_and_retried_with_back_off(templates: Templates):
    """LIBRARY_SYNC_TIMEOUT_SECONDS=1 and LIBRARY_SYNC_RETRY_MS=200, against a central node that never
    answers: each try is given up after a second, the pauses between tries start at 0.2 s and double,
    and after five tries the round stops, saying why."""
    data_dir = Path(tempfile.mkdtemp(prefix="branch-", dir=templates.root))
    try:
        shutil.copyfile(templates.branch_file, data_dir / "branch.sqlite3")
        with SilentCentral() as silent:
            branch = Node("branch", data_dir, f"sqlite:///{data_dir / 'branch.sqlite3'}", {
                "LIBRARY_NODE_ROLE": "branch", "LIBRARY_BRANCH_CODE": "ZX",
                "LIBRARY_CENTRAL_URL": f"http://127.0.0.1:{silent.port}", "LIBRARY_SYNC_CREDENTIAL": templates.credential,
                "LIBRARY_SYNC_TIMEOUT_SECONDS": "1", "LIBRARY_SYNC_RETRY_MS": "200"})
            # With the defaults (30 s, 0.5 s) this would take more than two minutes.
            done = branch.library("sync", check=False, timeout=60)
        assert done.returncode != 0 and "sync stopped" in done.stderr and "ReadTimeout" in done.stderr
        assert len(silent.arrivals) == ATTEMPTS
        gaps = [later - earlier for earlier, later in zip(silent.arrivals, silent.arrivals[1:])]
        # Between two tries: the timeout, then the pause (0.2, 0.4, 0.8, 1.6 s); never the default 30 s.
        for gap, pause in zip(gaps, (0.2, 0.4, 0.8, 1.6)):
            assert 1 + pause - 0.05 <= gap < 15, gaps
        assert branch.state()["last_success_at"] is None and "ReadTimeout" in branch.state()["last_error"]
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
