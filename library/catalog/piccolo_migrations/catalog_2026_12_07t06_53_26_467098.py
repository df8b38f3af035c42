from library.migration_support import PortableMigrationManager
from enum import Enum
from piccolo.columns.base import OnDelete
from piccolo.columns.base import OnUpdate
from piccolo.columns.column_types import ForeignKey
from piccolo.columns.column_types import JSONB
from piccolo.columns.column_types import Serial
from piccolo.columns.column_types import Text
from piccolo.columns.column_types import Timestamptz
from piccolo.columns.column_types import Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.indexes import IndexMethod
from piccolo.constraints import Check
from piccolo.constraints import Unique
from piccolo.table import Table


class Record(Table, tablename="record", schema=None):
    id = Serial(
        null=False,
        primary_key=True,
        unique=False,
        index=False,
        index_method=IndexMethod.btree,
        choices=None,
        db_column_name="id",
        secret=False,
    )


ID = "2026-12-07T06:53:26:467098"
VERSION = "1.38.0"
DESCRIPTION = "records keep their MARC whole; ISBN and control number no longer unique; possible duplicates"


async def forwards():
    manager = PortableMigrationManager(
        migration_id=ID, app_name="catalog", description=DESCRIPTION
    )

    manager.add_table(
        class_name="PossibleDuplicate",
        tablename="possible_duplicate",
        schema=None,
        columns=None,
    )

    manager.add_column(
        table_class_name="PossibleDuplicate",
        tablename="possible_duplicate",
        column_name="record",
        db_column_name="record",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Record,
            "on_delete": OnDelete.cascade,
            "on_update": OnUpdate.cascade,
            "target_column": None,
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

    manager.add_column(
        table_class_name="PossibleDuplicate",
        tablename="possible_duplicate",
        column_name="other",
        db_column_name="other",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Record,
            "on_delete": OnDelete.cascade,
            "on_update": OnUpdate.cascade,
            "target_column": None,
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

    manager.add_column(
        table_class_name="PossibleDuplicate",
        tablename="possible_duplicate",
        column_name="reason",
        db_column_name="reason",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 32,
            "default": "",
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

    manager.add_column(
        table_class_name="PossibleDuplicate",
        tablename="possible_duplicate",
        column_name="status",
        db_column_name="status",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 16,
            "default": "open",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": True,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "DuplicateStatus",
                {"open": "open", "kept_apart": "kept_apart", "merged": "merged"},
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="PossibleDuplicate",
        tablename="possible_duplicate",
        column_name="found_by",
        db_column_name="found_by",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": "",
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

    manager.add_column(
        table_class_name="PossibleDuplicate",
        tablename="possible_duplicate",
        column_name="found_at",
        db_column_name="found_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
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

    manager.add_column(
        table_class_name="PossibleDuplicate",
        tablename="possible_duplicate",
        column_name="decided_by",
        db_column_name="decided_by",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": "",
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

    manager.add_column(
        table_class_name="PossibleDuplicate",
        tablename="possible_duplicate",
        column_name="decided_at",
        db_column_name="decided_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": None,
            "null": True,
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

    manager.add_constraint(
        table_class_name="PossibleDuplicate",
        tablename="possible_duplicate",
        constraint_name="possible_duplicate_pair",
        constraint_class=Unique,
        params={"columns": ["record", "other"], "nulls_distinct": True},
        schema=None,
    )

    manager.add_constraint(
        table_class_name="PossibleDuplicate",
        tablename="possible_duplicate",
        constraint_name="possible_duplicate_not_itself",
        constraint_class=Check,
        params={"condition": '"record" <> "other"'},
        schema=None,
    )

    manager.add_column(
        table_class_name="Record",
        tablename="record",
        column_name="control_agency",
        db_column_name="control_agency",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": "",
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

    manager.add_column(
        table_class_name="Record",
        tablename="record",
        column_name="local_edits",
        db_column_name="local_edits",
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

    manager.add_column(
        table_class_name="Record",
        tablename="record",
        column_name="marc",
        db_column_name="marc",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": "",
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

    manager.add_column(
        table_class_name="Record",
        tablename="record",
        column_name="marc_format",
        db_column_name="marc_format",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 8,
            "default": "",
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

    manager.add_column(
        table_class_name="Record",
        tablename="record",
        column_name="marc_source",
        db_column_name="marc_source",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": "",
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

    manager.alter_column(
        table_class_name="Record",
        tablename="record",
        column_name="isbn13",
        db_column_name="isbn13",
        params={"unique": False, "index": True},
        old_params={"unique": True, "index": False},
        column_class=Varchar,
        old_column_class=Varchar,
        schema=None,
    )

    manager.alter_column(
        table_class_name="Record",
        tablename="record",
        column_name="control_number",
        db_column_name="control_number",
        params={"unique": False, "index": True},
        old_params={"unique": True, "index": False},
        column_class=Text,
        old_column_class=Varchar,
        schema=None,
    )

    manager.alter_column(
        table_class_name="Record",
        tablename="record",
        column_name="title",
        db_column_name="title",
        params={},
        old_params={},
        column_class=Text,
        old_column_class=Varchar,
        schema=None,
    )

    manager.alter_column(
        table_class_name="Record",
        tablename="record",
        column_name="subtitle",
        db_column_name="subtitle",
        params={},
        old_params={},
        column_class=Text,
        old_column_class=Varchar,
        schema=None,
    )

    manager.alter_column(
        table_class_name="Record",
        tablename="record",
        column_name="parallel_title",
        db_column_name="parallel_title",
        params={},
        old_params={},
        column_class=Text,
        old_column_class=Varchar,
        schema=None,
    )

    manager.alter_column(
        table_class_name="Record",
        tablename="record",
        column_name="original_title",
        db_column_name="original_title",
        params={},
        old_params={},
        column_class=Text,
        old_column_class=Varchar,
        schema=None,
    )

    manager.alter_column(
        table_class_name="Record",
        tablename="record",
        column_name="publisher",
        db_column_name="publisher",
        params={},
        old_params={},
        column_class=Text,
        old_column_class=Varchar,
        schema=None,
    )

    manager.alter_column(
        table_class_name="Record",
        tablename="record",
        column_name="series",
        db_column_name="series",
        params={},
        old_params={},
        column_class=Text,
        old_column_class=Varchar,
        schema=None,
    )

    manager.alter_column(
        table_class_name="Record",
        tablename="record",
        column_name="series_number",
        db_column_name="series_number",
        params={},
        old_params={},
        column_class=Text,
        old_column_class=Varchar,
        schema=None,
    )

    manager.alter_column(
        table_class_name="Record",
        tablename="record",
        column_name="clc",
        db_column_name="clc",
        params={},
        old_params={},
        column_class=Text,
        old_column_class=Varchar,
        schema=None,
    )

    manager.alter_column(
        table_class_name="Record",
        tablename="record",
        column_name="call_number",
        db_column_name="call_number",
        params={},
        old_params={},
        column_class=Text,
        old_column_class=Varchar,
        schema=None,
    )

    return manager
