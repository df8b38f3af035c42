"""The notice service knows no domain that uses it (issue 18, part 7): circulation and activities
hand it their messages and their scans; it imports neither of them (nor self-service, privacy,
sync), not even inside a function."""

from tests.unit.test_layers import LIBRARY, _imports, _module, _package

USERS = {"loans", "activities", "selfcheck", "privacy", "sync", "catalog"}


def test_notices_import_no_domain_that_uses_them():
    wrong = [f"{_module(path)} imports {target}" for path in sorted((LIBRARY / "notices").rglob("*.py"))
             if "piccolo_migrations" not in path.parts for target in sorted(_imports(path))
             if _package(target) in USERS]
    assert not wrong, "\n".join(wrong)


def test_circulation_no_longer_reaches_activities():
    wrong = [f"{_module(path)} imports {target}" for path in sorted((LIBRARY / "loans").rglob("*.py"))
             if "piccolo_migrations" not in path.parts for target in sorted(_imports(path))
             if _package(target) == "activities"]
    assert not wrong, "\n".join(wrong)
