"""/staff/reports: statistics of a branch or the network, their CSV and XLSX, the annual return.

Staff only; a librarian sees the branches she works for, an administrator of the network all.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get

from library.clock import now_utc, today_in
from library.errors import InvalidInput
from library.i18n import N_, gettext
from library.reports import charts, rules, service, sheets
from library.web.auth import principal_of
from library.web.downloads import attachment
from library.web.templating import page

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _period(request: Request) -> rules.Period:
    try:
        return rules.parse_period(request.query_params.get("period"), request.query_params.get("at"),
                                  today_in("Asia/Shanghai"))
    except rules.BadPeriod as error:
        raise InvalidInput("invalid_report_period", field="at") from error


def _year(request: Request) -> int:
    value = request.query_params.get("year") or str(today_in("Asia/Shanghai").year)
    if not (value.isdigit() and len(value) == 4 and int(value) >= 1900):
        raise InvalidInput("invalid_report_period", field="year")
    return int(value)


def _name(figures: dict[str, Any], what: str, key: str) -> str:
    scope = figures["branch"]["code"] if figures["branch"] else "network"
    return f"{what}-{scope}-{key}"


class ReportPages(Controller):
    include_in_schema = False
    opt = {"permission": "reports.view"}
    path = "/staff/reports"

    async def _figures(self, request: Request) -> dict[str, Any]:
        return await service.statistics(principal_of(request), _period(request), request.query_params.get("branch"),
                                        now_utc())

    @get("/", name="staff_reports")
    async def show(self, request: Request) -> Any:
        figures = await self._figures(request)
        sections = sheets.sections(figures)
        for section in sections:
            section["chart"] = charts.bar_chart(
                f"chart-{section['measure']}", gettext(str(section.get("title"))), section["labels"], section["values"],
                gettext(N_("Bars by period; the same numbers are in the table beside the chart.")))
        return page(request, "reports/statistics.html", figures=figures, sections=sections,
                    no_show=sheets.no_show_rates(figures), active=_active_table(figures),
                    hidden=rules.HIDDEN, small=rules.SMALL_COUNT)

    @get("/statistics.csv")
    async def csv(self, request: Request) -> Response:
        figures = await self._figures(request)
        return Response(sheets.as_csv(sheets.download_rows(figures)), media_type="text/csv; charset=utf-8",
                        headers=attachment(_name(figures, "statistics", figures["period"].key) + ".csv"))

    @get("/statistics.xlsx")
    async def xlsx(self, request: Request) -> Response:
        figures = await self._figures(request)
        return Response(sheets.as_xlsx(sheets.download_rows(figures), figures["period"].key), media_type=XLSX,
                        headers=attachment(_name(figures, "statistics", figures["period"].key) + ".xlsx"))

    @get("/annual")
    async def annual(self, request: Request) -> Any:
        figures = await service.annual_return(principal_of(request), _year(request), request.query_params.get("branch"),
                                              now_utc())
        return page(request, "reports/annual.html", figures=figures, rows=sheets.annual_rows(figures["annual"],
                                                                                              figures["year"]))

    @get("/annual.csv")
    async def annual_csv(self, request: Request) -> Response:
        figures = await service.annual_return(principal_of(request), _year(request), request.query_params.get("branch"),
                                              now_utc())
        return Response(sheets.as_csv(sheets.annual_rows(figures["annual"], figures["year"])),
                        media_type="text/csv; charset=utf-8",
                        headers=attachment(_name(figures, "annual-return", str(figures["year"])) + ".csv"))

    @get("/annual.xlsx")
    async def annual_xlsx(self, request: Request) -> Response:
        figures = await service.annual_return(principal_of(request), _year(request), request.query_params.get("branch"),
                                              now_utc())
        return Response(sheets.as_xlsx(sheets.annual_rows(figures["annual"], figures["year"]), str(figures["year"])),
                        media_type=XLSX,
                        headers=attachment(_name(figures, "annual-return", str(figures["year"])) + ".xlsx"))


def _active_table(figures: dict[str, Any]) -> dict[str, Any] | None:
    if not figures["active"]:
        return None
    table = sheets.matrix(figures["active"]["cells"], list(sheets.CATEGORY_LABELS))
    table["total"] = figures["active"]["total"]
    return table


ROUTES = [ReportPages]
