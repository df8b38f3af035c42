import pytest

from library.catalog.search_text import (SECTION_SEPARATOR, class_tokens, distance, edits1, fold, fts5_query,
                                         index_sections, index_text, parse_query, sound_alike, spoken_as,
                                         split_pinyin, tsquery)


def test_index_text_holds_characters_pinyin_and_initials():
    text = index_text(["好餓的毛毛蟲", "The Very Hungry Caterpillar"])
    assert "好 饿 的 毛 毛 虫" in text and "hao e de mao mao chong" in text and " hedmmc " in f" {text} "
    assert "hungry caterpillar" in text


def test_fold_unifies_scripts_and_widths():
    assert fold("好餓的毛毛蟲 ＡＢＣ") == "好饿的毛毛虫 abc"


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("España", "espana"),
        ("Espan\u0303a", "espana"),  # the tilde as a combining mark after the letter, as MARC-8 brings it
        ("ÉCOLE Française", "ecole francaise"),
        ("Łódź Ørsted Æsop Œuvres Þór", "lodz orsted aesop oeuvres thor"),
        ("Straße", "strasse"),
        ("İstanbul", "istanbul"),
        ("Война и мир", "воина и мир"),  # й is и with a breve: found by readers who type it without
        ("がっこう", "がっこう"),  # kana voicing marks are not accents
        ("한국어", "한국어"),  # Hangul decomposes and composes again
        ("㊀ ﬁsh ²", "一 fish 2"),
    ],
)
def test_fold_takes_accents_off_letters_and_keeps_letters(text, folded):
    assert fold(text) == folded


def test_an_accented_word_is_one_word_in_the_index():
    assert index_text(["España"]) == "espana"
    assert index_text(["Historia de Espan\u0303a"]) == "historia de espana"
    assert index_text(["はらぺこあおむし"]) == "はらぺこあおむし"


def test_the_index_text_has_four_sections():
    text = index_sections(["The Very Hungry Caterpillar"], ["Eric Carle"], ["Insects"],
                          ["Philomel", "9780399226908", *class_tokens("I712.85")])
    assert text.split(SECTION_SEPARATOR) == ["the very hungry caterpillar", "eric carle", "insects",
                                             "philomel ; 9780399226908 ; clci71285"]
    assert index_sections([], [], [], []).split(SECTION_SEPARATOR) == ["", "", "", ""]


@pytest.mark.parametrize(
    ("clc", "tokens"),
    [("I287.8", ["clci2878"]), ("TP311.13", ["clctp31113"]), ("I287.8-49", ["clci2878"]),
     ("I287.8;I712.85", ["clci2878", "clci71285"]), ("", []), ("287", [])],
)
def test_class_numbers_are_tokens_a_prefix_finds(clc, tokens):
    assert class_tokens(clc) == tokens


@pytest.mark.parametrize(
    ("word", "syllables"),
    [("maomaochong", ["mao", "mao", "chong"]), ("xian", ["xian"]), ("haoe", ["hao", "e"]),
     ("lvse", ["lv", "se"]), ("hedmmc", None), ("caterpillar", None)],
)
def test_split_pinyin(word, syllables):
    assert split_pinyin(word) == syllables


@pytest.mark.parametrize(
    ("query", "fts5", "ts"),
    [
        ("好餓的毛毛蟲", '"好 饿 的 毛 毛 虫"', "('好' <-> '饿' <-> '的' <-> '毛' <-> '毛' <-> '虫')"),
        ("hungry cat", '"hungry"* AND "cat"*', "'hungry':* & 'cat':*"),
        ("maomaochong", '("mao mao chong" OR "maomaochong"*)', "(('mao' <-> 'mao' <-> 'chong') | 'maomaochong':*)"),
        ('a"b', '"a"* AND "b"', "'a':* & 'b'"),  # an unclosed quote runs to the end: "b" is a whole word
        ("", "", ""),
        ("*** OR NEAR(", '"or"* AND "near"*', "'or':* & 'near':*"),
    ],
)
def test_queries_render_for_both_engines(query, fts5, ts):
    terms = parse_query(query)
    assert (fts5_query(terms), tsquery(terms)) == (fts5, ts)


@pytest.mark.parametrize(
    ("query", "fts5", "ts"),
    [
        ("au:carle", 'author : "carle"*', "'carle':*B"),
        ("ti:\"very hungry\"", 'title : "very hungry"', "('very':A <-> 'hungry':A)"),
        ("su:insects cat", 'subject : "insects"* AND "cat"*', "'insects':*C & 'cat':*"),
        ("isbn:0-399-22690-7", 'other : "9780399226908"', "'9780399226908':D"),
        ("isbn:978-7-5332", 'other : "97875332"*', "'97875332':*D"),
        ("clc:I287.8", 'other : "clci2878"*', "'clci2878':*D"),
        ("题名：毛毛虫", 'title : "毛 毛 虫"', "('毛':A <-> '毛':A <-> '虫':A)"),
        ("TI:Bear", 'title : "bear"*', "'bear':*A"),
        ("re:zero", '"re"* AND "zero"*', "'re':* & 'zero':*"),
        ("http://x.org", '"http"* AND "x"* AND "org"*', "'http':* & 'x':* & 'org':*"),
        ("ti: bear", '"bear"*', "'bear':*"),
        ("“very hungry”", '"very hungry"', "('very' <-> 'hungry')"),
        ('"好饿的 毛毛虫"', '"好 饿 的 毛 毛 虫"', "('好' <-> '饿' <-> '的' <-> '毛' <-> '毛' <-> '虫')"),
        ('au:"eric carle"', 'author : "eric carle"', "('eric':B <-> 'carle':B)"),
    ],
)
def test_phrases_and_fields_render_for_both_engines(query, fts5, ts):
    terms = parse_query(query)
    assert (fts5_query(terms), tsquery(terms)) == (fts5, ts)


@pytest.mark.parametrize(
    ("query", "fts5", "ts"),
    [
        ("lincoln", '"lincoln"', "'lincoln'"),
        ("au:carle", 'author : "carle"', "'carle':B"),
        ("maomaochong", '("mao mao chong" OR "maomaochong")', "(('mao' <-> 'mao' <-> 'chong') | 'maomaochong')"),
        ("clc:I287", 'other : "clci287"*', "'clci287':*D"),  # a class number stays a prefix
    ],
)
def test_the_whole_word_form_of_a_query(query, fts5, ts):
    terms = parse_query(query)
    assert (fts5_query(terms, exact=True), tsquery(terms, exact=True)) == (fts5, ts)


def test_a_term_remembers_how_it_was_written():
    written = [term.written for term in parse_query('AU:Carle ti:"Very Hungry" 好餓 clc:i287.8 isbn:0399226907')]
    assert written == ["au:carle", 'ti:"very hungry"', "好饿", "clc:I287.8", "isbn:9780399226908"]


def test_a_pasted_paragraph_is_cut_to_twelve_terms():
    assert len(parse_query(" ".join(f"word{n}" for n in range(50)))) == 12


@pytest.mark.parametrize("text", ["好饿的毛毛虫", "睡觉的小熊", "长颈鹿去银行", "快乐的音乐会", "重新出发", "一只重要的小熊"])
def test_fast_pinyin_agrees_with_pypinyin(text):
    from pypinyin import lazy_pinyin

    from library.catalog.search_text import pinyin_of

    assert pinyin_of(text) == lazy_pinyin(text)


def test_fast_pinyin_agrees_with_pypinyin_over_the_demo_catalogue_and_every_two_character_phrase():
    """Every phrase of two characters pypinyin knows, alone and run together with its neighbours
    (so that longer phrases are found across them), and the picture books of the demo data."""
    import json
    from pathlib import Path

    from pypinyin import lazy_pinyin
    from pypinyin.phrases_dict import phrases_dict

    from library.catalog.search_text import CJK_RUNS, pinyin_of

    pairs = sorted(phrase for phrase in phrases_dict if len(phrase) == 2)
    texts = pairs[::7] + ["".join(pairs[i:i + 3]) for i in range(0, len(pairs), 97)]
    books = json.loads((Path(__file__).parents[3] / "library/catalog/data/picture_books.json").read_text("utf-8"))
    texts += [run for book in books.values() for value in book.values() if isinstance(value, str)
              for run in CJK_RUNS.findall(value)]
    assert len(texts) > 3000
    assert [pinyin_of(text) for text in texts] == [lazy_pinyin(text) for text in texts]


@pytest.fixture
def pinyin_cache(tmp_path, monkeypatch):
    """The pinyin tables kept under tmp_path, not yet loaded in this process."""
    from library.catalog import search_text

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    search_text.pinyin_tables.cache_clear()
    yield tmp_path / "library-branch-network"
    search_text.pinyin_tables.cache_clear()


def test_the_pinyin_tables_are_kept_and_read_back_the_same(pinyin_cache, monkeypatch):
    from library.catalog import search_text

    made = search_text.pinyin_tables()
    assert made == search_text._derived_tables()
    assert made[0]["银行"] == ("yin", "hang") and made[1]["熊"] == "xiong" and made[2]["毛毛"] >= 3
    [kept] = pinyin_cache.iterdir()
    search_text.pinyin_tables.cache_clear()
    monkeypatch.setattr(search_text, "_derived_tables", lambda: pytest.fail("derived again"))
    assert search_text.pinyin_tables() == made  # read from the file


def test_unreadable_or_unwritable_pinyin_tables_are_derived_again(pinyin_cache, monkeypatch):
    from library.catalog import search_text

    pinyin_cache.mkdir(parents=True)
    search_text._tables_cache_path().write_bytes(b"\x00not marshal")
    assert search_text.pinyin_tables() == search_text._derived_tables()
    assert search_text.pinyin_of("好饿的毛毛虫") == ["hao", "e", "de", "mao", "mao", "chong"]
    search_text.pinyin_tables.cache_clear()
    # rewritten whole: read back without deriving
    monkeypatch.setattr(search_text, "_derived_tables", lambda: pytest.fail("derived again"))
    assert search_text.pinyin_tables()[1]["熊"] == "xiong"
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(pinyin_cache / "a-file"))
    (pinyin_cache / "a-file").write_text("not a directory")
    search_text.pinyin_tables.cache_clear()
    assert search_text.pinyin_of("睡觉") == ["shui", "jiao"]


def test_pinyin_tables_that_cannot_be_put_in_place_leave_no_file_behind(pinyin_cache, monkeypatch):
    from library.catalog import search_text

    def no_room(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(search_text.os, "replace", no_room)
    assert search_text.pinyin_of("毛毛虫") == ["mao", "mao", "chong"]
    assert list(pinyin_cache.iterdir()) == []


def test_words_one_letter_away():
    near = edits1("caterpiller")
    assert {"caterpillar", "caterpiler", "caterpilelr", "caterpillers"} <= near and "caterpiller" not in near
    assert "bear" in edits1("bera") and "brown" in edits1("brwn")
    assert "мир" in edits1("мри") and "мирр" in edits1("мирн")  # any script: its own letters are tried


@pytest.mark.parametrize(("a", "b", "edits"), [("caterpiller", "caterpillar", 1), ("ab", "ba", 1), ("carel", "carle", 1),
                                               ("kitten", "sitting", 3), ("", "abc", 3), ("same", "same", 0)])
def test_distance(a, b, edits):
    assert distance(a, b) == edits == distance(b, a)


def test_characters_that_sound_alike():
    assert sound_alike("毛毛重", "毛毛虫")  # 重 is also read chong
    assert sound_alike("好俄的", "好饿的")
    assert not sound_alike("毛毛重", "毛毛熊")
    assert not sound_alike("毛毛", "毛毛虫")
    ways = spoken_as("毛毛重")
    assert ways[0] == tuple(__import__("library.catalog.search_text", fromlist=["pinyin_of"]).pinyin_of("毛毛重"))
    assert ("mao", "mao", "chong") in ways and len(ways) <= 8
