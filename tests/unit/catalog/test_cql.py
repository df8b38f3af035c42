"""CQL read and mapped onto the full-text index (library.catalog.sru), without a database: what a
query becomes, and which diagnostic a query the server cannot answer gets."""

from __future__ import annotations

import pytest

from library.catalog.sru import (ALL, NOTHING, Boolean, Clause, SruDiagnostic, RequestRefused, parse_cql, read_request,
                                 selection)


def ANYWHERE(term: str) -> Clause:  # noqa: N802 - reads as the clause it stands for
    return Clause("cql.serverchoice", "=", term)


@pytest.mark.parametrize(("query", "parsed"), [
    ("毛毛虫", ANYWHERE("毛毛虫")),
    ("dc.Title = wild", Clause("dc.title", "=", "wild")),
    ('title any "wild hungry"', Clause("title", "any", "wild hungry")),
    (r'title = "say \"and\""', Clause("title", "=", 'say "and"')),
    ("title = and", Clause("title", "=", "and")),  # a keyword where a term stands is the term
    ("a and b or c", Boolean("or", Boolean("and", ANYWHERE("a"), ANYWHERE("b")), ANYWHERE("c"))),  # left to right
    ("a and (b or c)", Boolean("and", ANYWHERE("a"), Boolean("or", ANYWHERE("b"), ANYWHERE("c")))),
    ("title =/relevant x", Clause("title", "=", "x", ("relevant",))),
    ('>x="info:srw/cql-context-set/1/dc-v1.1" x.title = y', Clause("dc.title", "=", "y")),
    ('>"info:srw/cql-context-set/1/dc-v1.1" creator = y', Clause("dc.creator", "=", "y")),
])
def test_parsed(query, parsed):
    assert parse_cql(query) == parsed


@pytest.mark.parametrize(("query", "number"), [
    ("", 27), ("(", 10), ("(a", 13), ("a)", 13), ("((((((((((((((((((a))))))))))))))))))", 13), ('"a', 14),
    ("title =", 10), ("a and", 10), ("a b", 10), ("a prox b", 37), ("a and/x b", 46), ("a sortby title", 80),
    ("x" * 1001, 12), ('>x="urn:nobody" x.title = y', 15),
])
def test_refused_by_the_parser(query, number):
    with pytest.raises(SruDiagnostic) as refused:
        parse_cql(query)
    assert refused.value.number == number


@pytest.mark.parametrize(("query", "number"), [
    ("nosuch = x", 16), ("foo.title = x", 15), ("title > x", 19), ("title within x", 19),
    ("title =/fuzzy x", 20), ('title = ""', 27), ("title = ?*^", 27),
    (" or ".join(f"t{n}" for n in range(33)), 38),
])
def test_refused_by_the_mapping(query, number):
    with pytest.raises(SruDiagnostic) as refused:
        selection(parse_cql(query))
    assert refused.value.number == number


def test_what_the_index_is_asked():
    assert selection(parse_cql("cql.allRecords = 1")) == ALL
    assert selection(parse_cql("isbn = 978753327")) == NOTHING  # not an ISBN: no prefix search
    isbn = selection(parse_cql("bath.isbn = 7-5332-7826-7"))  # the ISBN-10 form: its ISBN-13 token
    assert isbn.fts5() == 'other : "9787533278267"'
    assert selection(parse_cql('title = "wild things"')).fts5() == 'title : "wild things"'
    assert selection(parse_cql("title = 好餓的")).fts5() == 'title : "好 饿 的"'  # folded to simplified
    assert selection(parse_cql("a not b")).fts5() == '("a"*) NOT ("b"*)'
    both = selection(parse_cql("title = wild and author = carle"))
    assert both.fts5() == '(title : "wild"*) AND (author : "carle"*)'
    assert both.tsquery() == "('wild':*A) & ('carle':*B)"
    negated = selection(parse_cql("cql.allRecords = 1 not author = carle"))
    assert negated.kind == "except" and negated.fts5() == 'author : "carle"*'
    either = selection(parse_cql("title = x or cql.allRecords = 1"))
    assert either == ALL
    assert selection(parse_cql("isbn = 123 and title = x")) == NOTHING
    # Two runs of characters are two words: both anywhere, each a phrase of its characters.
    assert selection(parse_cql('cql.serverChoice all "恐龙 冒险"')).fts5() == '("恐 龙") AND ("冒 险")'
    assert selection(parse_cql("title = 好餓的")).tsquery() == "('好':A <-> '饿':A <-> '的':A)"


@pytest.mark.parametrize(("params", "number"), [
    ({"version": "3.1", "operation": "searchRetrieve", "query": "x"}, 5),
    ({"version": "1.2", "operation": "scan", "scanClause": "x"}, 4),
    ({"version": "1.2", "operation": "searchRetrieve"}, 7),
    ({"version": "1.2", "operation": "searchRetrieve", "query": "x", "maximumRecords": "-1"}, 6),
    ({"version": "1.2", "operation": "searchRetrieve", "query": "x", "startRecord": "١"}, 6),  # an Arabic one
    ({"version": "1.2", "operation": "searchRetrieve", "query": "x", "recordSchema": "mods"}, 66),
    ({"version": "2.0", "query": "x", "queryType": "searchTerms"}, 6),
])
def test_requests_refused(params, number):
    with pytest.raises(RequestRefused) as refused:
        read_request(params)
    assert refused.value.diagnostic.number == number


def test_requests_read():
    assert read_request({}).operation == "explain" and read_request({}).version == "2.0"
    request = read_request({"version": "1.1", "operation": "searchRetrieve", "query": "x", "maximumRecords": "500",
                            "recordSchema": "info:srw/schema/1/dc-v1.1", "recordPacking": "string"})
    assert (request.maximum, request.schema, request.packing) == (100, "dc", "string")
    assert [warning.number for warning in request.warnings] == [6]
    assert read_request({"query": "x"}).version == "2.0"
