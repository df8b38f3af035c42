"""Search as a cataloguer checks it, on the database's own index (SQLite FTS5, and PostgreSQL
when LIBRARY_TEST_DATABASE_URL is set): accents, whole words before the words they begin,
phrases, field search, "did you mean", and facets whose counts are what the filter then finds.
"""

import datetime as dt

import pytest

from library.accounts.principal import Principal
from library.app import create_app
from library.branches.tables import Branch
from library.catalog import search
from library.catalog.search import SearchFilters, parse_range
from library.catalog.service import NewCopies, RecordInput, add_items, create_record
from library.catalog.tables import Item, Record
from library.demo import load_demo
from library.settings import load_settings
from tests.support import client_for

TODAY = dt.date(2026, 11, 28)


@pytest.fixture
async def demo():
    await load_demo(TODAY, books=False)


async def record(title: str, **fields) -> str:
    if "contributors" in fields:
        fields["contributors"] = [{"name": name, "role": "author"} for name in fields["contributors"]]
    return await create_record(RecordInput(title=title, **fields), "test", TODAY)


async def found(query: str, filters: SearchFilters | None = None, **options) -> list[str]:
    result = await search.search(query, filters or SearchFilters(), page_size=100, **options)
    assert result["total"] == len(result["hits"])
    return [hit["uuid"] for hit in result["hits"]]


# --- 1. accents -----------------------------------------------------------------------------


async def test_espana_finds_every_espana_with_or_without_the_accent(demo):
    composed = await record("España en la guerra civil", language="spa")
    # MARC-8 records bring the tilde as a combining mark after the letter.
    decomposed = await record("Historia de Espan\u0303a", language="spa")
    await record("Espanto en la noche", language="spa")  # begins like it, is another word
    for query in ("espana", "españa", "ESPAÑA", "Espan\u0303a", "ＥＳＰＡÑＡ"):
        assert set(await found(query)) == {composed, decomposed}, query
    text = (await Record.select(Record.search_text).where(Record.uuid == composed).first())["search_text"]
    assert "espana" in text and "espa a" not in text


async def test_letters_of_other_scripts_are_words_too(demo):
    lodz = await record("Łódź: miasto i ludzie", language="pol")
    caterpillar = await record("はらぺこあおむし", language="jpn")  # kana were cut out of the index before
    tolstoy = await record("Война и мир", language="rus")
    assert await found("lodz") == [lodz] and await found("Łódź") == [lodz]
    assert await found("はらぺこあおむし") == [caterpillar]
    assert await found("война") == [tolstoy] and await found("ВОЙНА И МИР") == [tolstoy]


async def test_chinese_search_still_understands_scripts_pinyin_and_initials(demo):
    uuid = await record("好饿的毛毛虫", contributors=["艾瑞·卡尔"], original_title="The Very Hungry Caterpillar")
    for query in ("好餓的毛毛蟲", "maomaochong", "hedmmc", "hungry caterpillar", "艾瑞卡尔", "arke"):
        assert await found(query) == [uuid], query


# --- 2. whole words first -------------------------------------------------------------------


async def test_a_whole_word_ranks_before_the_longer_words_it_begins(demo):
    lincoln = await record("Abraham Lincoln", contributors=["Carl Sandburg"], subjects=["Presidents"],
                           publisher="Harcourt, Brace")
    # Short, newer records where "lincoln" is only the beginning of a word: bm25 alone liked these.
    shire = [await record(title) for title in ("Lincolnshire", "Lincolnshire walks", "Lincolnshire poacher")]
    hits = await found("lincoln")
    assert hits[0] == lincoln and set(hits[1:]) == set(shire)
    assert (await found("Abraham lincoln"))[0] == lincoln


@pytest.mark.parametrize("window", [2, 5000])
async def test_broad_searches_page_through_every_match_once_exact_title_then_whole_words(demo, monkeypatch,
                                                                                         window):
    monkeypatch.setattr(search, "RANK_ALL_UP_TO", window)
    exact = await record("Lincoln")  # the oldest: only its title puts it first
    whole = [await record(f"Lincoln and the war, part {n}") for n in range(3)]
    begins = [await record(f"Lincolnshire, part {n}") for n in range(4)]
    seen = []
    for page in range(1, 6):
        result = await search.search("lincoln", SearchFilters(), page=page, page_size=2)
        assert result["total"] == 8
        seen += [hit["uuid"] for hit in result["hits"]]
    assert len(seen) == 8 and set(seen) == {exact, *whole, *begins}
    assert seen[0] == exact and set(seen[1:4]) == set(whole) and set(seen[4:]) == set(begins)


async def test_with_filters_whole_words_still_come_first(demo):
    lincoln = await record("Abraham Lincoln", publication_year=1950)
    shire = await record("Lincolnshire", publication_year=1990)
    assert await found("lincoln", SearchFilters(years=(1900, 2000))) == [lincoln, shire]


# --- 3. phrases ---------------------------------------------------------------------------


async def test_words_in_double_quotes_are_found_together_and_in_order(demo):
    together = await record("The very hungry caterpillar")
    apart = await record("A hungry bear, very tired, meets a caterpillar")
    backwards = await record("Caterpillar, hungry, very")
    assert await found('"very hungry caterpillar"') == [together]
    assert await found("“very hungry caterpillar”") == [together]  # as a Chinese input method types them
    assert set(await found("very hungry caterpillar")) == {together, apart, backwards}
    assert await found('"hungry caterpillar" very') == [together]
    assert await found('"hungry cat"') == []  # in quotes a word is whole
    assert await found('"very hungry caterpillar') == [together]  # an unclosed quote ends with the query


async def test_a_chinese_phrase_in_quotes(demo):
    book = await record("好饿的毛毛虫")
    await record("毛毛虫好饿的时候")
    assert await found('"好饿的毛毛虫"') == [book]


# --- 4. fields ------------------------------------------------------------------------------


@pytest.fixture
async def carle(demo):
    by_carle = await record("The very hungry caterpillar", contributors=["Eric Carle"], subjects=["Insects"],
                            isbn="9780399226908", clc="I712.85", publisher="Philomel Books")
    about_carle = await record("Eric Carle: a life in pictures", contributors=["Ann Smith"],
                               subjects=["Illustrators"], clc="K837.125")
    insects = await record("Insects of the world", contributors=["Li Ming"], subjects=["Zoology"], clc="Q96")
    return by_carle, about_carle, insects


async def test_a_field_search_looks_in_that_field_only(carle):
    by_carle, about_carle, insects = carle
    assert set(await found("carle")) == {by_carle, about_carle}
    assert await found("au:carle") == [by_carle]
    assert await found("ti:carle") == [about_carle]
    assert await found("su:insects") == [by_carle]
    assert await found("ti:insects") == [insects]
    assert await found("AU:Carle") == [by_carle]
    assert await found("au:philomel") == [] and await found("philomel") == [by_carle]  # the publisher is no author


async def test_fields_combine_with_each_other_and_with_plain_words(carle):
    by_carle, about_carle, _ = carle
    assert await found("au:carle su:insects") == [by_carle]
    assert await found("caterpillar au:carle") == [by_carle]
    assert await found("au:carle ti:life") == []
    assert await found('ti:"a life" carle') == [about_carle]
    assert await found("au:smith carle") == [about_carle]


async def test_isbn_field_in_either_form(carle):
    by_carle = carle[0]
    for query in ("isbn:978-0-399-22690-8", "isbn:0399226907", "isbn:0-399-22690-7", "isbn:9780399"):
        assert await found(query) == [by_carle], query
    assert await found("isbn:9787533278267") == []


async def test_a_class_number_finds_everything_under_it(carle):
    by_carle, about_carle, insects = carle
    stories = await record("Picture book stories", clc="I287.8")
    rhymes = await record("Nursery rhymes", clc="I287.45")
    notes = await record("I287 notes")  # a title that reads like a class number is no class number
    assert set(await found("clc:I287")) == {stories, rhymes}
    assert await found("clc:I287.8") == [stories]
    assert await found("clc:i287.8") == [stories]
    assert set(await found("clc:I")) == {stories, rhymes, by_carle}
    assert await found("clc:K8") == [about_carle]
    assert await found("i287") == [notes]
    assert await found("clc:I287 rhymes") == [rhymes]
    assert await found("分类号:Q96") == [insects]


async def test_unknown_prefixes_are_just_words_and_chinese_field_names_work(demo):
    rezero = await record("Re:Zero starting life in another world")
    caterpillar = await record("好饿的毛毛虫", contributors=["艾瑞·卡尔"], subjects=["昆虫"])
    assert await found("re:zero") == [rezero]
    assert await found("作者：艾瑞") == [caterpillar]  # a full-width colon, as Chinese is typed
    assert await found("题名:毛毛虫") == [caterpillar]
    assert await found("题名:艾瑞") == []
    assert await found("su:kunchong") == [caterpillar]  # pinyin within a field
    assert await found("ti: 艾瑞") == [caterpillar]  # a field name with nothing after it is left out


# --- 5. did you mean -------------------------------------------------------------------------


async def test_a_misspelt_word_gets_the_catalogues_own_spelling(carle):
    by_carle = carle[0]
    for query, respelt in [("caterpiller", "caterpillar"), ("the very hungry caterpiller", "the very hungry caterpillar"),
                           ("au:carel", "au:carle"), ('"hungry caterpiller"', '"hungry caterpillar"'),
                           ("Caterpilar", "caterpillar"), ("catterpillar", "caterpillar")]:
        result = await search.search(query, SearchFilters())
        assert result["total"] == 0 and result["did_you_mean"] == respelt, query
        assert await found(respelt) == [by_carle]


async def test_no_suggestion_when_something_is_found_or_nothing_is_close(carle):
    assert (await search.search("caterpillar", SearchFilters()))["did_you_mean"] is None
    assert (await search.search("xqzvwk", SearchFilters()))["did_you_mean"] is None
    # Spelt right, just not together: nothing to respell.
    assert (await search.search("caterpillar zoology", SearchFilters()))["did_you_mean"] is None
    # The suggestion must find something under the same filters.
    assert (await search.search("caterpiller", SearchFilters(format="board_book")))["did_you_mean"] is None


async def test_a_chinese_word_with_a_wrong_character_gets_the_one_that_sounds_the_same(demo):
    await record("好饿的毛毛虫")
    await record("猜猜我有多爱你")
    assert (await search.search("毛毛重", SearchFilters()))["did_you_mean"] == "毛毛虫"
    assert (await search.search("好俄的毛毛虫", SearchFilters()))["did_you_mean"] == "好饿的毛毛虫"
    assert (await search.search("才猜我有多爱你", SearchFilters()))["did_you_mean"] == "猜猜我有多爱你"


# --- 6. facets --------------------------------------------------------------------------------


async def staff() -> Principal:
    ids = [row["id"] for row in await Branch.select(Branch.id)]
    return Principal(kind="staff", id=1, uuid="s", name="馆员", language="zh_CN", role="librarian",
                     branch_ids=frozenset(ids))


@pytest.fixture
async def bears(demo):
    """Bear books of every kind: formats, languages, decades, ages (and none), copies at
    branches, some on loan, one with no copies, one withdrawn everywhere."""
    librarian = await staff()
    specs = [
        ("小熊很忙", dict(format="board_book", publication_year=2014, age_min=0, age_max=3), {"ZX": 2}),
        ("小熊和最好的爸爸", dict(publication_year=2008, age_min=3, age_max=6), {"ZX": 1, "JX": 1}),
        ("Brown bear, brown bear", dict(language="eng", format="board_book", publication_year=1967, age_min=1,
                                        age_max=4), {"JX": 1}),
        ("We're going on a bear hunt", dict(language="eng", publication_year=1989, age_min=3), {"XZ": 1}),
        ("熊的故事", dict(format="book", publication_year=1995), {"ZX": 1}),
        ("小熊维尼", dict(format="chapter_book", publication_year=2001, age_min=7, age_max=10), {}),
        ("The bear", dict(language="eng", format="book", publication_year=2019, age_max=12), {"XZ": 2}),
        ("熊爸爸", dict(publication_year=None, age_min=4, age_max=8), {"JX": 1}),
    ]
    made = {}
    for title, fields, copies in specs:
        uuid = await record(title, subjects=["bear"], **fields)
        made[title] = uuid
        for branch, count in copies.items():
            await add_items(librarian, uuid, NewCopies(branch_code=branch, count=count))
    # Out on loan: the board book's ZX copies are both out; one of JX's two bears too.
    for title, branch in (("小熊很忙", "ZX"), ("Brown bear, brown bear", "JX")):
        record_id = (await Record.select(Record.id).where(Record.uuid == made[title]).first())["id"]
        await Item.update({Item.status: "on_loan"}).where(Item.record == record_id)
    the_bear = (await Record.select(Record.id).where(Record.uuid == made["The bear"]).first())["id"]
    await Item.update({Item.status: "withdrawn"}).where(Item.record == the_bear)
    return made


def with_value(filters: SearchFilters, name: str, value: str) -> SearchFilters:
    """The filters with a facet's value chosen, as its link on the page chooses it."""
    changed = {"branch": filters.branch, "available": filters.available, "format": filters.format,
               "language": filters.language, "ages": filters.ages, "years": filters.years}
    if name == "available":
        changed["available"] = value == "true"
    elif name == "age":
        changed["ages"] = parse_range(value, 0, 18)
    elif name == "year":
        changed["years"] = parse_range(value, 1, 9999)
    else:
        changed[name] = value
    return SearchFilters(**changed)


async def check_every_count(query: str, filters: SearchFilters) -> dict:
    result = await search.search(query, filters, facets=True)
    facets = result["facets"]
    assert facets["complete"] and facets["counted"] == result["total"]
    checked = 0
    for name in ("branch", "available", "age", "format", "language", "year"):
        for entry in facets[name]:
            narrowed = await search.search(query, with_value(filters, name, entry["value"]))
            assert narrowed["total"] == entry["count"], (name, entry)
            assert entry["count"] > 0
            checked += 1
    assert checked
    return facets


async def test_every_facet_count_is_what_choosing_it_then_finds(bears):
    facets = await check_every_count("bear", SearchFilters())
    by = {name: {entry["value"]: entry["count"] for entry in facets[name]} for name in facets if name not in (
        "counted", "complete")}
    assert by["branch"] == {"ZX": 3, "JX": 3, "XZ": 1}  # withdrawn copies are nowhere
    assert by["available"] == {"true": 4}  # 小熊和最好的爸爸, bear hunt, 熊的故事, 熊爸爸
    assert by["format"] == {"picture_book": 3, "board_book": 2, "book": 2, "chapter_book": 1}
    assert by["language"] == {"chi": 5, "eng": 3}
    assert by["year"] == {"2010-2019": 2, "2000-2009": 2, "1990-1999": 1, "1980-1989": 1, "1960-1969": 1}
    # 熊的故事 gives no age: it is in no band; one for ages 0-3 is in 0-2 and 3-5; "up to 12" is in
    # every band to 12-18, "3 and up" in every band from 3-5.
    assert by["age"] == {"0-2": 3, "3-5": 6, "6-8": 5, "9-11": 3, "12-18": 2}


async def test_facet_counts_hold_under_filters_already_chosen(bears):
    await check_every_count("bear", SearchFilters(branch="ZX"))
    await check_every_count("bear", SearchFilters(available=True, language="chi"))
    await check_every_count("bear", SearchFilters(ages=(3, 5)))
    await check_every_count("小熊", SearchFilters(years=(2000, 2009)))
    await check_every_count("", SearchFilters(branch="JX", available=True))
    chosen = (await search.search("bear", SearchFilters(format="board_book"), facets=True))["facets"]
    assert chosen["format"] == [{"value": "board_book", "count": 2, "active": True}]


async def test_within_a_decade_the_facet_counts_years_and_the_oldest_decades_are_one_value(bears, monkeypatch):
    decade = (await search.search("bear", SearchFilters(years=(2000, 2009)), facets=True))["facets"]["year"]
    assert decade == [{"value": "2008", "count": 1, "active": False}, {"value": "2001", "count": 1, "active": False}]
    monkeypatch.setattr(search, "YEAR_VALUES", 2)
    years = (await search.search("bear", SearchFilters(), facets=True))["facets"]["year"]
    assert [(y["value"], y["count"]) for y in years] == [("2010-2019", 2), ("2000-2009", 2), ("-1999", 3)]
    assert len(await found("bear", SearchFilters(years=(None, 1999)))) == 3


async def test_an_age_filter_finds_books_for_that_age_not_books_that_say_nothing(bears):
    titles = {uuid: title for title, uuid in bears.items()}
    for_four = {titles[uuid] for uuid in await found("bear", SearchFilters(age=4))}
    assert for_four == {"小熊和最好的爸爸", "Brown bear, brown bear", "We're going on a bear hunt", "熊爸爸", "The bear"}


async def test_a_broad_search_counts_its_facets_over_its_newest_matches_and_says_so(bears, monkeypatch):
    monkeypatch.setattr(search, "FACET_LIMIT", 3)
    facets = (await search.search("bear", SearchFilters(), facets=True))["facets"]
    assert facets["counted"] == 3 and not facets["complete"]
    assert sum(entry["count"] for entry in facets["format"]) == 3
    newest = {title for title, _ in list(bears.items())[-3:]}
    assert {"小熊维尼", "The bear", "熊爸爸"} == newest
    assert {entry["value"]: entry["count"] for entry in facets["language"]} == {"chi": 2, "eng": 1}


# --- the page and the API -----------------------------------------------------------------------


@pytest.fixture
async def client(bears):
    async with client_for(create_app(load_settings())) as client:
        yield client


async def test_the_page_links_each_facet_value_to_the_search_it_counts(client):
    import re

    page = await client.get("/catalog", params={"q": "bear"}, headers={"Accept-Language": "en"})
    assert page.status_code == 200
    links = re.findall(r'<a href="\?([^"]+)" data-value="([^"]+)" data-count="(\d+)"', page.text)
    assert len(links) >= 15
    for query, _, count in links:
        narrowed = await client.get("/catalog?" + query.replace("&amp;", "&"), headers={"Accept-Language": "en"})
        assert f'data-total="{count}"' in narrowed.text, query
    chosen = await client.get("/catalog", params={"q": "bear", "format": "board_book", "year": "2010-2019"},
                              headers={"Accept-Language": "en"})
    assert 'data-remove="format"' in chosen.text and 'data-remove="year"' in chosen.text
    assert 'href="?q=bear&amp;year=2010-2019" data-remove="format"' in chosen.text
    assert "the 2010s" in chosen.text


async def test_the_page_speaks_chinese_and_offers_the_respelt_query(client):
    page = await client.get("/catalog", params={"q": "brwn"}, headers={"Accept-Language": "zh-CN"})
    assert 'data-did-you-mean="brown"' in page.text and 'href="?q=brown"' in page.text
    page = await client.get("/catalog", params={"q": "bear"}, headers={"Accept-Language": "zh-CN"})
    assert 'lang="zh-CN"' in page.text and "当前在架" in page.text and 'data-facet="year"' in page.text


async def test_the_api_gives_facets_when_asked_and_the_suggestion(client):
    plain = (await client.get("/api/records", params={"q": "bear"})).json()
    assert plain["total"] == 8 and plain["facets"] is None and plain["did_you_mean"] is None
    counted = (await client.get("/api/records", params={"q": "bear", "facets": "true", "age": "3-5"})).json()
    assert counted["total"] == 6 and counted["facets"]["age"] == [{"value": "3-5", "count": 6, "active": True}]
    assert (await client.get("/api/records", params={"q": "au:nobody bear"})).json()["total"] == 0
    respelt = (await client.get("/api/records", params={"q": "beer hunt"})).json()
    assert respelt["total"] == 0 and respelt["did_you_mean"] == "bear hunt"
    for bad in ({"age": "25"}, {"age": "three"}, {"year": "20x0"}):
        response = await client.get("/api/records", params={"q": "bear", **bad})
        assert response.status_code == 400, bad
    schema = (await client.get("/schema/openapi.json")).json()["components"]["schemas"]
    assert {"facets", "did_you_mean"} <= set(schema["SearchOut"]["properties"])
