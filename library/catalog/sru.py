"""Our catalogue served over SRU (Search/Retrieve via URL), so that branches and neighbouring
libraries copy records from us as we copy from them: searchRetrieve and explain, SRU 1.1, 1.2
and 2.0, queries in CQL, records as MARCXML (the record as it came in, our changes applied:
library.catalog.export), as UNIMARC/CNMARC in the same slim XML, or as Dublin Core.

CQL is parsed here (`parse_cql`) and turned into a match of the catalogue's own full-text index
(`selection`), the one the reader's search uses (library.catalog.search, search_text): the same
sections (title, authors, subjects, the rest), the same folding (traditional and simplified
characters alike, pinyin), every term a value bound to the statement, never text in it. An
ISBN is matched exactly, in either form. A query the server cannot answer gets the diagnostic
the SRU standard gives it (info:srw/diagnostic/1/...), never an error page.

The parsing and the mapping are pure; `answer` reads the records and writes the XML.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import pymarc

from library.catalog import export
from library.catalog.isbn import Isbn, parse_isbn
from library.catalog.search import BM25, RANK_ALL_UP_TO
from library.catalog.search_text import CJK_RUNS, Term, fold, fts5_query, tokens_of, tsquery, word_term
from library.catalog.tables import Record
from library.db import is_sqlite, read_transaction

VERSIONS = ("1.1", "1.2", "2.0")
DEFAULT_RECORDS = 10
MAXIMUM_RECORDS = 100  # a page of records at most, as the reader's search
MAX_QUERY_CHARACTERS = 1000
MAX_TERMS = 32  # terms of the index match, over every clause: a query, not a dump
MAX_NESTING = 16  # parentheses within parentheses
DATABASE = "sru"

# The diagnostics we give, by number (https://www.loc.gov/standards/sru/diagnostics/diagnosticsList.html).
DIAGNOSTICS = {
    1: "General system error",
    4: "Unsupported operation",
    5: "Unsupported version",
    6: "Unsupported parameter value",
    7: "Mandatory parameter not supplied",
    10: "Query syntax error",
    12: "Too many characters in query",
    13: "Invalid or unsupported use of parentheses",
    14: "Invalid or unsupported use of quotes",
    15: "Unsupported context set",
    16: "Unsupported index",
    19: "Unsupported relation",
    20: "Unsupported relation modifier",
    27: "Empty term unsupported",
    37: "Unsupported boolean operator",
    38: "Too many boolean operators in query",
    46: "Unsupported boolean modifier",
    61: "First record position out of range",
    66: "Unknown schema for retrieval",
    71: "Unsupported record packing",
    72: "XPath retrieval unsupported",
    80: "Sort not supported",
    110: "Stylesheets not supported",
}


class SruDiagnostic(Exception):
    """A diagnostic of the SRU standard: `number` (info:srw/diagnostic/1/<number>), `details`
    (what it is about: a parameter, an index), `message` for a person."""

    def __init__(self, number: int, details: str = "", message: str = "") -> None:
        super().__init__(f"{number}: {details}")
        self.number = number
        self.details = details
        self.message = message or DIAGNOSTICS.get(number, "")

    @property
    def uri(self) -> str:
        return f"info:srw/diagnostic/1/{self.number}"


# --- CQL ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clause:
    """index relation term; `index` lower case, its prefix resolved ("dc.title")."""

    index: str
    relation: str
    term: str
    modifiers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Boolean:
    operator: str  # and | or | not
    left: Node
    right: Node


Node = Union[Clause, Boolean]

# The context sets whose indexes we know, by the identifiers a query may bind a prefix to.
CONTEXT_SETS = {
    "info:srw/cql-context-set/1/cql-v1.1": "cql", "info:srw/cql-context-set/1/cql-v1.2": "cql",
    "info:srw/cql-context-set/1/dc-v1.1": "dc", "info:srw/cql-context-set/1/dc-v1.0": "dc",
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://zing.z3950.org/cql/bath/2.0/": "bath", "info:srw/cql-context-set/15/bath-v2.0": "bath",
}
BOOLEANS = ("and", "or", "not", "prox")
SYMBOLS = ("==", "<>", "<=", ">=", "=", "<", ">")
# Named relations of CQL; any other word where a relation stands is one we do not know (19).
RELATIONS = {"=": "=", "==": "==", "exact": "==", "adj": "adj", "any": "any", "all": "all",
             "cql.adj": "adj", "cql.any": "any", "cql.all": "all", "cql.exact": "=="}
# Relation modifiers that change nothing for us: relevance is how we rank anyway.
HARMLESS_MODIFIERS = {"relevant", "cql.relevant", "word", "cql.word", "string", "cql.string",
                      "ignorecase", "cql.ignorecase"}

# What each index searches: a section of the full-text index (None: all of it), "isbn", or "all".
INDEXES = {
    "cql.serverchoice": None, "cql.anywhere": None, "cql.keywords": None, "any": None, "anywhere": None,
    "keyword": None, "dc.anywhere": None, "bath.any": None, "bath.keyword": None,
    "title": "title", "dc.title": "title", "bath.title": "title",
    "author": "author", "creator": "author", "dc.creator": "author", "dc.author": "author",
    "dc.contributor": "author", "bath.author": "author", "bath.name": "author", "bath.personalname": "author",
    "bath.corporatename": "author",
    "subject": "subject", "dc.subject": "subject", "bath.subject": "subject", "bath.topicalsubject": "subject",
    "publisher": "other", "dc.publisher": "other", "bath.publisher": "other",
    "isbn": "isbn", "bath.isbn": "isbn", "dc.identifier": "isbn",
    "cql.allrecords": "all",
}
# Short names, as explain lists them (the set and name a client may use).
LISTED_INDEXES = (("cql", "serverChoice", "any"), ("dc", "title", "title"), ("dc", "creator", "author"),
                  ("dc", "subject", "subject"), ("dc", "publisher", "publisher"), ("bath", "isbn", "isbn"),
                  ("dc", "identifier", "isbn"), ("cql", "allRecords", "allRecords"))

_TOKENS = re.compile(r'\s+|(?P<open>\()|(?P<close>\))|(?P<slash>/)|(?P<symbol>==|<>|<=|>=|=|<|>)|(?P<quote>")|'
                     r'(?P<word>[^\s()/=<>"]+)')


@dataclass(frozen=True)
class _Token:
    kind: str  # open, close, slash, symbol, word, quoted
    text: str


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKENS.match(text, position)
        assert match is not None  # every character is in one of the alternatives
        kind = match.lastgroup
        if kind == "quote":
            value, position = _quoted(text, match.end())
            tokens.append(_Token("quoted", value))
            continue
        if kind is not None:
            tokens.append(_Token(kind, match.group()))
        position = match.end()
    return tokens


def _quoted(text: str, start: int) -> tuple[str, int]:
    """A quoted string from just after its opening quote: its value and where it ends. A
    backslash escapes the next character (\\" a quote); masking characters stay as written."""
    value = []
    position = start
    while position < len(text):
        character = text[position]
        if character == "\\" and position + 1 < len(text):
            value.append(text[position + 1])
            position += 2
            continue
        if character == '"':
            return "".join(value), position + 1
        value.append(character)
        position += 1
    raise SruDiagnostic(14, text[start - 1:start + 40], "A quoted term is not closed")


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.at = 0
        self.prefixes: list[dict[str, str]] = [{}]

    def peek(self, ahead: int = 0) -> _Token | None:
        index = self.at + ahead
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise SruDiagnostic(10, "", "The query ends where more was expected")
        self.at += 1
        return token

    def word_is(self, token: _Token | None, *words: str) -> bool:
        return token is not None and token.kind == "word" and token.text.lower() in words

    def query(self, depth: int = 0) -> Node:
        """cqlQuery: prefix assignments, then clauses joined by booleans (left to right, all of
        the same precedence)."""
        self.prefixes.append(dict(self.prefixes[-1]))
        try:
            while self.peek() is not None and self.peek().kind == "symbol" and self.peek().text == ">":
                self.prefix_assignment()
            node = self.clause(depth)
            while self.peek() is not None and self.peek().kind == "word":
                token = self.peek()
                word = token.text.lower()
                if word == "sortby":
                    raise SruDiagnostic(80, "sortBy")
                if word not in BOOLEANS:
                    raise SruDiagnostic(10, token.text, f"A boolean (and, or, not) was expected before {token.text!r}")
                self.take()
                if word == "prox":
                    raise SruDiagnostic(37, "prox")
                if self.peek() is not None and self.peek().kind == "slash":
                    self.take()
                    raise SruDiagnostic(46, self.take().text)
                node = Boolean(word, node, self.clause(depth))
            return node
        finally:
            self.prefixes.pop()

    def prefix_assignment(self) -> None:
        self.take()  # >
        first = self.take()
        if first.kind not in ("word", "quoted"):
            raise SruDiagnostic(10, first.text, "A context set was expected after >")
        following = self.peek()
        if following is not None and following.kind == "symbol" and following.text == "=":
            self.take()
            identifier = self.take()
            if identifier.kind not in ("word", "quoted"):
                raise SruDiagnostic(10, identifier.text, "A context set identifier was expected")
            self.prefixes[-1][first.text.lower()] = identifier.text
        else:
            self.prefixes[-1][""] = first.text  # the default context set

    def clause(self, depth: int) -> Node:
        token = self.peek()
        if token is None:
            raise SruDiagnostic(10, "", "The query ends where a term was expected")
        if token.kind == "open":
            if depth >= MAX_NESTING:
                raise SruDiagnostic(13, "", f"Parentheses nested more than {MAX_NESTING} deep")
            self.take()
            node = self.query(depth + 1)
            closing = self.peek()
            if closing is None or closing.kind != "close":
                raise SruDiagnostic(13, "", "A parenthesis is not closed")
            self.take()
            return node
        if token.kind == "close":
            raise SruDiagnostic(13, "", "A closing parenthesis has no opening one")
        if token.kind not in ("word", "quoted"):
            raise SruDiagnostic(10, token.text, f"A term was expected, not {token.text!r}")
        self.take()
        relation = self.peek()
        named = (relation is not None and relation.kind == "word" and relation.text.lower() not in BOOLEANS
                 and relation.text.lower() != "sortby" and self.peek(1) is not None
                 and self.peek(1).kind in ("word", "quoted"))
        if relation is None or not (relation.kind == "symbol" or named):
            return Clause("cql.serverchoice", "=", token.text)
        if token.kind == "quoted":
            raise SruDiagnostic(10, token.text, "An index name is not quoted")
        self.take()
        modifiers = []
        while self.peek() is not None and self.peek().kind == "slash":
            self.take()
            name = self.take()
            modifiers.append(name.text.lower())
            if self.peek() is not None and self.peek().kind == "symbol":  # /name=value
                self.take()
                self.take()
        term = self.take()
        if term.kind not in ("word", "quoted"):
            raise SruDiagnostic(10, term.text, f"A term was expected after the relation, not {term.text!r}")
        return Clause(self.index_name(token.text), relation.text.lower(), term.text, tuple(modifiers))

    def index_name(self, written: str) -> str:
        """The index with its prefix named as we know it: "x.title" with x bound to Dublin Core is
        "dc.title"; an unknown prefix's index keeps it, and is refused as unknown (15)."""
        lowered = written.lower()
        prefix, _, name = lowered.rpartition(".")
        bindings = self.prefixes[-1]
        if prefix and prefix in bindings:
            known = CONTEXT_SETS.get(bindings[prefix].lower())
            if known is None:
                raise SruDiagnostic(15, bindings[prefix])
            return f"{known}.{name}"
        if not prefix and "" in bindings:  # the query's default context set
            known = CONTEXT_SETS.get(bindings[""].lower())
            return f"{known}.{name}" if known and f"{known}.{name}" in INDEXES else lowered
        return lowered


def parse_cql(text: str) -> Node:
    """A CQL query (the Contextual Query Language, SRU's) as clauses and booleans, or the
    diagnostic for what is wrong with it. Hostile input is expected: nothing here grows with
    the query beyond its bounded length and nesting."""
    if len(text) > MAX_QUERY_CHARACTERS:
        raise SruDiagnostic(12, str(MAX_QUERY_CHARACTERS), f"At most {MAX_QUERY_CHARACTERS} characters")
    tokens = _tokens(text)
    if not tokens:
        raise SruDiagnostic(27, "", "The query is empty")
    parser = _Parser(tokens)
    node = parser.query()
    rest = parser.peek()
    if rest is not None:
        if rest.kind == "close":
            raise SruDiagnostic(13, "", "A closing parenthesis has no opening one")
        raise SruDiagnostic(10, rest.text, f"Unexpected {rest.text!r}")
    return node


# --- CQL to the full-text index -----------------------------------------------------------

# A match of the index: ("terms", [Term, ...]) all of which match, or (operator, left, right).
Match = tuple


@dataclass(frozen=True)
class Selection:
    """Which records a query selects: every one ("all"), none, those the index `match` finds
    ("match"), or all but those ("except": a query that is only a NOT)."""

    kind: str  # all | none | match | except
    match: Match | None = None

    def fts5(self) -> str:
        return _render(self.match, _fts5_part)

    def tsquery(self) -> str:
        return _render(self.match, _ts_part)


ALL = Selection("all")
NOTHING = Selection("none")


_FTS5_OPERATORS = {"and": "AND", "or": "OR", "not": "NOT"}
_TS_OPERATORS = {"and": "&", "or": "|", "not": "& !"}


def _fts5_part(operator: str, left: str, right: str) -> str:
    return f"({left}) {_FTS5_OPERATORS[operator]} ({right})"


def _ts_part(operator: str, left: str, right: str) -> str:
    return f"({left}) {_TS_OPERATORS[operator]} ({right})"


def _render(match: Match | None, part) -> str:
    assert match is not None
    if match[0] == "terms":
        return (fts5_query if part is _fts5_part else tsquery)(match[1])
    return part(match[0], _render(match[1], part), _render(match[2], part))


def _combine(operator: str, left: Selection, right: Selection) -> Selection:
    """Set algebra over the four kinds, so that every query the index cannot say as it stands
    (cql.allRecords NOT x; x OR NOT-only) becomes one it can."""
    kinds = (left.kind, right.kind)
    if operator == "and":
        if "none" in kinds:
            return NOTHING
        if left.kind == "all":
            return right
        if right.kind == "all":
            return left
        if kinds == ("match", "match"):
            return Selection("match", ("and", left.match, right.match))
        if kinds == ("except", "except"):
            return Selection("except", ("or", left.match, right.match))
        found, excluded = (left, right) if left.kind == "match" else (right, left)
        return Selection("match", ("not", found.match, excluded.match))
    if operator == "or":
        if "all" in kinds:
            return ALL
        if left.kind == "none":
            return right
        if right.kind == "none":
            return left
        if kinds == ("match", "match"):
            return Selection("match", ("or", left.match, right.match))
        if kinds == ("except", "except"):
            return Selection("except", ("and", left.match, right.match))
        found, excluded = (left, right) if left.kind == "match" else (right, left)
        return Selection("except", ("not", excluded.match, found.match))  # not (x and not y)
    # not: left and not right
    if right.kind == "all" or left.kind == "none":
        return NOTHING
    if right.kind == "none":
        return left
    if left.kind == "all":
        return Selection("except" if right.kind == "match" else "match", right.match)
    if left.kind == "match":
        return Selection("match", ("not" if right.kind == "match" else "and", left.match, right.match))
    if right.kind == "match":  # (not x) and not y
        return Selection("except", ("or", left.match, right.match))
    return Selection("match", ("not", right.match, left.match))  # (not x) and y


def _runs(text: str) -> list[tuple[str, ...]]:
    """A term's words as the index has them: a run of Chinese characters as one (its characters
    a phrase), every other word alone."""
    runs: list[tuple[str, ...]] = []
    for chunk in text.split():  # "恐龙 冒险": two runs, as the reader's search reads them
        chinese: list[str] = []
        for token in tokens_of(fold(chunk)):
            if CJK_RUNS.fullmatch(token):
                chinese.append(token)
                continue
            if chinese:
                runs.append(tuple(chinese))
                chinese = []
            runs.append((token,))
        if chinese:
            runs.append(tuple(chinese))
    return runs


def _word(run: tuple[str, ...], section: str | None) -> Term:
    """One word as the reader's search takes it: a Latin word also as the beginning of a longer
    one, and as pinyin; a run of characters as the phrase of them."""
    if len(run) == 1 and not CJK_RUNS.fullmatch(run[0]):
        return word_term(run[0], section, None)
    return Term(prefix=None, phrases=(run,), section=section)


def _isbn(value: str) -> Selection:
    parsed = parse_isbn(value)
    if not isinstance(parsed, Isbn):
        return NOTHING  # no record of ours has an ISBN that is not one: never a prefix search
    return Selection("match", ("terms", [Term(prefix=None, phrases=((parsed.isbn13,),), section="other")]))


def _either(selections: list[Selection], operator: str) -> Selection:
    result = selections[0]
    for other in selections[1:]:
        result = _combine(operator, result, other)
    return result


def _clause_selection(clause: Clause) -> Selection:
    if clause.index not in INDEXES:
        prefix = clause.index.rpartition(".")[0]
        if prefix and prefix not in ("cql", "dc", "bath"):
            raise SruDiagnostic(15, prefix)
        raise SruDiagnostic(16, clause.index)
    for modifier in clause.modifiers:
        if modifier not in HARMLESS_MODIFIERS:
            raise SruDiagnostic(20, modifier)
    relation = RELATIONS.get(clause.relation)
    if relation is None:
        raise SruDiagnostic(19, clause.relation)
    target = INDEXES[clause.index]
    if target == "all":
        return ALL
    if not clause.term.strip():
        raise SruDiagnostic(27, clause.index)
    if target == "isbn":
        values = [value for value in re.split(r"[\s,;]+", clause.term) if value]
        if relation in ("any", "all"):
            return _either([_isbn(value) for value in values], "or" if relation == "any" else "and")
        return _isbn("".join(values))
    runs = _runs(clause.term)
    if not runs:
        raise SruDiagnostic(27, clause.term[:100], "The term has no letter, digit or character to search for")
    if relation in ("any", "all"):
        selections = [Selection("match", ("terms", [_word(run, target)])) for run in runs]
        return _either(selections, "or" if relation == "any" else "and")
    if len(runs) == 1 and relation == "=":
        return Selection("match", ("terms", [_word(runs[0], target)]))
    # adj, ==, or = with several words: the words together, in their order
    phrase = tuple(token for run in runs for token in run)
    return Selection("match", ("terms", [Term(prefix=None, phrases=(phrase,), section=target)]))


def _terms(match: Match | None) -> int:
    if match is None:
        return 0
    if match[0] == "terms":
        return len(match[1])
    return _terms(match[1]) + _terms(match[2])


def selection(node: Node) -> Selection:
    """The records a parsed query selects, as a match of the full-text index."""

    def walk(part: Node) -> Selection:
        if isinstance(part, Clause):
            return _clause_selection(part)
        return _combine(part.operator, walk(part.left), walk(part.right))

    chosen = walk(node)
    if _terms(chosen.match) > MAX_TERMS:
        raise SruDiagnostic(38, str(MAX_TERMS), f"At most {MAX_TERMS} terms in a query")
    return chosen


# --- the request -----------------------------------------------------------------------------

# recordSchema: the names a client may ask by, and the identifier the answer gives.
SCHEMAS = {
    "marcxml": ("info:srw/schema/1/marcxml-v1.1", ("marcxml", "marc21", "marc21xml", "marcxml-v1.1",
                                                   "info:srw/schema/1/marcxml-v1.1", "http://www.loc.gov/marc21/slim")),
    "unimarc": ("info:srw/schema/8/unimarcxml-v0.1", ("unimarc", "cnmarc", "unimarcxml",
                                                      "info:srw/schema/8/unimarcxml-v0.1")),
    "dc": ("info:srw/schema/1/dc-v1.1", ("dc", "dc-v1.1", "info:srw/schema/1/dc-v1.1",
                                         "http://purl.org/dc/elements/1.1/")),
}
_SCHEMA_NAMES = {name: key for key, (_, names) in SCHEMAS.items() for name in names}


@dataclass
class SruRequest:
    operation: str  # searchRetrieve | explain
    version: str
    query: str = ""
    start: int = 1
    maximum: int = DEFAULT_RECORDS
    schema: str = "marcxml"
    packing: str = "xml"  # xml | string
    warnings: list[SruDiagnostic] = field(default_factory=list)  # non-fatal: the answer still comes


def _version(params: Mapping[str, str]) -> str:
    asked = params.get("version")
    if asked is None:
        # SRU 1.x clients always say their version; a request without one is SRU 2.0's.
        return "1.2" if params.get("operation") else "2.0"
    if asked in VERSIONS:
        return asked
    # Not one of ours: answered in the nearest version we speak, with diagnostic 5.
    answered = "2.0" if asked.startswith("2.") else "1.2"
    raise RequestRefused(answered, "searchRetrieve", SruDiagnostic(5, asked, "Versions 1.1, 1.2 and 2.0 are supported"))


class RequestRefused(Exception):
    """A request refused as a whole: the version and operation to answer it in, and why."""

    def __init__(self, version: str, operation: str, diagnostic: SruDiagnostic) -> None:
        super().__init__(diagnostic)
        self.version = version
        self.operation = operation
        self.diagnostic = diagnostic


def _number(params: Mapping[str, str], name: str, default: int, lowest: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    value = value.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 9 or int(value) < lowest:
        raise SruDiagnostic(6, name, f"{name} must be a whole number from {lowest}")
    return int(value)


def read_request(params: Mapping[str, str]) -> SruRequest:
    """The request's parameters read, or a `RequestRefused` with the diagnostic."""
    version = _version(params)
    operation = params.get("operation")
    if operation is None:
        operation = "searchRetrieve" if "query" in params else "explain"
    if operation not in ("searchRetrieve", "explain"):
        raise RequestRefused(version, "searchRetrieve", SruDiagnostic(4, operation))
    request = SruRequest(operation, version)
    if operation == "explain":
        return request
    try:
        request.query = params.get("query") or ""
        if not request.query.strip():
            raise SruDiagnostic(7, "query")
        if params.get("queryType", "cql") != "cql":
            raise SruDiagnostic(6, "queryType", "Only CQL queries are supported")
        request.start = _number(params, "startRecord", 1, 1)
        asked = _number(params, "maximumRecords", DEFAULT_RECORDS, 0)
        if asked > MAXIMUM_RECORDS:
            request.warnings.append(SruDiagnostic(6, "maximumRecords",
                                                  f"At most {MAXIMUM_RECORDS} records are sent at a time"))
        request.maximum = min(asked, MAXIMUM_RECORDS)
        schema = params.get("recordSchema")
        if schema:
            if schema.lower() not in _SCHEMA_NAMES:
                raise SruDiagnostic(66, schema)
            request.schema = _SCHEMA_NAMES[schema.lower()]
        packing = params.get("recordXMLEscaping" if version == "2.0" else "recordPacking") or "xml"
        if packing not in ("xml", "string"):
            raise SruDiagnostic(71, packing)
        request.packing = packing
        if params.get("recordXPath"):
            raise SruDiagnostic(72, "recordXPath")
        if params.get("sortKeys"):
            raise SruDiagnostic(80, "sortKeys")
        if params.get("stylesheet"):
            raise SruDiagnostic(110, "stylesheet")
    except SruDiagnostic as diagnostic:
        raise RequestRefused(version, operation, diagnostic) from None
    return request


# --- the records ------------------------------------------------------------------------------


async def _found(chosen: Selection, start: int, count: int) -> tuple[int, list[int]]:
    """How many records the selection has, and the ids of `count` of them from the `start`th
    (1-based): best matches first while there are few enough to rank (search.RANK_ALL_UP_TO),
    otherwise the newest catalogued first. Raw SQL: the full-text match is beyond the query
    builder; the match text is a bound value."""
    if chosen.kind == "none":
        return 0, []
    sqlite = is_sqlite()
    values: list[Any] = []
    if chosen.kind == "all":
        source, order = "record", "id DESC"
    elif sqlite:
        values = [chosen.fts5()]
        if chosen.kind == "match":
            source, order = "record_fts WHERE record_fts MATCH {}", "rowid DESC"
        else:
            source, order = "record WHERE id NOT IN (SELECT rowid FROM record_fts WHERE record_fts MATCH {})", "id DESC"
    else:
        values = [chosen.tsquery()]
        negation = "NOT " if chosen.kind == "except" else ""
        source, order = f"record WHERE {negation}(search_vector @@ to_tsquery('simple', {{}}))", "id DESC"
    total = (await Record.raw(f"SELECT COUNT(*) AS n FROM {source}", *values))[0]["n"]
    if count == 0 or start > total:
        return total, []
    ranked = chosen.kind == "match" and total <= RANK_ALL_UP_TO
    order_values: list[Any] = []
    if ranked and sqlite:
        order = f"{BM25}, rowid DESC"
    elif ranked:
        order, order_values = "ts_rank(search_vector, to_tsquery('simple', {})) DESC, id DESC", values
    key = "rowid" if sqlite and chosen.kind == "match" else "id"
    rows = await Record.raw(f"SELECT {key} AS id FROM {source} ORDER BY {order} LIMIT {int(count)} "
                            f"OFFSET {int(start) - 1}", *values, *order_values)
    return total, [row["id"] for row in rows]


async def _views(ids: list[int]) -> list[dict[str, Any]]:
    rows = await Record.select().where(Record.id.is_in(ids)) if ids else []
    by_id = {row["id"]: row for row in rows}
    return [export.record_view(by_id[i]) for i in ids if i in by_id]


# --- XML ----------------------------------------------------------------------------------------

SRW = "http://www.loc.gov/zing/srw/"
SRW_DIAGNOSTIC = "http://www.loc.gov/zing/srw/diagnostic/"
SRU2 = "http://docs.oasis-open.org/ns/search-ws/sruResponse"
SRU2_DIAGNOSTIC = "http://docs.oasis-open.org/ns/search-ws/diagnostic"
MARC_SLIM = "http://www.loc.gov/MARC21/slim"
ZEEREX = "http://explain.z3950.org/dtd/2.0/"
SRW_DC = "info:srw/schema/1/dc-schema"
DC = "http://purl.org/dc/elements/1.1/"
for _prefix, _uri in (("zs", SRW), ("diag", SRW_DIAGNOSTIC), ("sru", SRU2), ("sru2diag", SRU2_DIAGNOSTIC),
                      ("marc", MARC_SLIM), ("zr", ZEEREX), ("srw_dc", SRW_DC), ("dc", DC)):
    ElementTree.register_namespace(_prefix, _uri)

# Characters XML 1.0 cannot carry at all: a kept MARC record may hold one (a stray control
# character from an old system); it is left out rather than making the whole answer unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: Any) -> str:
    return _NOT_XML.sub("", str(text))


def _add(parent: ElementTree.Element, element: str, text: Any = None, /, **attributes: Any) -> ElementTree.Element:
    child = ElementTree.SubElement(parent, element, {key: _clean(value) for key, value in attributes.items()})
    if text is not None:
        child.text = _clean(text)
    return child


def marc_element(record: pymarc.Record) -> ElementTree.Element:
    """A record in MARCXML's slim format (MARC21, or UNIMARC's tags in the same elements)."""
    root = ElementTree.Element(f"{{{MARC_SLIM}}}record")
    _add(root, f"{{{MARC_SLIM}}}leader", str(record.leader) if record.leader is not None else "")
    for marc_field in record.fields:
        if marc_field.control_field:
            _add(root, f"{{{MARC_SLIM}}}controlfield", marc_field.data or "", tag=marc_field.tag)
            continue
        indicators = list(marc_field.indicators or ("", ""))
        datafield = _add(root, f"{{{MARC_SLIM}}}datafield", tag=marc_field.tag,
                         ind1=(indicators[0] or " ")[:1], ind2=(indicators[1] or " ")[:1])
        for subfield in marc_field.subfields:
            _add(datafield, f"{{{MARC_SLIM}}}subfield", subfield.value, code=subfield.code)
    return root


def dc_element(view: dict[str, Any]) -> ElementTree.Element:
    """A record in Dublin Core (SRU's dc schema), from its columns."""
    root = ElementTree.Element(f"{{{SRW_DC}}}dc")

    def dc(name: str, value: Any) -> None:
        if value not in (None, ""):
            _add(root, f"{{{DC}}}{name}", value)

    dc("title", " : ".join(part for part in (view.get("title"), view.get("subtitle")) if part))
    for contributor in view.get("contributors") or []:
        name, role = contributor.get("name"), contributor.get("role") or "author"
        dc("creator" if role == "author" else "contributor", name)
    for subject in view.get("subjects") or []:
        dc("subject", subject)
    dc("description", view.get("summary"))
    dc("publisher", view.get("publisher"))
    dc("date", view.get("publication_year"))
    dc("type", "Text")
    for isbn in filter(None, [view.get("isbn13"), *(view.get("other_isbns") or [])]):
        dc("identifier", f"URN:ISBN:{isbn}")
    dc("language", view.get("language"))
    return root


class _Writer:
    """The elements of an answer, in the namespaces of its version (1.x and 2.0 differ)."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.ns = SRU2 if version == "2.0" else SRW
        self.diagnostic_ns = SRU2_DIAGNOSTIC if version == "2.0" else SRW_DIAGNOSTIC

    def root(self, name: str) -> ElementTree.Element:
        root = ElementTree.Element(f"{{{self.ns}}}{name}")
        _add(root, f"{{{self.ns}}}version", self.version)
        return root

    def add(self, parent: ElementTree.Element, name: str, text: Any = None) -> ElementTree.Element:
        return _add(parent, f"{{{self.ns}}}{name}", text)

    def diagnostics(self, parent: ElementTree.Element, diagnostics: list[SruDiagnostic]) -> None:
        if not diagnostics:
            return
        holder = self.add(parent, "diagnostics")
        for diagnostic in diagnostics:
            item = _add(holder, f"{{{self.diagnostic_ns}}}diagnostic")
            _add(item, f"{{{self.diagnostic_ns}}}uri", diagnostic.uri)
            if diagnostic.details:
                _add(item, f"{{{self.diagnostic_ns}}}details", diagnostic.details)
            if diagnostic.message:
                _add(item, f"{{{self.diagnostic_ns}}}message", diagnostic.message)

    def record(self, parent: ElementTree.Element, schema: str, packing: str, data: ElementTree.Element,
               position: int) -> None:
        record = self.add(parent, "record")
        self.add(record, "recordSchema", schema)
        self.add(record, "recordXMLEscaping" if self.version == "2.0" else "recordPacking", packing)
        holder = self.add(record, "recordData")
        if packing == "string":
            holder.text = ElementTree.tostring(data, encoding="unicode")
        else:
            holder.append(data)
        self.add(record, "recordPosition", position)


def _bytes(root: ElementTree.Element) -> bytes:
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def refusal_xml(version: str, operation: str, diagnostic: SruDiagnostic) -> bytes:
    writer = _Writer(version)
    if operation == "explain":
        root = writer.root("explainResponse")
    else:
        root = writer.root("searchRetrieveResponse")
        writer.add(root, "numberOfRecords", 0)
    writer.diagnostics(root, [diagnostic])
    return _bytes(root)


def explain_xml(version: str, host: str, port: int, title: str) -> bytes:
    """What the server is and what it answers (ZeeRex, as SRU's explain gives it)."""
    writer = _Writer(version)
    root = writer.root("explainResponse")
    record = writer.add(root, "record")
    writer.add(record, "recordSchema", "http://explain.z3950.org/dtd/2.0/")
    writer.add(record, "recordXMLEscaping" if version == "2.0" else "recordPacking", "xml")
    data = writer.add(record, "recordData")
    explain = _add(data, f"{{{ZEEREX}}}explain")
    server = _add(explain, f"{{{ZEEREX}}}serverInfo", protocol="SRU", version=version)
    _add(server, f"{{{ZEEREX}}}host", host)
    _add(server, f"{{{ZEEREX}}}port", port)
    _add(server, f"{{{ZEEREX}}}database", DATABASE)
    database = _add(explain, f"{{{ZEEREX}}}databaseInfo")
    _add(database, f"{{{ZEEREX}}}title", title, lang="en", primary="true")
    _add(database, f"{{{ZEEREX}}}description", "The catalogue's records, as MARCXML (MARC21 or UNIMARC) or Dublin "
                                               "Core. Chinese text in simplified or traditional characters and pinyin "
                                               "alike.", lang="en")
    indexes = _add(explain, f"{{{ZEEREX}}}indexInfo")
    for name, identifier in (("cql", "info:srw/cql-context-set/1/cql-v1.2"),
                             ("dc", "info:srw/cql-context-set/1/dc-v1.1"),
                             ("bath", "http://zing.z3950.org/cql/bath/2.0/")):
        _add(indexes, f"{{{ZEEREX}}}set", name=name, identifier=identifier)
    for set_name, name, title_text in LISTED_INDEXES:
        index = _add(indexes, f"{{{ZEEREX}}}index", search="true")
        _add(index, f"{{{ZEEREX}}}title", title_text, lang="en")
        _add(_add(index, f"{{{ZEEREX}}}map"), f"{{{ZEEREX}}}name", name, set=set_name)
    schemas = _add(explain, f"{{{ZEEREX}}}schemaInfo")
    for name, (identifier, _names) in SCHEMAS.items():
        schema = _add(schemas, f"{{{ZEEREX}}}schema", identifier=identifier, name=name, retrieve="true")
        _add(schema, f"{{{ZEEREX}}}title", {"marcxml": "MARCXML (MARC21 slim)", "unimarc": "UNIMARC / CNMARC in "
                                            "MARCXML's slim format", "dc": "Dublin Core"}[name], lang="en")
    config = _add(explain, f"{{{ZEEREX}}}configInfo")
    _add(config, f"{{{ZEEREX}}}default", DEFAULT_RECORDS, type="numberOfRecords")
    _add(config, f"{{{ZEEREX}}}setting", MAXIMUM_RECORDS, type="maximumRecords")
    _add(config, f"{{{ZEEREX}}}default", "marcxml", type="retrieveSchema")
    _add(config, f"{{{ZEEREX}}}supports", "and or not", type="booleans")
    _add(config, f"{{{ZEEREX}}}supports", "= == adj any all", type="relations")
    return _bytes(root)


def _record_data(view: dict[str, Any], schema: str, today: dt.date) -> ElementTree.Element:
    if schema == "dc":
        return dc_element(view)
    # The bibliographic record only: our copies' barcodes and shelves are no other library's
    # business, and a copying library's import would take them for its own copies.
    return marc_element(export.record_out(view, [], "cnmarc" if schema == "unimarc" else "marc21", today))


async def search_retrieve_xml(request: SruRequest, today: dt.date) -> bytes:
    writer = _Writer(request.version)
    root = writer.root("searchRetrieveResponse")
    try:
        chosen = selection(parse_cql(request.query))
    except SruDiagnostic as diagnostic:
        writer.add(root, "numberOfRecords", 0)
        writer.diagnostics(root, [diagnostic])
        return _bytes(root)
    async with read_transaction():
        total, ids = await _found(chosen, request.start, request.maximum)
        views = await _views(ids)
    writer.add(root, "numberOfRecords", total)
    diagnostics = list(request.warnings)
    if views:
        records = writer.add(root, "records")
        identifier = SCHEMAS[request.schema][0]
        for position, view in enumerate(views, start=request.start):
            writer.record(records, identifier, request.packing, _record_data(view, request.schema, today), position)
        following = request.start + len(views)
        if following <= total:
            writer.add(root, "nextRecordPosition", following)
    elif total and request.start > total:
        diagnostics.append(SruDiagnostic(61, str(request.start), f"There are {total} records"))
    writer.diagnostics(root, diagnostics)
    return _bytes(root)


async def answer(params: Mapping[str, str], host: str, port: int, today: dt.date,
                 title: str = "Library catalogue") -> bytes:
    """The XML answer to one SRU request (its query parameters, the first of each)."""
    try:
        request = read_request(params)
    except RequestRefused as refusal:
        return refusal_xml(refusal.version, refusal.operation, refusal.diagnostic)
    if request.operation == "explain":
        return explain_xml(request.version, host, port, title)
    return await search_retrieve_xml(request, today)
