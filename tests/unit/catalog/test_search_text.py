import pytest

from library.catalog.search_text import fold, fts5_query, index_text, parse_query, split_pinyin, tsquery


def test_index_text_holds_characters_pinyin_and_initials():
    text = index_text(["好餓的毛毛蟲", "The Very Hungry Caterpillar"])
    assert "好 饿 的 毛 毛 虫" in text and "hao e de mao mao chong" in text and " hedmmc " in f" {text} "
    assert "hungry caterpillar" in text


def test_fold_unifies_scripts_and_widths():
    assert fold("好餓的毛毛蟲 ＡＢＣ") == "好饿的毛毛虫 abc"


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
        ('a"b', '"a"* AND "b"*', "'a':* & 'b':*"),
        ("", "", ""),
        ("*** OR NEAR(", '"or"* AND "near"*', "'or':* & 'near':*"),
    ],
)
def test_queries_render_for_both_engines(query, fts5, ts):
    terms = parse_query(query)
    assert (fts5_query(terms), tsquery(terms)) == (fts5, ts)


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
