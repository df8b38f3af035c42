import os

from piccolo.conf.apps import AppConfig, table_finder

CURRENT_DIRECTORY = os.path.dirname(os.path.abspath(__file__))

APP_CONFIG = AppConfig(
    app_name="reports",
    migrations_folder_path=os.path.join(CURRENT_DIRECTORY, "piccolo_migrations"),
    table_classes=table_finder(modules=["library.reports.tables"], exclude_imported=True),
    migration_dependencies=["library.loans.piccolo_app", "library.activities.piccolo_app",
                            "library.sync.piccolo_app"],
    commands=[],
)
