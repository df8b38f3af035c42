"""Which catalogued record an incoming one is: matching, not merging.

An ISBN identifies a book only most of the time: publishers make mistakes, and in China one
ISBN is often reused for several books (each volume of a set, a reprint with a new title).
So an ISBN is a *match point* a cataloguer confirms, not a unique key. The match points are
an ordered list (setting LIBRARY_CATALOG_MATCH_POINTS, default `control_number,isbn+title`);
each point is one or more keys joined by "+", all of which must agree:

- `control_number`: the 001, and the 003 (whose number it is) when both records have one;
- `isbn`: any ISBN in common (the record's own or its other ISBNs);
- `title`: the title and subtitle, folded (see `fold_title`);
- `author`: the first contributor's name, folded;
- `year`: the year of publication.

An incoming record is *matched* to a candidate that agrees on every key of the first point
any candidate agrees on. Otherwise, a candidate that shares an ISBN or a control number, or
the same title, first author and year, makes it a *possible duplicate*: it is added as a new
record and the pair is flagged (PossibleDuplicate) for a librarian to merge or keep apart.
Otherwise it is *new*. See docs/catalogue_import.md.

Pure: plain values in, a decision with its reason out; no database.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from library.catalog.search_text import fold
from library.settings import Settings, SettingsError

KEYS = ("control_number", "isbn", "title", "author", "year")
DEFAULT_MATCH_POINTS = "control_number,isbn+title"
# The reasons a pair is flagged as possibly one book (PossibleDuplicate.reason).
REASON_ISBN, REASON_CONTROL_NUMBER, REASON_TITLE_AUTHOR_YEAR = "isbn", "control_number", "title_author_year"
# At most this many other records an incoming one is flagged against (an ISBN reused for a
# whole shelf of books would otherwise flag every pair).
MOST_FLAGGED = 5


class MatchPointError(ValueError):
    """The match points setting names an unknown key or is empty; the message says which."""


@dataclass(frozen=True)
class MatchPoint:
    """Keys that must all agree for two records to be taken as one."""

    keys: tuple[str, ...]

    @property
    def name(self) -> str:
        return "+".join(self.keys)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Decision:
    """What an incoming record is: "new", "matched" (to `record_id`, on the match point named
    in `reason`) or "possible_duplicate" (added as new; `record_id` the first record it may
    duplicate, `reason` why, and `duplicates` every (record id, reason) to flag)."""

    kind: str
    record_id: Any = None
    reason: str = ""
    duplicates: tuple[tuple[Any, str], ...] = field(default=())


NEW = Decision("new")


def parse_match_points(text: str) -> tuple[MatchPoint, ...]:
    """"control_number,isbn+title" -> (MatchPoint(("control_number",)), MatchPoint(("isbn", "title")))."""
    points = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        keys = tuple(key.strip() for key in part.split("+") if key.strip())
        unknown = [key for key in keys if key not in KEYS]
        if unknown:
            raise MatchPointError(f"unknown match key(s) {', '.join(map(repr, unknown))} in {part!r} "
                                  f"(known: {', '.join(KEYS)})")
        if len(set(keys)) != len(keys):
            raise MatchPointError(f"a key is named twice in {part!r}")
        if keys:
            points.append(MatchPoint(keys))
    if not points:
        raise MatchPointError("no match point given (for example: control_number,isbn+title)")
    return tuple(points)


DEFAULT_POINTS = parse_match_points(DEFAULT_MATCH_POINTS)


def checked_setting(settings: Settings) -> str:
    """LIBRARY_CATALOG_MATCH_POINTS as the service uses it, checked when the service or a command
    starts: a SettingsError naming the setting rather than a failed import later."""
    try:
        return ",".join(point.name for point in parse_match_points(settings.catalog_match_points))
    except MatchPointError as error:
        raise SettingsError(f"LIBRARY_CATALOG_MATCH_POINTS: {error}") from None


_NOT_ASCII_ALNUM = re.compile(r"[^0-9a-z]+")


def fold_title(text: str | None) -> str:
    """What two spellings of one title have in common: compatibility forms unified, accents and
    other combining marks dropped, traditional characters simplified, lower case, and only
    letters and digits kept ("Where the wild things are /" and "Where the Wild Things Are"
    fold alike; so do "好餓的毛毛蟲" and "好饿的毛毛虫")."""
    if not text:
        return ""
    if text.isascii():  # most of an LC file: no forms, marks or characters to unify
        return _NOT_ASCII_ALNUM.sub("", text.lower())
    return _fold_unicode(text)


@lru_cache(maxsize=4096)  # names repeat from record to record (authors, series)
def _fold_unicode(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return "".join(ch for ch in fold(bare) if ch.isalnum())


def _list(value: Any) -> list:
    if isinstance(value, str):
        return json.loads(value) if value else []
    return list(value or [])


def _isbns(values: dict[str, Any]) -> frozenset[str]:
    found = set(_list(values.get("other_isbns")))
    if values.get("isbn13"):
        found.add(values["isbn13"])
    return frozenset(found)


def _first_author(values: dict[str, Any]) -> str:
    contributors = _list(values.get("contributors"))
    return fold_title(contributors[0].get("name", "")) if contributors else ""


@dataclass(frozen=True)
class Keys:
    """A record's match keys, computed once (an import computes them where it converts)."""

    control_number: str
    control_agency: str
    isbns: frozenset[str]
    title: str
    author: str
    year: int | None


def keys_of(values: dict[str, Any]) -> Keys:
    """The match keys of a record's column values (JSON columns as lists or as JSON text)."""
    return Keys(control_number=(values.get("control_number") or "").strip(),
                control_agency=(values.get("control_agency") or "").strip().casefold(),
                isbns=_isbns(values),
                title=fold_title(" ".join(filter(None, [values.get("title"), values.get("subtitle")]))),
                author=_first_author(values),
                year=values.get("publication_year"))


def lookup_keys(values: dict[str, Any]) -> dict[str, Any]:
    """What to look an incoming record's candidates up by: its ISBNs, its control number, its
    title as stored (an equality lookup) and folded."""
    keys = keys_of(values)
    return {"isbns": sorted(keys.isbns), "control_number": keys.control_number or None,
            "title": (values.get("title") or "").strip() or None, "folded_title": keys.title or None}


def _same_control_number(a: Keys, b: Keys) -> bool:
    if not a.control_number or a.control_number != b.control_number:
        return False
    # Two agencies' 001s are two numbering schemes: the same number says nothing.
    return not (a.control_agency and b.control_agency) or a.control_agency == b.control_agency


def _agrees(key: str, a: Keys, b: Keys) -> bool:
    if key == "control_number":
        return _same_control_number(a, b)
    if key == "isbn":
        return not a.isbns.isdisjoint(b.isbns)
    if key == "title":
        return bool(a.title) and a.title == b.title
    if key == "author":
        return bool(a.author) and a.author == b.author
    return a.year is not None and a.year == b.year  # "year"


def _duplicate_reason(a: Keys, b: Keys) -> str | None:
    if _agrees("isbn", a, b):
        return REASON_ISBN
    if _same_control_number(a, b):
        return REASON_CONTROL_NUMBER
    if all(_agrees(key, a, b) for key in ("title", "author", "year")):
        return REASON_TITLE_AUTHOR_YEAR
    return None


def decide(incoming: dict[str, Any] | Keys, candidates: Iterable[dict[str, Any] | tuple[Any, Keys]],
           points: tuple[MatchPoint, ...] = DEFAULT_POINTS) -> Decision:
    """What the incoming record is, among the candidates found for it (dicts of column values
    with an "id", or (id, Keys) pairs), in the order given: the first candidate that agrees on
    the first agreeing point wins, so callers list candidates oldest first."""
    mine = incoming if isinstance(incoming, Keys) else keys_of(incoming)
    theirs = [candidate if isinstance(candidate, tuple) else (candidate.get("id"), keys_of(candidate))
              for candidate in candidates]
    for point in points:
        for record_id, keys in theirs:
            if all(_agrees(key, mine, keys) for key in point.keys):
                return Decision("matched", record_id, point.name)
    duplicates = []
    for record_id, keys in theirs:
        reason = _duplicate_reason(mine, keys)
        if reason is not None and all(record_id != other for other, _ in duplicates):
            duplicates.append((record_id, reason))
            if len(duplicates) == MOST_FLAGGED:
                break
    if duplicates:
        return Decision("possible_duplicate", duplicates[0][0], duplicates[0][1], tuple(duplicates))
    return NEW


def needs_title_lookup(points: tuple[MatchPoint, ...]) -> bool:
    """Whether some match point can agree without an ISBN or a control number (then candidates
    are also looked up by title)."""
    return any("isbn" not in point.keys and "control_number" not in point.keys for point in points)
