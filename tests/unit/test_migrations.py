"""Migrations must run on both engines; see library/migration_support.py."""

from pathlib import Path

from library.settings import PACKAGE_ROOT


def migration_files() -> list[Path]:
    return sorted(p for p in PACKAGE_ROOT.glob("*/piccolo_migrations/*.py") if p.name != "__init__.py")


def test_every_domain_has_migrations():
    apps = {path.parent.parent.name for path in migration_files()}
    assert {"branches", "accounts", "catalog", "loans", "activities"} <= apps


def test_every_migration_uses_the_portable_manager():
    offenders = [str(p) for p in migration_files() if "PortableMigrationManager(" not in p.read_text()
                 or "import MigrationManager" in p.read_text()]
    assert not offenders, f"use scripts/new_migration.sh or edit by hand: {offenders}"
