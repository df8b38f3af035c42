"""Bibliographic records and the copies (items) of them that branches hold."""

from __future__ import annotations

from enum import Enum

from piccolo.columns import (JSONB, UUID, BigInt, Boolean, Bytea, Date, ForeignKey, Integer, Real, Secret, Text,
                             Timestamptz, Varchar)
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check, Unique
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
    """One edition of a work, as catalogued. The columns are what the service indexes, shows
    and edits; `marc` keeps the record as it came in, whole (library.catalog.marc_record).

    Neither the ISBN nor the control number is unique: in China one ISBN is often reused for
    several books, publishers make mistakes, and two sources may use the same 001. Which
    incoming record is the same book is the matching rules' decision (library.catalog.matching),
    and two records that might be one are a PossibleDuplicate for a librarian to decide."""

    uuid = UUID(unique=True)
    isbn13 = Varchar(length=13, null=True, default=None, index=True)
    other_isbns = JSONB(default=[])
    control_number = Text(null=True, default=None, index=True)
    control_agency = Text(default="")  # MARC 003: whose control number it is
    title = Text(required=True)
    subtitle = Text(default="")
    parallel_title = Text(default="")
    original_title = Text(default="")
    # [{"name": "艾瑞·卡尔", "role": "author"}, ...]; roles: library.catalog.rules.ROLES
    contributors = JSONB(default=[])
    publisher = Text(default="")
    publication_year = Integer(null=True, default=None)
    language = Varchar(length=8, default="chi")
    series = Text(default="")
    series_number = Text(default="")
    subjects = JSONB(default=[])
    age_min = Integer(null=True, default=None)
    age_max = Integer(null=True, default=None)
    format = Varchar(length=24, choices=RecordFormat, default=RecordFormat.picture_book)
    pages = Integer(null=True, default=None)
    summary = Text(default="")
    cover = Varchar(length=200, default="")
    clc = Text(default="")
    call_number = Text(default="")
    # Folded text, pinyin and initials (library.catalog.search_text); the database indexes it.
    search_text = Text(default="")
    # The MARC record as it came in (library.catalog.marc_record.pack), its format ("marc21",
    # "cnmarc"; "" for a record catalogued here), and where it came from.
    marc = Text(default="")
    marc_format = Varchar(length=8, default="")
    marc_source = Text(default="")
    # The field groups (library.catalog.marc_record.GROUPS) a librarian changed here since the
    # record came in: a re-import leaves them as they are.
    local_edits = JSONB(default=[])
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)

    record_title_check = Check("length(\"title\") > 0")
    record_age_check = Check('"age_min" IS NULL OR "age_max" IS NULL OR "age_min" <= "age_max"')


class DuplicateStatus(str, Enum):
    open = "open"
    kept_apart = "kept_apart"
    merged = "merged"


class PossibleDuplicate(Table):
    """Two records that a match point says might be one book (same ISBN, different title, ...):
    kept apart until a librarian merges them or says they are different books."""

    record = ForeignKey(references=Record, null=False, on_delete=OnDelete.cascade)
    other = ForeignKey(references=Record, null=False, on_delete=OnDelete.cascade)
    reason = Varchar(length=32, required=True)  # the match point: isbn, control_number, title_author_year
    status = Varchar(length=16, choices=DuplicateStatus, default=DuplicateStatus.open, index=True)
    found_by = Text(default="")  # "import <batch>", "sync <branch code>", "staff <name>"
    found_at = Timestamptz(default=TimestamptzNow())
    decided_by = Text(default="")
    decided_at = Timestamptz(null=True, default=None)

    possible_duplicate_pair = Unique([record, other])
    possible_duplicate_not_itself = Check('"record" <> "other"')


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


class ImportBatchStatus(str, Enum):
    staging = "staging"  # being read
    staged = "staged"  # read: counts and refusals known, nothing written to the catalogue yet
    committing = "committing"
    committed = "committed"
    undoing = "undoing"
    undone = "undone"
    failed = "failed"  # could not be read or written as a whole (`error` says why)


class MatchAction(str, Enum):
    """What a staged import does with an incoming record that matches a catalogued one."""

    overlay = "overlay"  # the incoming values replace the record's (but its local edits)
    add = "add"  # added as a new record, flagged as a possible duplicate of the matched one
    ignore = "ignore"  # the record is left as it is (its copies are still placed)


class ImportBatch(Table):
    """A MARC file read into the catalogue in two steps: staged (read, matched and counted; the
    file kept under the data folder) and committed; a committed batch can be undone
    (library.catalog.batches). The counts are the last step's: staging's until it is committed.
    read = new + matched + unchanged + ignored + refused, always."""

    uuid = UUID(unique=True)
    file_name = Text(default="")
    size_bytes = BigInt(default=0)
    flavour = Varchar(length=8, default="auto")  # asked for: auto, marc21, cnmarc
    flavour_seen = Varchar(length=8, default="")
    encoding = Varchar(length=16, default="auto")  # asked for: auto, utf-8, marc-8, gb18030
    default_branch = Varchar(length=16, default="")  # the code copies with an unknown branch go to
    on_match = Varchar(length=8, choices=MatchAction, default=MatchAction.overlay)
    match_points = Text(default="")
    status = Varchar(length=16, choices=ImportBatchStatus, default=ImportBatchStatus.staging, index=True)
    error = Text(default="")
    records_read = Integer(default=0)
    records_new = Integer(default=0)
    records_matched = Integer(default=0)  # overlaid: the incoming values written over a record
    records_unchanged = Integer(default=0)  # matched, and nothing to write
    records_ignored = Integer(default=0)  # matched, and left as they were (on_match = ignore)
    records_refused = Integer(default=0)
    records_with_warnings = Integer(default=0)
    possible_duplicates = Integer(default=0)  # of the new records, those flagged
    copies_new = Integer(default=0)
    copies_changed = Integer(default=0)
    # What undoing left in place and why: {"records": [[uuid, reason], ...], "copies": [[barcode, reason], ...]}
    undo_report = JSONB(default={})
    staged_by = Text(default="")
    staged_at = Timestamptz(default=TimestamptzNow())
    committed_by = Text(default="")
    committed_at = Timestamptz(null=True, default=None)
    undone_by = Text(default="")
    undone_at = Timestamptz(null=True, default=None)


class ImportBatchRecord(Table):
    """One record of a batch worth keeping: every refused record (where its bytes are in the
    file, to download them), every record with warnings or a possible duplicate, each match
    (what it was matched to), and once committed each record written (what undoing needs:
    the new record, or the values an overlaid one had before). An unchanged record without
    warnings leaves no row. `record` is the catalogued record's uuid, not a foreign key: a
    record deleted later leaves the batch's history as it was."""

    batch = ForeignKey(references=ImportBatch, null=False, on_delete=OnDelete.cascade)
    position = Integer(required=True)
    outcome = Varchar(length=16, required=True)  # new, matched, unchanged, ignored, refused
    record = UUID(null=True, default=None)
    control_number = Text(default="")
    title = Text(default="")
    reason = Text(default="")  # why refused; the match point; a possible duplicate's reason
    # The reason and each warning as {"text", "msgid", "params"} (library.catalog.conversion.note_json),
    # so that a page shows them in the reader's language.
    reason_note = JSONB(default={})
    warnings = JSONB(default=[])
    byte_offset = BigInt(default=0)
    byte_length = Integer(default=0)
    # Once committed: the record's column values before an overlay (JSON), and the copies the
    # record brought: {"created": [uuid, ...], "changed": [[uuid, {column: value before}], ...]}.
    previous = Text(default="")
    copies = Text(default="")

    import_batch_record_position = Unique([batch, position])


class CopyProtocol(str, Enum):
    z3950 = "z3950"
    sru = "sru"


class CopyTarget(Table):
    """Another library's catalogue that intake asks for a record to copy (copy cataloguing):
    over Z39.50 or SRU, in MARC21 or CNMARC/UNIMARC, in UTF-8, MARC-8 or GBK/GB18030
    (library.catalog.sources). Managed by administrators; a new target is off until enabled.
    The password is sent to the target, so it is kept as given, but no page shows it back."""

    uuid = UUID(unique=True)
    name = Varchar(length=100, unique=True, required=True)
    protocol = Varchar(length=8, choices=CopyProtocol, default=CopyProtocol.z3950)
    host = Varchar(length=255, required=True)
    port = Integer(default=210)
    database = Varchar(length=200, default="")  # Z39.50 database name; for SRU, the path after the host
    syntax = Varchar(length=8, default="marc21")  # library.catalog.sources.base.SYNTAXES
    charset = Varchar(length=8, default="utf-8")  # library.catalog.sources.base.CHARSETS
    username = Varchar(length=100, default="")
    password = Secret(length=200, default="")
    timeout_seconds = Real(default=10.0)
    enabled = Boolean(default=False)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=_utc_now)

    copy_target_port_check = Check('"port" > 0 AND "port" < 65536')
    copy_target_timeout_check = Check('"timeout_seconds" > 0 AND "timeout_seconds" <= 120')


class RecordProvenance(Table):
    """Where a record copied from another catalogue came from: the target (by name, as it was
    called then), when, by whom, and the record exactly as the target sent it (ISO 2709 in the
    target's character set, or MARCXML), shown on the staff record page."""

    record = ForeignKey(references=Record, null=False, on_delete=OnDelete.cascade, index=True)
    target_name = Text(required=True)
    protocol = Varchar(length=8, default="")
    syntax = Varchar(length=8, default="")
    charset = Varchar(length=8, default="")
    # Not "raw": a column of that name would hide Table.raw(), the way to run SQL on the table.
    source_record = Bytea(default=b"")
    taken_by = Text(default="")
    taken_at = Timestamptz(default=TimestamptzNow())
