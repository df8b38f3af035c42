"""The statistics as tables: what the page shows beside each chart, and what the CSV and XLSX
downloads hold — the same cells, the small-count rule already applied (library.reports.rules)."""

from __future__ import annotations

import io
from typing import Any

from openpyxl import Workbook

from library.i18n import N_, gettext
from library.reports import rules
from library.spreadsheet import cell, csv_text

CATEGORY_LABELS = {"adult": N_("Adults"), "child": N_("Children"), "senior": N_("Seniors")}
KIND_LABELS = {"reading_club": N_("Reading club"), "lecture": N_("Lecture"), "workshop": N_("Workshop"),
               "performance": N_("Performance"), "summer_reading": N_("Summer reading"), "other": N_("Other")}
BAND_LABELS = {name: name for name in rules.AGE_BAND_NAMES} | {rules.UNKNOWN_AGE: N_("Age unknown")}
SERIES = ("loans", "returns", "renewed", "holds_filled", "new_readers", "copies_added", "copies_withdrawn",
          "sessions", "registrations", "attended")


def label(key: str) -> str:
    return gettext(CATEGORY_LABELS.get(key) or KIND_LABELS.get(key) or BAND_LABELS.get(key) or key)


def _one_row(cells: dict[str, int], order: list[str]) -> dict[str, Any]:
    keys = [key for key in order if key in cells] + sorted(set(cells) - set(order))
    shown = rules.shown({key: cells[key] for key in keys})
    return {"columns": [label(key) for key in keys], "rows": [[gettext(N_("All")), *[shown[k] for k in keys],
                                                                sum(cells.values())]]}


def matrix(cells: dict[str, int], row_order: list[str], hide_small: bool = True) -> dict[str, Any]:
    """`cells` keyed "row|column" (reader category or activity kind | age band): one table row per
    row key, each row's small cells hidden on its own, the row's total at the end."""
    rows: dict[str, dict[str, int]] = {}
    for key, value in cells.items():
        row, column = rules.split(key)
        rows.setdefault(row, {})[column or rules.UNKNOWN_AGE] = value
    bands = [band for band in rules.AGE_BAND_NAMES if any(band in row for row in rows.values())]
    out = []
    for row in [key for key in row_order if key in rows] + sorted(set(rows) - set(row_order)):
        full = {band: rows[row].get(band, 0) for band in bands}
        shown = rules.shown(full) if hide_small else full
        out.append([label(row), *[shown[band] for band in bands], sum(full.values())])
    return {"columns": [label(band) for band in bands], "rows": out}


def sections(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """One section per measure: its series over the period (for the chart) and its breakdown."""
    period: rules.Period = figures["period"]
    out = []
    categories, kinds = list(CATEGORY_LABELS), list(KIND_LABELS)
    for measure in SERIES:
        series = figures["series"].get(measure, {})
        cells = figures["breakdowns"].get(measure, {})
        if measure in rules.BY_CATEGORY:
            breakdown = _one_row(cells, categories)
        elif measure in rules.BY_CATEGORY_AND_AGE:
            breakdown = matrix(cells, categories)
        elif measure in rules.BY_KIND:
            breakdown = _one_row(cells, kinds)  # sessions, not people: nothing to hide, but same shape
            breakdown["rows"][0][1:-1] = [cells.get(key, 0) for key in [k for k in kinds if k in cells]
                                          + sorted(set(cells) - set(kinds))]
        elif measure in rules.BY_KIND_AND_AGE:
            breakdown = matrix(cells, kinds)
        else:
            breakdown = None
        out.append({"measure": measure, "title": rules.MEASURES[measure], "total": figures["totals"].get(measure, 0),
                    "labels": period.buckets(), "values": [series.get(bucket, 0) for bucket in period.buckets()],
                    "points": [(bucket, series.get(bucket, 0)) for bucket in period.buckets()],
                    "breakdown": breakdown})
    return out


def no_show_rates(figures: dict[str, Any]) -> list[list[Any]]:
    """Per activity kind: seats taken, attended, no-shows, and the no-show rate."""
    attended, no_show = figures["breakdowns"].get("attended", {}), figures["breakdowns"].get("no_show", {})
    registered = figures["breakdowns"].get("registrations", {})
    per_kind: dict[str, list[int]] = {}
    for source, index in ((registered, 0), (attended, 1), (no_show, 2)):
        for key, value in source.items():
            per_kind.setdefault(rules.split(key)[0], [0, 0, 0])[index] += value
    rows = []
    for kind in sorted(per_kind, key=lambda k: list(KIND_LABELS).index(k) if k in KIND_LABELS else 99):
        seats, came, missed = per_kind[kind]
        shown = rules.shown({"came": came, "missed": missed})
        rows.append([label(kind), seats, shown["came"], shown["missed"], rules.rate(missed, came + missed)])
    return rows


def download_rows(figures: dict[str, Any]) -> list[list[Any]]:
    """Every figure of the page as rows of one sheet: measure, period point or breakdown, value."""
    rows: list[list[Any]] = [[gettext(N_("Measure")), gettext(N_("Period")), gettext(N_("Breakdown")),
                              gettext(N_("Value"))]]
    for section in sections(figures):
        title = gettext(str(section.get("title")))
        rows.append([title, figures["period"].key, gettext(N_("Total")), section["total"]])
        for bucket, value in zip(section["labels"], section["values"]):
            rows.append([title, bucket, "", value])
        breakdown = section["breakdown"]
        if breakdown:
            for row in breakdown["rows"]:
                for column, value in zip(breakdown["columns"], row[1:-1]):
                    rows.append([title, figures["period"].key, f"{row[0]} / {column}", value])
    if figures.get("active"):
        title = gettext(N_("Active readers"))
        rows.append([title, figures["period"].key, gettext(N_("Total")), figures["active"]["total"]])
    for kind, seats, came, missed, rate in no_show_rates(figures):
        rows.append([gettext(N_("No-show rate")), figures["period"].key, kind, rate])
    for challenge in figures.get("challenges", []):
        rows.append([gettext(N_("Reading challenge participants")), figures["period"].key, challenge["title_zh"],
                     challenge["participants"]])
        rows.append([gettext(N_("Reading challenge finished")), figures["period"].key, challenge["title_zh"],
                     challenge["finished"]])
    rows.append([gettext(N_("Volunteer hours")), figures["period"].key, "", figures["volunteer_hours"]])
    return rows


def annual_rows(annual: dict[str, Any], year: int) -> list[list[Any]]:
    return [[gettext(N_("Item")), str(year)],
            ["持证读者数", annual["card_holders"]], ["新增读者", annual["new_readers"]], ["外借册次", annual["loans"]],
            ["举办活动场次", annual["sessions"]], ["活动参与人次", annual["attendance"]],
            ["志愿服务时长", annual["volunteer_hours"]]]


def as_csv(rows: list[list[Any]]) -> str:
    return csv_text(rows)


def as_xlsx(rows: list[list[Any]], sheet_title: str) -> bytes:
    """An XLSX of the rows, each cell made safe as the CSV's are (`spreadsheet.cell`), and every
    text written as a string cell: openpyxl would otherwise store a text starting with "=" as
    a formula."""
    book = Workbook()
    sheet = book.active
    sheet.title = sheet_title[:31]
    for row in rows:
        sheet.append([None] * len(row))
        for column, value in enumerate(row, start=1):
            target = sheet.cell(row=sheet.max_row, column=column)
            safe = cell(value)
            if isinstance(safe, str):
                target.value = safe
                target.data_type = "s"
            else:
                target.value = safe
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
