"""What the full-text index holds for a record, and how a reader's words become a query.

Pure functions. Chinese has no spaces between words, and readers type the same title
in simplified or traditional characters, in pinyin, or as pinyin initials. So the
indexed text (`search_text`, kept on the record and indexed by the database itself:
FTS5 on SQLite, a GIN index on PostgreSQL) holds, for every searchable field:

- the text folded: compatibility forms unified (NFKC), simplified characters, lower case,
  accents taken off the letters that carry them ("España" -> "espana", whether the
  accent came precomposed or as a combining mark), Chinese characters one token each
  (so a phrase query matches any run of characters: "毛毛虫");
- the pinyin syllables of the Chinese characters ("mao mao chong");
- one token of the pinyin initials of the field's Chinese characters ("hedmmc").

The text is in four sections, separated by `SECTION_SEPARATOR`: title (with subtitle,
parallel, original and series titles), authors, subjects, and the rest (publisher, ISBNs,
class number). The database indexes each section apart (FTS5 columns; tsvector weights
A-D), so that `ti:`, `au:` and `su:` search one of them and a title counts for more.

A query is folded the same way: a run of Chinese characters becomes a phrase; a Latin
word matches as a word prefix ("caterp") or, when it reads as pinyin, as the phrase of
its syllables ("maomaochong" -> "mao mao chong"); words in double quotes are a phrase of
whole words; `ti:`, `au:`, `su:`, `isbn:` and `clc:` (and their Chinese names) restrict
the word or quoted phrase after them to one section. All parts must match (AND).
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

from library.catalog.isbn import Isbn, parse_isbn

_to_simplified = opencc.OpenCC("t2s")
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
# A run of Chinese characters, or a word: letters and digits of any script but Chinese.
_RUNS = re.compile(rf"([{_CJK}]+)|([^\W_{_CJK}]+)")
CJK_RUNS = re.compile(rf"[{_CJK}]+")
# The combining marks that are accents on letters (the Combining Diacritical Marks blocks).
# Not every mark: the voicing marks of Japanese kana (U+3099, U+309A) make other letters.
_ACCENTS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
# Letters with a stroke or a ligature have no decomposition; readers type them as these.
_PLAIN_LETTERS = str.maketrans({"ø": "o", "đ": "d", "ð": "d", "ł": "l", "ħ": "h", "ŧ": "t", "ı": "i",
                                "æ": "ae", "œ": "oe", "þ": "th"})


def fold(text: str) -> str:
    """Compatibility forms unified (full-width letters), simplified characters, lower case,
    accents taken off letters ("España" -> "espana", "Łódź" -> "lodz")."""
    if not text:
        return ""
    if text.isascii():  # no compatibility form, Chinese character or accent: the common case, at once
        return text.lower()
    return _fold_beyond_ascii(text)


# The last few texts folded: an import folds a record's title for its search text and, a moment
# later, again for its match keys (library.catalog.matching.fold_title); OpenCC is most of it.
@lru_cache(maxsize=256)
def _fold_beyond_ascii(text: str) -> str:
    text = _to_simplified.convert(unicodedata.normalize("NFKC", text)).casefold()
    if text.isascii():
        return text
    bare = _ACCENTS.sub("", unicodedata.normalize("NFKD", text))
    return unicodedata.normalize("NFC", bare).translate(_PLAIN_LETTERS)


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
    """The indexed text of some fields (one section of a record's)."""
    parts: list[str] = []
    for field in fields:
        if field:
            parts.extend(_field_parts(field))
    return " ; ".join(parts)


# The sections of a record's search text, in order: the FTS5 columns (SQLite) and the tsvector
# weights (PostgreSQL) they become (catalog migration 2026-12-07T08:30:00).
SECTIONS = ("title", "author", "subject", "other")
WEIGHTS = {"title": "A", "author": "B", "subject": "C", "other": "D"}
SECTION_SEPARATOR = " | "  # never in a section: sections hold letters, digits and " ; "
_CLASS_NUMBERS = re.compile(r"(?<![0-9a-z.])[a-z]+[0-9.]*")


def class_numbers(clc: str | None) -> list[str]:
    """The class numbers in a value, folded ("I287.8;I712" -> ["i287.8", "i712"])."""
    return _CLASS_NUMBERS.findall(fold(clc)) if clc else []


def class_tokens(clc: str | None) -> list[str]:
    """A class number as one token that a prefix of it matches: "I287.8" -> "clci2878".

    "clc" keeps it apart from words (a title's "i2878" is not a class number); the dots go,
    as the database's parsers would cut the number there (in CLC they only group digits
    by three). A value with several numbers ("I287.8;I712") gives a token for each.
    """
    tokens = []
    for number in class_numbers(clc):
        token = "clc" + number.replace(".", "")
        if token not in tokens:
            tokens.append(token)
    return tokens


def index_sections(title: Iterable[str | None], author: Iterable[str | None], subject: Iterable[str | None],
                   other: Iterable[str | None]) -> str:
    """The text the database indexes for one record: its four sections, in `SECTIONS` order."""
    return SECTION_SEPARATOR.join(index_text(fields) for fields in (title, author, subject, other))


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

# What a reader may put before a colon to search one part of the record ("au:carle",
# "题名:毛毛虫"); anything else before a colon is just words. The class number (clc) and
# the ISBN live in the "other" section as tokens of their own (`class_tokens`).
FIELDS = {"ti": "title", "au": "author", "su": "subject", "isbn": "isbn", "clc": "clc",
          "题名": "title", "书名": "title", "作者": "author", "著者": "author", "主题": "subject", "分类号": "clc"}
_SHORT_NAMES = {"title": "ti", "author": "au", "subject": "su", "isbn": "isbn", "clc": "clc"}
MAX_TERMS = 12  # a pasted paragraph is not a query
# Chinese input methods type quotation marks as these.
_QUOTES = str.maketrans({mark: '"' for mark in "“”„‟«»「」『』〝〞"})
# A chunk of a query: an optional "name:", then a quoted phrase (closed by a quote or the end)
# or a run of anything but spaces and quotes.
_CHUNKS = re.compile(r'(?:([^\s:"]+):)?(?:"([^"]*)(?:"|$)|([^\s"]+))')


@dataclass(frozen=True)
class Term:
    """Alternatives, any of which may match: a prefix word, or a phrase of tokens.

    `section`: the part of the record it must be found in (None: anywhere). `field` and
    `text`: how the reader wrote it, folded ("au" and "carle"), for a suggestion to be made
    of. `always_prefix`: a class number or part of an ISBN, a prefix by nature, which the
    ranking does not try as a whole word first.
    """

    prefix: str | None
    phrases: tuple[tuple[str, ...], ...]
    section: str | None = None
    field: str | None = None
    text: str = ""
    always_prefix: bool = False

    @property
    def written(self) -> str:
        return f"{self.field}:{self.text}" if self.field else self.text


def tokens_of(text: str) -> list[str]:
    """The tokens of a folded text as the index has them: Chinese characters one by one, words."""
    tokens: list[str] = []
    for cjk, word in _RUNS.findall(text):
        tokens.extend(cjk if cjk else [word])
    return tokens


def shown(tokens: Iterable[str]) -> str:
    """Tokens as a reader writes them: Chinese characters together, words apart."""
    text = ""
    for token in tokens:
        if text and not (CJK_RUNS.fullmatch(token) and CJK_RUNS.fullmatch(text[-1])):
            text += " "
        text += token
    return text


def word_term(word: str, section: str | None, field: str | None) -> Term:
    phrases: tuple[tuple[str, ...], ...] = ()
    syllables = split_pinyin(word) if word.isalpha() and word.isascii() else None
    if syllables and len(syllables) > 1:
        phrases = (tuple(syllables),)
    return Term(prefix=word, phrases=phrases, section=section, field=field, text=word)


def _words(text: str, section: str | None = None, field: str | None = None) -> list[Term]:
    terms = []
    for cjk, word in _RUNS.findall(fold(text)):
        if cjk:
            terms.append(Term(prefix=None, phrases=(tuple(cjk),), section=section, field=field, text=cjk))
        else:
            terms.append(word_term(word, section, field))
    return terms


def _phrase(text: str, section: str | None = None, field: str | None = None) -> list[Term]:
    tokens = tokens_of(fold(text))
    if not tokens:
        return []
    return [Term(prefix=None, phrases=(tuple(tokens),), section=section, field=field,
                 text='"' + shown(tokens) + '"')]


def _isbn_term(value: str) -> list[Term]:
    parsed = parse_isbn(value)
    if isinstance(parsed, Isbn):
        return [Term(prefix=None, phrases=((parsed.isbn13,),), section="other", field="isbn", text=parsed.isbn13)]
    digits = "".join(ch for ch in fold(value) if ch.isdigit() or ch == "x")
    if not digits:
        return []
    # Part of an ISBN (a publisher's prefix, say): the ISBNs that begin with it.
    return [Term(prefix=digits, phrases=(), section="other", field="isbn", text=digits, always_prefix=True)]


def _chunk_terms(name: str | None, phrase: str | None, word: str | None) -> list[Term]:
    value = phrase if phrase is not None else word or ""
    field = FIELDS.get(name.casefold()) if name else None
    if name and field is None:  # "re:zero", "http://...": words like the rest
        return _words(name) + (_phrase(value) if phrase is not None else _words(value))
    short = _SHORT_NAMES.get(field) if field else None
    if field == "isbn":
        return _isbn_term(value)
    if field == "clc":
        numbers = class_numbers(value)
        if not numbers:
            return _words(value)
        return [Term(prefix="clc" + number.replace(".", ""), phrases=(), section="other", field=short,
                     text=number.upper(), always_prefix=True) for number in numbers]
    if phrase is not None:
        return _phrase(phrase, field, short)
    return _words(value, field, short)


def parse_query(text: str) -> list[Term]:
    """A reader's query as terms, all of which must match."""
    text = unicodedata.normalize("NFKC", text or "").translate(_QUOTES)
    terms: list[Term] = []
    for match in _CHUNKS.finditer(text):
        name, phrase, word = match.groups()
        if word is not None and word.endswith(":") and word[:-1].casefold() in FIELDS:
            continue  # a field name with nothing after it
        terms.extend(_chunk_terms(name, phrase, word))
    return terms[:MAX_TERMS]


def _fts5_quote(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


def fts5_query(terms: list[Term], exact: bool = False) -> str:
    """FTS5 MATCH syntax: "a b c" is a phrase, "w"* a prefix, AND / OR as written, "column : ..."
    a section. `exact`: every word a whole word (the first tier of the ranking)."""
    rendered = []
    for term in terms:
        options = [_fts5_quote(" ".join(phrase)) for phrase in term.phrases]
        if term.prefix:
            options.append(_fts5_quote(term.prefix) + ("" if exact and not term.always_prefix else "*"))
        option = options[0] if len(options) == 1 else "(" + " OR ".join(options) + ")"
        rendered.append(f"{term.section} : {option}" if term.section else option)
    return " AND ".join(rendered)


def _ts_quote(token: str) -> str:
    return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"


def tsquery(terms: list[Term], exact: bool = False) -> str:
    """PostgreSQL to_tsquery('simple', ...) syntax: <-> follows, :* is a prefix, :A (B, C, D) a
    section, & and |. `exact`: as for `fts5_query`."""
    rendered = []
    for term in terms:
        weight = WEIGHTS[term.section] if term.section else ""
        label = f":{weight}" if weight else ""
        options = [" <-> ".join(_ts_quote(token) + label for token in phrase) for phrase in term.phrases]
        if term.prefix:
            whole = exact and not term.always_prefix
            options.append(_ts_quote(term.prefix) + (label if whole else ":*" + weight))
        options = [f"({option})" if "<->" in option else option for option in options]
        rendered.append(options[0] if len(options) == 1 else "(" + " | ".join(options) + ")")
    return " & ".join(rendered)


# --- "did you mean" ---------------------------------------------------------------------

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def edits1(word: str) -> set[str]:
    """Every word one letter away: a letter left out, two swapped, one changed, one added."""
    letters = _LETTERS if word.isascii() else _LETTERS + "".join(sorted(set(word) - set(_LETTERS)))
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    found = {head + tail[1:] for head, tail in splits if tail}
    found |= {head + tail[1] + tail[0] + tail[2:] for head, tail in splits if len(tail) > 1}
    found |= {head + letter + tail[1:] for head, tail in splits if tail for letter in letters}
    found |= {head + letter + tail for head, tail in splits for letter in letters}
    found.discard(word)
    return found


def distance(a: str, b: str) -> int:
    """Edits from one word to the other (a letter left out, added, changed, or two swapped)."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            best = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                best = min(best, previous2[j - 2] + 1)
            current.append(best)
        previous2, previous = previous, current
    return previous[-1]


@lru_cache(maxsize=None)
def readings(character: str) -> frozenset[str]:
    """Every toneless reading of a character (重: zhong, chong)."""
    from pypinyin.pinyin_dict import pinyin_dict

    found = pinyin_dict.get(ord(character))
    return frozenset(_toneless(reading) for reading in found.split(",")) if found else frozenset()


def sound_alike(run: str, other: str) -> bool:
    """Whether two runs of characters can be read the same, character by character (毛毛重, 毛毛虫)."""
    return len(run) == len(other) and all(
        a == b or readings(a) & readings(b) for a, b in zip(run, other))


def spoken_as(run: str, limit: int = 8) -> list[tuple[str, ...]]:
    """The ways a run of characters can be read, as syllables: the usual one first, then other
    readings of its characters, at most `limit` in all."""
    usual = tuple(pinyin_of(run))
    ways = [usual] if len(usual) == len(run) else []
    options = [sorted(readings(character)) for character in run]
    if not all(options):
        return ways
    combined: list[tuple[str, ...]] = [()]
    for choices in options:
        combined = [head + (choice,) for head in combined for choice in choices][:limit * 4]
    for way in combined:
        if way not in ways:
            ways.append(way)
    return ways[:limit]


def warm() -> None:
    """Load now what a first search needs, instead of making a reader's first search wait for it:
    OpenCC's tables and the pinyin tables (`index_text`), and the pinyin syllables
    (`split_pinyin`). Measured on a 2-core box: about 0.3 s each; the first pinyin search
    after a start took 0.77 s, the next ones 5-8 ms."""
    index_text(["预热 warm"])
    split_pinyin("maomaochong")

