"""Request and response types of the catalogue API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec

from library.catalog.marc import ImportReport
from library.catalog.rules import MAX_PRICE_CENTS
from library.catalog.service import NewCopies, RecordInput


class Contributor(msgspec.Struct):
    name: str
    role: str = "author"


class RecordIn(msgspec.Struct, forbid_unknown_fields=True):
    title: str
    isbn: str | None = None
    other_isbns: list[str] = []
    control_number: str | None = None
    subtitle: str = ""
    parallel_title: str = ""
    original_title: str = ""
    contributors: list[Contributor] = []
    publisher: str = ""
    publication_year: int | None = None
    language: str = "chi"
    series: str = ""
    series_number: str = ""
    subjects: list[str] = []
    age_min: int | None = None
    age_max: int | None = None
    format: str = "picture_book"
    pages: int | None = None
    summary: str = ""
    clc: str = ""
    call_number: str = ""

    def to_input(self) -> RecordInput:
        values = msgspec.structs.asdict(self)
        values["contributors"] = [{"name": c.name, "role": c.role} for c in self.contributors]
        return RecordInput(**values)


class Holding(msgspec.Struct):
    branch: str
    name_zh: str
    name_en: str
    copies: int
    available: int
    next_due: dt.date | None


class ItemOut(msgspec.Struct):
    barcode: str
    status: str
    item_type: str
    shelf_location: str
    home_branch: str
    current_branch: str
    due_back: dt.date | None
    price_cents: int | None
    acquired_on: dt.date | None


class ItemDetailOut(ItemOut):
    record_uuid: str
    title: str
    call_number: str
    withdrawn_reason: str


class RecordOut(msgspec.Struct):
    uuid: str
    isbn13: str | None
    isbn_hyphenated: str
    other_isbns: list[str]
    control_number: str | None
    title: str
    subtitle: str
    parallel_title: str
    original_title: str
    contributors: list[Contributor]
    publisher: str
    publication_year: int | None
    language: str
    series: str
    series_number: str
    subjects: list[str]
    age_min: int | None
    age_max: int | None
    format: str
    pages: int | None
    summary: str
    cover: str
    clc: str
    call_number: str
    holdings: list[Holding]
    items: list[ItemOut]

    @classmethod
    def from_view(cls, view: dict[str, Any]) -> RecordOut:
        fields = {name: view.get(name) for name in cls.__struct_fields__}
        return msgspec.convert(fields, cls, strict=False)


class Hit(msgspec.Struct):
    uuid: str
    isbn13: str | None
    title: str
    subtitle: str
    contributors: list[Contributor]
    publisher: str
    publication_year: int | None
    format: str
    age_min: int | None
    age_max: int | None
    cover: str
    call_number: str
    language: str
    holdings: list[Holding]


class FacetValue(msgspec.Struct):
    value: Annotated[str, msgspec.Meta(description=(
        "The filter's value: the same search with `<facet>=<value>` added finds `count` records"))]
    count: int
    active: Annotated[bool, msgspec.Meta(description="The search is already filtered by it (leave it out to widen)")] = False


class Facets(msgspec.Struct):
    """How many of the matches each filter would leave. A filter already chosen is its one
    value, active."""

    counted: Annotated[int, msgspec.Meta(description=(
        "Matches counted: all of them, or the newest ones of a very broad search (see `complete`)"))]
    complete: Annotated[bool, msgspec.Meta(description="Whether every match was counted")]
    branch: Annotated[list[FacetValue], msgspec.Meta(description="Branch code: a copy is there (not withdrawn)")]
    available: Annotated[list[FacetValue], msgspec.Meta(description='"true": a copy is on the shelf')]
    age: Annotated[list[FacetValue], msgspec.Meta(description='Age band ("3-5"): the record is for some age in it')]
    format: list[FacetValue]
    language: Annotated[list[FacetValue], msgspec.Meta(description="MARC language code (chi, eng, ...)")]
    year: Annotated[list[FacetValue], msgspec.Meta(description=(
        'Publication years: decades ("2000-2009", the oldest as "-1959"), or years within a chosen decade'))]


class SearchOut(msgspec.Struct):
    query: str
    total: int
    page: int
    page_size: int
    hits: list[Hit]
    more: Annotated[bool, msgspec.Meta(description=(
        "There are more matches than `total`: a broad search on PostgreSQL counts and ranks at most "
        "1,000 of them; narrow it (words, a field such as ti: or au:, a filter) to see the rest"))] = False
    isbn: Annotated[str | None, msgspec.Meta(description="The ISBN-13 searched for, when the query was an ISBN")] = None
    facets: Annotated[Facets | None, msgspec.Meta(description="With facets=true")] = None
    did_you_mean: Annotated[str | None, msgspec.Meta(description=(
        "When nothing was found: a query with misspelt words respelt from the catalogue's own words "
        "(or Chinese characters by ones that sound the same) that finds something"))] = None


class IntakeOut(msgspec.Struct):
    isbn13: str
    hyphenated: str
    isbn10: str | None
    record: RecordOut | None
    metadata: dict[str, Any] | None
    # Every record that carries the ISBN (several where it was reused for different books);
    # `record` is the first of them.
    records: list[RecordOut] = []


class CopiesIn(msgspec.Struct, forbid_unknown_fields=True):
    branch: str
    count: int = 1
    barcodes: list[str] = []
    shelf_location: str = ""
    item_type: str = "picture_book"
    price_cents: Annotated[int, msgspec.Meta(ge=0, le=MAX_PRICE_CENTS)] | None = None
    acquired_on: dt.date | None = None

    def to_input(self) -> NewCopies:
        return NewCopies(branch_code=self.branch, count=self.count, barcodes=self.barcodes,
                         shelf_location=self.shelf_location, item_type=self.item_type, price_cents=self.price_cents,
                         acquired_on=self.acquired_on)


class WithdrawIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: str


class SkippedOut(msgspec.Struct):
    position: int
    reason: str


class ImportReportOut(msgspec.Struct):
    read: int
    created: int
    updated: int
    items_created: int
    items_updated: int
    flavour: str
    skipped: list[SkippedOut]

    @classmethod
    def from_report(cls, report: ImportReport) -> ImportReportOut:
        return cls(read=report.read, created=report.created, updated=report.updated,
                   items_created=report.items_created, items_updated=report.items_updated, flavour=report.flavour,
                   skipped=[SkippedOut(s.position, s.reason) for s in report.skipped])
