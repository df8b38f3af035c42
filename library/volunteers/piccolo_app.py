import os

from piccolo.conf.apps import AppConfig, table_finder

CURRENT_DIRECTORY = os.path.dirname(os.path.abspath(__file__))

APP_CONFIG = AppConfig(
    app_name="volunteers",
    migrations_folder_path=os.path.join(CURRENT_DIRECTORY, "piccolo_migrations"),
    table_classes=table_finder(modules=["library.volunteers.tables"], exclude_imported=True),
    migration_dependencies=["library.accounts.piccolo_app", "library.activities.piccolo_app"],
    commands=[],
)
