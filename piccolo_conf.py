"""Piccolo's configuration: the engine chosen from settings, and every app."""

from piccolo.conf.apps import AppRegistry

from library.db import make_engine
from library.settings import load_settings

DB = make_engine(load_settings())

APP_REGISTRY = AppRegistry(
    apps=[
        "library.branches.piccolo_app",
        "library.accounts.piccolo_app",
        "library.catalog.piccolo_app",
        "library.loans.piccolo_app",
        "library.activities.piccolo_app",
        "library.sync.piccolo_app",
    ]
)
