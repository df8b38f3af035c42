"""The `library` command as an operator uses it: clear messages, no stack traces."""

import asyncio
import concurrent.futures
import os
import subprocess
import sys

import pytest

from library.settings import PROJECT_ROOT
from tests.support import empty_all_tables


def library(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "library.cli", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, input=stdin, env={**os.environ, "LANG": "en_US.UTF-8", **(env or {})},
                          timeout=120)


@pytest.mark.parametrize("command", ["serve", "migrate", "demo", "create-staff", "check"])
def test_every_command_has_help(command):
    result = library(command, "--help")
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_a_malformed_setting_is_named_without_a_traceback():
    result = library("check", env={"LIBRARY_PORT": "eighty"})
    assert result.returncode == 2
    assert "LIBRARY_PORT must be a whole number" in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_postgresql_is_explained():
    result = library("migrate", env={"LIBRARY_DATABASE_URL": "postgresql://nobody:secret@127.0.0.1:1/library"})
    assert result.returncode == 2
    assert "Cannot reach the database at postgresql://nobody:***@127.0.0.1:1/library" in result.stderr
    assert "secret" not in result.stderr and "Traceback" not in result.stderr


def test_demo_check_and_create_staff_on_the_test_database():
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop of its own, as in tests/browser
        pool.submit(asyncio.run, empty_all_tables()).result()
    first = library("demo")
    assert first.returncode == 0, first.stderr
    second = library("demo")
    assert "created 0, already there 19" in second.stdout  # safe to run again
    assert library("check").returncode == 0
    created = library("create-staff", "--username", "cli-staff", "--name", "命令行", "--branch", "ZX",
                      "--password-stdin", stdin="a-long-enough-password\n")
    assert created.returncode == 0, created.stderr
    unknown = library("create-staff", "--username", "cli-other", "--name", "x", "--branch", "NOPE",
                      "--password-stdin", stdin="a-long-enough-password\n")
    assert unknown.returncode != 0 and "There is no branch with the code NOPE." in unknown.stderr
    again = library("create-staff", "--username", "CLI-staff", "--name", "x", "--branch", "ZX", "--password-stdin",
                    stdin="a-long-enough-password\n")
    assert again.returncode != 0 and "already in use" in again.stderr


def test_create_staff_refuses_a_short_password():
    result = library("create-staff", "--username", "shorty", "--name", "x", "--all-branches", "--password-stdin",
                     stdin="short\n")
    assert result.returncode != 0 and "at least 10 characters" in result.stderr


def test_every_command_is_in_the_readme():
    from library.cli import main

    readme = (PROJECT_ROOT / "README.md").read_text()
    names = []
    for name, command in main.commands.items():
        sub = getattr(command, "commands", None)
        names += [f"library {name} {child}" for child in sub] if sub else [f"library {name}"]
    missing = [name for name in names if name not in readme]
    assert not missing, f"undocumented commands: {missing}"


def test_catalog_import_of_a_big_file_then_again_updates_and_never_duplicates(tmp_path):
    from bench.generate import marc_file
    from library.catalog import converters

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, empty_all_tables()).result()
    assert library("demo").returncode == 0
    data = marc_file(3000)
    assert converters.wanted(data)  # converted in worker processes, as a real export would be
    path = tmp_path / "export.mrc"
    path.write_bytes(data)
    first = library("catalog", "import", str(path))
    assert first.returncode == 0, first.stderr
    assert "read 3000 (marc21 records): created 3000, updated 0; copies created" in first.stdout
    assert "copies created 0," not in first.stdout and "skipped 0" in first.stdout
    again = library("catalog", "import", str(path))
    assert again.returncode == 0, again.stderr
    assert "created 0, updated 3000; copies created 0, updated" in again.stdout and "skipped 0" in again.stdout
