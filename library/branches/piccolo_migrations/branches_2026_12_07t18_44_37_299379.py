from library.migration_support import PortableMigrationManager
from piccolo.columns.column_types import JSONB
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-07T18:44:37:299379"
VERSION = "1.38.0"
DESCRIPTION = "yearly closures of a branch (Spring Festival, ...), on the days of each year's official calendar"


async def forwards():
    manager = PortableMigrationManager(
        migration_id=ID, app_name="branches", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="Branch",
        tablename="branch",
        column_name="yearly_closures",
        db_column_name="yearly_closures",
        column_class_name="JSONB",
        column_class=JSONB,
        params={
            "default": "[]",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    return manager
