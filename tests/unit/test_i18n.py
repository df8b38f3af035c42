import re

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from library.i18n import LOCALE_DIR, choose_language, current_language, gettext, parse_accept_language
from library.settings import PROJECT_ROOT


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("en-US,en;q=0.9,zh-CN;q=0.8", ["en-US", "en", "zh-CN"]),
        ("zh-CN;q=0.5, en;q=0.9", ["en", "zh-CN"]),
        ("fr, *;q=0.1", ["fr"]),
        ("en;q=0", []),
        ("", []),
        (None, []),
        ("en;q=abc, zh", ["zh"]),
    ],
)
def test_parse_accept_language(header, expected):
    assert parse_accept_language(header) == expected


@pytest.mark.parametrize(
    ("explicit", "account", "header", "default", "expected"),
    [
        (None, None, None, "zh_CN", "zh_CN"),
        (None, None, "en-GB,en;q=0.8", "zh_CN", "en"),
        (None, None, "zh-TW", "en", "zh_CN"),
        (None, None, "fr, de", "zh_CN", "zh_CN"),
        (None, "en", "zh-CN", "zh_CN", "en"),  # the account's language beats the browser
        ("zh_CN", "en", "en", "en", "zh_CN"),  # an explicit switch beats everything
        ("klingon", None, "en", "zh_CN", "en"),  # a bad cookie is ignored
    ],
)
def test_choose_language(explicit, account, header, default, expected):
    assert choose_language(explicit, account, header, default) == expected


def _source_messages() -> set:
    method_map = [("library/**.py", "python"), ("templates/**.html", "jinja2")]
    options = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    found = set()
    for _, _, message, _, _ in extract_from_dir(str(PROJECT_ROOT), method_map, options_map=options,
                                                keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}):
        found.add(message if isinstance(message, str) else tuple(message))
    return found


def _catalog(language: str):
    with (LOCALE_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=language)


def test_every_message_in_the_code_has_a_chinese_translation():
    catalog = _catalog("zh_CN")
    translated = {}
    for message in catalog:
        if message.id:
            key = message.id if isinstance(message.id, str) else tuple(message.id)
            text = message.string if isinstance(message.string, str) else "".join(message.string)
            translated[key] = text
    missing = sorted(str(m) for m in _source_messages() if not translated.get(m))
    assert not missing, "run `make translations` and translate: " + "; ".join(missing)


def test_translations_keep_their_placeholders():
    for message in _catalog("zh_CN"):
        if not message.id or not message.string:
            continue
        source = message.id if isinstance(message.id, str) else message.id[0]
        target = message.string if isinstance(message.string, str) else message.string[0]
        pattern = r"%\(\w+\)[sd]|\{\w+\}"
        assert sorted(re.findall(pattern, source)) == sorted(re.findall(pattern, target)), source


def test_gettext_follows_the_request_language():
    token = current_language.set("zh_CN")
    try:
        assert gettext("My account") == "我的账户"
        current_language.set("en")
        assert gettext("My account") == "My account"
    finally:
        current_language.reset(token)


_CJK = r"[\u3400-\u4dbf\u4e00-\u9fff]"
_ASCII_PUNCTUATION_BY_CJK = re.compile(rf"{_CJK}\s*[:,;?!]|[:,;?!]\s*{_CJK}|{_CJK}\s*\.(\s|$)")


def test_chinese_sentences_use_full_width_punctuation():
    """No ASCII colon, comma, semicolon, question or exclamation mark (or full stop) beside a
    Chinese character in the zh_CN catalogue: "李小米：报名成功。", never "李小米: 报名成功."."""
    with (LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale="zh_CN")
    wrong = []
    for message in catalog:
        for text in (message.string if isinstance(message.string, tuple) else (message.string,)):
            if text and _ASCII_PUNCTUATION_BY_CJK.search(text):
                wrong.append(text)
    assert not wrong, wrong[:10]
    assert _ASCII_PUNCTUATION_BY_CJK.search("李小米: 报名成功。") and not _ASCII_PUNCTUATION_BY_CJK.search("李小米：报名成功。")


def test_templates_join_labels_in_the_page_s_language():
    """A template puts a name before what it says with colon() and comma(), which give the
    full-width forms in Chinese; a literal "}}: {{" would read "李小米: 报名成功" in a Chinese page."""
    # Right after the tag: " : " with a space before is ISBD's title : subtitle, the same in Chinese.
    literal = re.compile(r"(\}\}|%\})[:,]\s*(\{\{|\n)")
    found = [f"{path.relative_to(PROJECT_ROOT)}: {match.group(0)!r}" for path in (PROJECT_ROOT / "templates").rglob("*.html")
             for match in literal.finditer(path.read_text(encoding="utf-8"))]
    assert not found, found
    from library.i18n import colon, comma

    token = current_language.set("zh_CN")
    try:
        assert (colon(), comma()) == ("：", "，")
    finally:
        current_language.reset(token)
    token = current_language.set("en")
    try:
        assert (colon(), comma()) == (": ", ", ")
    finally:
        current_language.reset(token)
