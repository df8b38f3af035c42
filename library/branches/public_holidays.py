"""China's public holidays and make-up working days, from the `holidays` package.

The package is released monthly and carries the State Council's yearly schedule
(holidays and the weekend days worked in exchange, 调休). For a year whose
schedule is not yet in it, the statutory holidays are still known; only the
make-up days are missing, which `PublicCalendar.confirmed_years` makes visible.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import holidays

from library.branches.rules import PublicCalendar, YearlyClosure

# The years the package knows China's holidays for (1950-2100 in holidays 0.108). A day outside
# them is not one the calendar can answer for: it would silently show every holiday as open,
# and near 9999 the date arithmetic itself overflows.
FIRST_DAY = dt.date(holidays.CN.start_year, 1, 1)
LAST_DAY = dt.date(holidays.CN.end_year, 12, 31)


# The package's English names (en_US, "(observed)" removed), by festival. A day off in exchange
# for a worked weekend ("Day off (substituted from ...)") is in none: it belongs to its break.
FESTIVALS = {
    "New Year's Day": YearlyClosure.new_year,
    "Chinese New Year's Eve": YearlyClosure.spring_festival,
    "Chinese New Year (Spring Festival)": YearlyClosure.spring_festival,
    "Tomb-Sweeping Day": YearlyClosure.qingming,
    "Labor Day": YearlyClosure.labour_day,
    "Dragon Boat Festival": YearlyClosure.dragon_boat,
    "Mid-Autumn Festival": YearlyClosure.mid_autumn,
    "National Day": YearlyClosure.national_day,
}
SPRING_FESTIVAL = "Chinese New Year (Spring Festival)"


def _festivals(names: dict[dt.date, str]) -> tuple[dict[dt.date, str], frozenset[dt.date]]:
    festivals, first_days = {}, {}
    for day, name in names.items():
        for part in name.split("; "):  # the package joins two holidays on one day with "; "
            festival = FESTIVALS.get(part.removesuffix(" (observed)"))
            if festival is not None:
                festivals[day] = festival.value
            if part == SPRING_FESTIVAL and (day.year not in first_days or day < first_days[day.year]):
                first_days[day.year] = day
    return festivals, frozenset(first_days.values())


@lru_cache(maxsize=32)
def _calendar_for_years(years: tuple[int, ...]) -> PublicCalendar:
    zh = holidays.country_holidays("CN", years=years, language="zh_CN")
    en = holidays.country_holidays("CN", years=years, language="en_US")
    days = {day: (zh.get(day, name), name) for day, name in en.items()}
    makeup = frozenset(d for d in en.weekend_workdays if d.year in years)
    confirmed = frozenset(d.year for d in en.weekend_workdays)
    festivals, lunar_new_years = _festivals(dict(en.items()))
    return PublicCalendar(holidays=days, makeup_workdays=makeup, confirmed_years=confirmed, festivals=festivals,
                          lunar_new_years=lunar_new_years)


def public_calendar(start: dt.date, end: dt.date) -> PublicCalendar:
    """Holidays for every year touching [start, end], plus a year either side for breaks."""
    years = tuple(range(start.year - 1, end.year + 2))
    return _calendar_for_years(years)
