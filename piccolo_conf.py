"""Piccolo's configuration: the engine chosen from settings, and every app.

The app registry is made when Piccolo first asks for it (migrations): Piccolo's app machinery
takes about 0.2 s of CPU to import (it brings in black and pathspec), which commands that only
use the engine (a MARC import, for one) need not pay.
"""

from library.db import engine

# The engine library.db made (or makes now) from the settings: one per process.
DB = engine()

APPS = [
    "library.branches.piccolo_app",
    "library.accounts.piccolo_app",
    "library.catalog.piccolo_app",
    "library.loans.piccolo_app",
    "library.activities.piccolo_app",
    "library.notices.piccolo_app",
    "library.sync.piccolo_app",
    "library.privacy.piccolo_app",
    "library.selfcheck.piccolo_app",
    "library.reports.piccolo_app",
    "library.volunteers.piccolo_app",
]


def __getattr__(name: str):
    if name == "APP_REGISTRY":
        from piccolo.conf.apps import AppRegistry

        registry = globals()["APP_REGISTRY"] = AppRegistry(apps=APPS)
        return registry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
