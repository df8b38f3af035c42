"""Every setting the README promises is held by a test.

The walk: each variable in the README's settings table (the first column under
"## Settings"; a cell may name two, `LIBRARY_HOST` / `LIBRARY_PORT`) must appear in the
source of a test function — its body, docstring, comments or decorators — in a test
module under tests/. tests/unit/test_settings.py does not count: it checks that a value is
read and validated, not that the setting does what the README says. Naming the variable
is what the walk can see; that the test exercises what the README promises (a value set,
a behaviour that would change without it) is for the reviewer of that test.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from library.settings import PROJECT_ROOT, SETTING_NAMES

TESTS = PROJECT_ROOT / "tests"
# Reading and validation only (see above); and this walk itself.
NOT_COUNTED = {TESTS / "unit" / "test_settings.py", Path(__file__).resolve()}
VARIABLE = re.compile(r"`(LIBRARY_[A-Z0-9_]+)`")


def readme_settings() -> list[str]:
    """The variables of the README's settings table, in its order."""
    lines = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("## Settings")
    names: list[str] = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            first_cell = line.strip("|").split("|")[0]
            names += VARIABLE.findall(first_cell)
    return names


def _test_sources(path: Path) -> list[str]:
    """The source of each test function of a module, decorators included."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    sources = []
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
            first = min([node.lineno] + [decorator.lineno for decorator in node.decorator_list])
            sources.append("\n".join(lines[first - 1:node.end_lineno]))
    return sources


def naming_tests(names: list[str]) -> dict[str, list[str]]:
    """For each name, the tests (path::function) whose source names it."""
    found: dict[str, list[str]] = {name: [] for name in names}
    # A name is a whole word: LIBRARY_SMTP_PORT inside LIBRARY_SMTP_PORTS would not count.
    patterns = {name: re.compile(rf"\b{name}\b") for name in names}
    for path in sorted(TESTS.rglob("test_*.py")):
        if path.resolve() in NOT_COUNTED:
            continue
        for source in _test_sources(path):
            function = re.search(r"def (test_\w+)", source).group(1)
            for name, pattern in patterns.items():
                if pattern.search(source):
                    found[name].append(f"{path.relative_to(PROJECT_ROOT)}::{function}")
    return found


def test_the_walk_reads_the_whole_settings_table():
    names = readme_settings()
    assert len(names) == len(set(names)), "a setting is listed twice"
    # Both ways: a variable the code reads and the table leaves out, or a row for a variable
    # the code does not read, would make the walk below prove less than it seems to.
    assert set(names) == set(SETTING_NAMES), (sorted(set(SETTING_NAMES) - set(names)),
                                              sorted(set(names) - set(SETTING_NAMES)))
    assert {"LIBRARY_HOST", "LIBRARY_PORT", "LIBRARY_SMTP_USER", "LIBRARY_SMTP_PASSWORD"} <= set(names)


def test_every_setting_in_the_readme_has_a_test_naming_it():
    untested = [name for name, tests in naming_tests(readme_settings()).items() if not tests]
    assert not untested, ("settings promised in the README with no test naming them (a test function under "
                          f"tests/, outside tests/unit/test_settings.py): {', '.join(untested)}")
