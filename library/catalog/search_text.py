"""What the full-text index holds for a record, and how a reader's words become a query.

Pure functions. Chinese has no spaces between words, and readers type the same title
in simplified or traditional characters, in pinyin, or as pinyin initials. So the
indexed text (`search_text`, kept on the record and indexed by the database itself:
FTS5 on SQLite, a GIN index on PostgreSQL) holds, for every searchable field:

- the text folded to simplified characters and lower case, Chinese characters one
  token each (so a phrase query matches any run of characters: "毛毛虫");
- the pinyin syllables of the Chinese characters ("mao mao chong");
- one token of the pinyin initials of the field's Chinese characters ("hedmmc").

A query is folded the same way: a run of Chinese characters becomes a phrase; a Latin
word matches as a word prefix ("caterp") or, when it reads as pinyin, as the phrase of
its syllables ("maomaochong" -> "mao mao chong"). All parts must match (AND).
"""

from __future__ import annotations

import importlib.util
import marshal
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import opencc

_to_simplified = opencc.OpenCC("t2s")
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUNS = re.compile(rf"([{_CJK}]+)|([0-9a-z]+)")
CJK_RUNS = re.compile(rf"[{_CJK}]+")


def fold(text: str) -> str:
    """Simplified characters, compatibility forms unified (full-width letters), lower case."""
    return _to_simplified.convert(unicodedata.normalize("NFKC", text or "")).casefold()


@lru_cache(maxsize=None)
def _toneless(syllable: str) -> str:
    from pypinyin.contrib.tone_convert import to_normal

    return to_normal(syllable, v_to_u=False)


# --- pinyin tables ----------------------------------------------------------------------

# The tables `pinyin_of` reads, derived from pypinyin's dictionaries: every phrase's toneless
# syllables, every character's usual toneless reading, and for each pair of characters that
# starts a phrase the length of its longest phrase. Reading pypinyin's dictionaries (3 MB of
# JSON) takes 0.15-0.3 s of CPU, in every process that indexes, every MARC converter process
# of an import among them; the tables are kept in the user's cache directory instead (marshal,
# about a sixth of that), under a name made from this format's number and the size and time of
# pypinyin's files, so an upgraded pypinyin makes new ones. Where nothing can be written they
# are derived every time, as before.
_TABLES_FORMAT = 1
PinyinTables = tuple[dict[str, tuple[str, ...]], dict[str, str], dict[str, int]]


def _tables_cache_path() -> Path | None:
    try:
        spec = importlib.util.find_spec("pypinyin")
        root = Path(next(iter(spec.submodule_search_locations)))  # type: ignore[union-attr, arg-type]
        key = "-".join(f"{stat.st_size}-{stat.st_mtime_ns}" for stat in (
            (root / "phrases_dict.json").stat(), (root / "pinyin_dict.json").stat()))
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except (AttributeError, StopIteration, OSError, RuntimeError):  # no such files, no home
        return None
    return cache / "library-branch-network" / f"pinyin-{_TABLES_FORMAT}-{key}.marshal"


def _derived_tables() -> PinyinTables:
    from pypinyin.phrases_dict import phrases_dict
    from pypinyin.pinyin_dict import pinyin_dict

    phrases = {phrase: tuple(_toneless(syllable[0]) for syllable in readings)
               for phrase, readings in phrases_dict.items()}
    characters = {chr(code): _toneless(readings.split(",")[0]) for code, readings in pinyin_dict.items()}
    reach: dict[str, int] = {}
    for phrase in phrases:
        if len(phrase) > reach.get(phrase[:2], 1):
            reach[phrase[:2]] = len(phrase)
    return phrases, characters, reach


@lru_cache(maxsize=1)
def pinyin_tables() -> PinyinTables:
    path = _tables_cache_path()
    if path is not None:
        try:
            tables = marshal.loads(path.read_bytes())
            if isinstance(tables, tuple) and len(tables) == 3:
                return tables
        except (OSError, EOFError, ValueError, TypeError):  # not there yet, or unreadable: made again
            pass
    tables = _derived_tables()
    if path is not None:
        import tempfile

        written = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Whole or not at all: another process may be reading it, or writing its own.
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.name, delete=False) as handle:
                written = handle.name
                handle.write(marshal.dumps(tables))
            os.replace(written, path)
        except OSError:
            if written:  # a full disk, say: no half-written file left behind
                Path(written).unlink(missing_ok=True)
    return tables


def pinyin_of(run: str) -> list[str]:
    """Toneless pinyin of a run of characters: the longest word of pypinyin's phrase dictionary
    first (睡觉 -> shui jiao, 银行 -> yin hang), else each character's usual reading.

    The same answers as pypinyin.lazy_pinyin on the titles we tried, about twenty times faster,
    which is what lets a 50,000-record MARC import keep pace with reading the file.
    """
    phrases, characters, reach = pinyin_tables()
    syllables: list[str] = []
    position, length = 0, len(run)
    while position < length:
        # only as long as the longest phrase that starts with these two characters: most start none
        for size in range(min(reach.get(run[position:position + 2], 1), length - position), 1, -1):
            phrase = phrases.get(run[position:position + size])
            if phrase:
                syllables += phrase
                position += size
                break
        else:
            reading = characters.get(run[position])
            if reading:
                syllables.append(reading)
            position += 1
    return syllables


def _cjk_tokens(run: str) -> tuple[list[str], list[str], str]:
    syllables = pinyin_of(run)
    initials = "".join(s[0] for s in syllables if s)
    return list(run), syllables, initials


@lru_cache(maxsize=100_000)
def _field_parts(field: str) -> tuple[str, ...]:
    """One field's indexed parts. Cached: publishers, series, subjects and authors repeat
    across a catalogue, and a big import meets each many times."""
    parts: list[str] = []
    characters: list[str] = []
    latin: list[str] = []
    for cjk, word in _RUNS.findall(fold(field)):
        if cjk:
            characters.append(cjk)
        else:
            latin.append(word)
    if characters:
        text = "".join(characters)
        chars, syllables, initials = _cjk_tokens(text)
        parts.append(" ".join(chars))
        parts.append(" ".join(syllables))
        parts.append(initials)
    if latin:
        parts.append(" ".join(latin))
    return tuple(part for part in parts if part)


def index_text(fields: Iterable[str | None]) -> str:
    """The text the database indexes for one record."""
    parts: list[str] = []
    for field in fields:
        if field:
            parts.extend(_field_parts(field))
    return " ; ".join(parts)


# --- pinyin syllables -------------------------------------------------------------------


@lru_cache(maxsize=1)
def _syllables() -> frozenset[str]:
    from pypinyin.contrib.tone_convert import to_normal
    from pypinyin.pinyin_dict import pinyin_dict

    found: set[str] = set()
    for readings in pinyin_dict.values():
        for reading in readings.split(","):
            found.add(to_normal(reading, v_to_u=False))
    return frozenset(s for s in found if s.isalpha() and s.isascii())


def split_pinyin(word: str) -> list[str] | None:
    """'maomaochong' -> ['mao', 'mao', 'chong']; None when the word is not all pinyin.

    The fewest syllables win, so 'xian' stays one syllable rather than 'xi an'.
    """
    syllables = _syllables()
    best: list[list[str] | None] = [None] * (len(word) + 1)
    best[0] = []
    for end in range(1, len(word) + 1):
        for start in range(max(0, end - 6), end):
            head = best[start]
            piece = word[start:end]
            if head is not None and piece in syllables:
                candidate = head + [piece]
                if best[end] is None or len(candidate) < len(best[end]):  # type: ignore[arg-type]
                    best[end] = candidate
    return best[len(word)]


# --- queries ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """Alternatives, any of which may match: a prefix word, or a phrase of tokens."""

    prefix: str | None
    phrases: tuple[tuple[str, ...], ...]


def parse_query(text: str) -> list[Term]:
    terms: list[Term] = []
    for cjk, word in _RUNS.findall(fold(text)):
        if cjk:
            terms.append(Term(prefix=None, phrases=(tuple(cjk),)))
            continue
        phrases: tuple[tuple[str, ...], ...] = ()
        syllables = split_pinyin(word) if word.isalpha() else None
        if syllables and len(syllables) > 1:
            phrases = (tuple(syllables),)
        terms.append(Term(prefix=word, phrases=phrases))
    return terms[:12]  # a pasted paragraph is not a query


def _fts5_quote(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


def fts5_query(terms: list[Term]) -> str:
    """FTS5 MATCH syntax: "a b c" is a phrase, "w"* a prefix, AND / OR as written."""
    rendered = []
    for term in terms:
        options = [_fts5_quote(" ".join(phrase)) for phrase in term.phrases]
        if term.prefix:
            options.append(_fts5_quote(term.prefix) + "*")
        rendered.append(options[0] if len(options) == 1 else "(" + " OR ".join(options) + ")")
    return " AND ".join(rendered)


def _ts_quote(token: str) -> str:
    return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"


def tsquery(terms: list[Term]) -> str:
    """PostgreSQL to_tsquery('simple', ...) syntax: <-> follows, :* is a prefix, & and |."""
    rendered = []
    for term in terms:
        options = [" <-> ".join(_ts_quote(token) for token in phrase) for phrase in term.phrases]
        if term.prefix:
            options.append(_ts_quote(term.prefix) + ":*")
        options = [f"({option})" if "<->" in option else option for option in options]
        rendered.append(options[0] if len(options) == 1 else "(" + " | ".join(options) + ")")
    return " & ".join(rendered)
