import os

from piccolo.conf.apps import AppConfig, table_finder

CURRENT_DIRECTORY = os.path.dirname(os.path.abspath(__file__))

APP_CONFIG = AppConfig(
    app_name="notices",
    migrations_folder_path=os.path.join(CURRENT_DIRECTORY, "piccolo_migrations"),
    table_classes=table_finder(modules=["library.notices.tables"], exclude_imported=True),
    # loans: its first migrations made the `notice` table, which this app's first migration
    # takes over; running after them keeps that order on a fresh database.
    migration_dependencies=["library.accounts.piccolo_app", "library.loans.piccolo_app"],
    commands=[],
)
