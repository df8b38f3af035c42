import os

from piccolo.conf.apps import AppConfig, table_finder

CURRENT_DIRECTORY = os.path.dirname(os.path.abspath(__file__))

APP_CONFIG = AppConfig(
    app_name="selfcheck",
    migrations_folder_path=os.path.join(CURRENT_DIRECTORY, "piccolo_migrations"),
    table_classes=table_finder(modules=["library.selfcheck.tables"], exclude_imported=True),
    migration_dependencies=["library.branches.piccolo_app", "library.loans.piccolo_app"],
    commands=[],
)
