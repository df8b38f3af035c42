"""Two real nodes per test: the central library and the Zhenxing branch (ZX).

- central: the engine under test (PostgreSQL when LIBRARY_TEST_DATABASE_URL names a server,
  else a SQLite file), migrated, demo loaded (`library demo`: branches JX, ZX, XZ, readers,
  books, loans), LIBRARY_NODE_ROLE=central, a credential issued for ZX with
  `library sync credential --branch ZX`; its server (`library serve`) running.
- branch: a fresh migrated SQLite file (no demo: everything it knows comes by sync), a staff
  account of its own (staff accounts do not travel), LIBRARY_NODE_ROLE=branch with the
  central node's URL and the credential. Its server is started by the tests that need it.

Migrating and loading the demo takes seconds, so it is done once per run into templates;
each test gets fresh copies (`CREATE DATABASE ... TEMPLATE` on PostgreSQL, a file copy on
SQLite), dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support import node_database
from tests.sync.nodes import Node, copy_sqlite, pg_admin, pg_drop, token, with_database

BRANCH_STAFF = ("desk", "desk-password-zx")


@dataclass
class Templates:
    root: Path
    central_url: str  # sqlite:///... or the template PostgreSQL database's URL
    branch_file: Path
    credential: str
    admin_url: str | None
    pg_template: str | None


def _admin_url() -> str | None:
    return os.environ.get("LIBRARY_TEST_DATABASE_URL") or None


@pytest.fixture(scope="session")
def templates() -> Iterator[Templates]:
    root = Path(tempfile.mkdtemp(prefix="library-sync-test-"))
    admin_url = _admin_url()
    try:
        central_dir = root / "central-template"
        central_dir.mkdir()
        with node_database("sync_template", central_dir / "central.sqlite3") as central_url:
            pg_template = urlsplit(central_url).path.lstrip("/") if admin_url else None
            central = Node("central", central_dir, central_url, {"LIBRARY_NODE_ROLE": "central"})
            central.library("migrate")
            central.library("demo")
            issued = central.library("sync", "credential", "--branch", "ZX")
            credential = issued.stdout.strip().splitlines()[-1].strip()
            assert credential.startswith("ZX."), credential

            branch_dir = root / "branch-template"
            branch_dir.mkdir()
            branch = Node("branch", branch_dir, f"sqlite:///{branch_dir / 'branch.sqlite3'}")
            branch.library("migrate")
            branch.library("create-staff", "--username", BRANCH_STAFF[0], "--name", "Zhenxing desk", "--role",
                           "administrator", "--all-branches", "--language", "en", "--password-stdin",
                           input=BRANCH_STAFF[1] + "\n")
            assert branch.count("sync_change") == 0, "a fresh branch has nothing to send"
            yield Templates(root, central_url, branch.sqlite_path, credential, admin_url, pg_template)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def central(templates: Templates) -> Iterator[Node]:
    """A fresh central node (a copy of the template) with its server running."""
    data_dir = Path(tempfile.mkdtemp(prefix="central-", dir=templates.root))
    name = None
    if templates.admin_url:
        name = f"test_sync_central_{token()}"
        pg_admin(templates.admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{templates.pg_template}"')
        url = with_database(templates.admin_url, name)
    else:
        copy_sqlite(Path(templates.central_url[len("sqlite:///"):]), data_dir / "central.sqlite3")
        url = f"sqlite:///{data_dir / 'central.sqlite3'}"
    node = Node("central", data_dir, url, {"LIBRARY_NODE_ROLE": "central"})
    node.start()
    try:
        yield node
    finally:
        node.stop()
        print(f"--- central server log ---\n{node.server_log()[-6000:]}")  # shown when the test failed
        if name:
            pg_drop(templates.admin_url, name)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def branch(templates: Templates, central: Node) -> Iterator[Node]:
    """A fresh, empty branch node ZX that syncs with `central` (server not started)."""
    data_dir = Path(tempfile.mkdtemp(prefix="branch-", dir=templates.root))
    shutil.copyfile(templates.branch_file, data_dir / "branch.sqlite3")
    node = Node("branch", data_dir, f"sqlite:///{data_dir / 'branch.sqlite3'}", {
        "LIBRARY_NODE_ROLE": "branch", "LIBRARY_BRANCH_CODE": "ZX", "LIBRARY_CENTRAL_URL": central.url,
        "LIBRARY_SYNC_CREDENTIAL": templates.credential, "LIBRARY_SYNC_TIMEOUT_SECONDS": "20"})
    try:
        yield node
    finally:
        node.stop()
        print(f"--- branch server log ---\n{node.server_log()[-6000:]}")
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def credential(templates: Templates) -> str:
    return templates.credential
