"""Bibliographic records and the copies (items) of them that branches hold."""

from __future__ import annotations

from enum import Enum

from piccolo.columns import JSONB, UUID, Date, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check
from piccolo.table import Table

from library.branches.tables import Branch, _utc_now


class RecordFormat(str, Enum):
    picture_book = "picture_book"
    board_book = "board_book"
    pop_up_book = "pop_up_book"
    bridge_book = "bridge_book"
    chapter_book = "chapter_book"
    comic = "comic"
    book = "book"
    audio_book = "audio_book"
    other = "other"


class ItemStatus(str, Enum):
    available = "available"
    on_loan = "on_loan"
    in_transit = "in_transit"
    on_hold_shelf = "on_hold_shelf"
    in_processing = "in_processing"
    missing = "missing"
    lost = "lost"
    damaged = "damaged"
    withdrawn = "withdrawn"


class ItemType(str, Enum):
    picture_book = "picture_book"
    board_book = "board_book"
    book = "book"
    reference = "reference"
    audio_visual = "audio_visual"
    periodical = "periodical"


class Record(Table):
    """One edition of a work, as catalogued; one record per ISBN across the network."""

    uuid = UUID(unique=True)
    isbn13 = Varchar(length=13, unique=True, null=True, default=None)
    other_isbns = JSONB(default=[])
    control_number = Varchar(length=64, unique=True, null=True, default=None)
    title = Varchar(length=500, required=True)
    subtitle = Varchar(length=500, default="")
    parallel_title = Varchar(length=500, default="")
    original_title = Varchar(length=500, default="")
    # [{"name": "艾瑞·卡尔", "role": "author"}, ...]; roles: author, illustrator, translator, editor
    contributors = JSONB(default=[])
    publisher = Varchar(length=200, default="")
    publication_year = Integer(null=True, default=None)
    language = Varchar(length=8, default="chi")
    series = Varchar(length=200, default="")
    series_number = Varchar(length=32, default="")
    subjects = JSONB(default=[])
    age_min = Integer(null=True, default=None)
    age_max = Integer(null=True, default=None)
    format = Varchar(length=24, choices=RecordFormat, default=RecordFormat.picture_book)
    pages = Integer(null=True, default=None)
    summary = Text(default="")
    cover = Varchar(length=200, default="")
    clc = Varchar(length=32, default="")
    call_number = Varchar(length=64, default="")
    # Folded text, pinyin and initials (library.catalog.search_text); the database indexes it.
    search_text = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)

    record_title_check = Check("length(\"title\") > 0")
    record_age_check = Check('"age_min" IS NULL OR "age_max" IS NULL OR "age_min" <= "age_max"')


class Item(Table):
    """A copy: a barcode on a book, owned by its home branch, sitting at its current branch."""

    uuid = UUID(unique=True)
    record = ForeignKey(references=Record, null=False, on_delete=OnDelete.restrict)
    barcode = Varchar(length=32, unique=True, required=True)
    home_branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.restrict)
    current_branch = ForeignKey(references=Branch, null=False, on_delete=OnDelete.restrict)
    shelf_location = Varchar(length=100, default="")
    item_type = Varchar(length=24, choices=ItemType, default=ItemType.picture_book)
    status = Varchar(length=24, choices=ItemStatus, default=ItemStatus.available, index=True)
    # Set by circulation while the copy is out, so a reader sees when it is due back.
    due_back = Date(null=True, default=None)
    price_cents = Integer(null=True, default=None)
    acquired_on = Date(null=True, default=None)
    withdrawn_reason = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)

    item_price_check = Check('"price_cents" IS NULL OR "price_cents" >= 0')


class BarcodeSequence(Table):
    """The next generated barcode number of a branch, taken with one conditional UPDATE."""

    prefix = Varchar(length=16, unique=True, required=True)
    next_value = Integer(default=1)


class MetadataCache(Table):
    """What a metadata provider answered for an ISBN (or that it knew nothing), for a while."""

    isbn13 = Varchar(length=13, required=True, index=True)
    provider = Varchar(length=32, required=True)
    payload = JSONB(null=True, default=None)
    fetched_at = Timestamptz(default=TimestamptzNow())
