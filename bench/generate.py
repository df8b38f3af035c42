"""Generated catalogues for the benchmarks: Chinese picture-book titles, authors, copies, MARC files.

Deterministic (seeded), so two runs measure the same data.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import isbnlib

WORDS = ("小熊 月亮 毛毛虫 好饿 晚安 猜猜 彩虹 小鱼 恐龙 大象 兔子 星星 森林 海洋 妈妈 爸爸 奶奶 朋友 花园 雪人 "
         "太阳 小船 火车 城堡 魔法 小猫 小狗 狐狸 企鹅 长颈鹿 蝴蝶 蜗牛 树叶 雨伞 帽子 红色 蓝色 快乐 勇敢 "
         "睡觉 吃饭 旅行 冒险 生日 礼物 秘密 故事 梦想 种子 苹果 西瓜 蛋糕 房子 学校 老师 医生 消防员 宇宙 月光").split()
LINKS = ("的", "和", "去", "在", "与", "找", "爱", "看")
AUTHORS = ("艾瑞·卡尔 宫西达也 几米 熊亮 周翔 安东尼·布朗 李欧·李奥尼 五味太郎 朱成梁 彭懿 保冬妮 蔡皋 "
           "莫·威廉斯 苏斯博士 林明子 松居直 佐野洋子 杨红樱 郑渊洁 曹文轩").split()
PUBLISHERS = ("明天出版社 接力出版社 少年儿童出版社 二十一世纪出版社 新蕾出版社 中信出版社 浙江少年儿童出版社 "
              "湖南少年儿童出版社 南海出版公司 北京联合出版公司").split()
SERIES = ("", "", "", "蒲公英图画书馆", "信谊世界精选图画书", "启发精选绘本", "小熊很忙", "神奇校车", "青蛙弗洛格")
ENGLISH = ("bear moon caterpillar rainbow dinosaur rabbit star forest ocean garden snowman train castle magic "
           "fox penguin butterfly apple birthday secret dream").split()


def title(rng: random.Random) -> str:
    parts = [rng.choice(WORDS)]
    for _ in range(rng.randint(0, 2)):
        parts += [rng.choice(LINKS), rng.choice(WORDS)]
    return "".join(parts)


def isbn13(number: int) -> str:
    stem = f"9787{number:08d}"
    return stem + isbnlib.check_digit13(stem)


def records(count: int, seed: int = 7) -> Iterator[dict]:
    rng = random.Random(seed)
    for number in range(count):
        translated = rng.random() < 0.3
        yield {
            "isbn13": isbn13(number),
            "title": title(rng),
            "subtitle": "",
            "original_title": " ".join(rng.sample(ENGLISH, 3)).title() if translated else "",
            "contributors": [{"name": rng.choice(AUTHORS), "role": "author"}],
            "publisher": rng.choice(PUBLISHERS),
            "publication_year": rng.randint(1990, 2026),
            "series": rng.choice(SERIES),
            "subjects": [rng.choice(WORDS)],
            "age_min": rng.choice([0, 2, 3, 4, 6]),
            "age_max": rng.choice([6, 8, 10, 12]),
            "format": rng.choice(["picture_book", "picture_book", "board_book", "book"]),
            "clc": rng.choice(["I287.8", "I712.85", "I313.85", "I561.85"]),
        }


QUERIES = ["小熊", "毛毛虫", "好饿的毛毛虫", "彩虹", "恐龙 冒险", "xiaoxiong", "maomaochong", "konglong", "xx",
           "hedmmc", "dinosaur", "rainbow moon", "宫西达也", "明天出版社", "蒲公英", "sqxc", "神奇校车",
           "月光 森林", "caihong", "9787000001008"]  # record 100 (generate.isbn13(100))


def marc_file(count: int, seed: int = 11) -> bytes:
    """MARC21 (UTF-8) with one or two copies per record in 952, like an export from another system."""
    import pymarc
    from pymarc import Field, Subfield

    rng = random.Random(seed)
    chunks = []
    for number, values in enumerate(records(count, seed)):
        record = pymarc.Record(force_utf8=True, leader="00000nam a2200000 i 4500")
        record.add_field(Field(tag="001", data=f"BENCH{number:07d}"))
        record.add_field(Field(tag="020", indicators=[" ", " "], subfields=[Subfield("a", values["isbn13"] + " (精装)")]))
        record.add_field(Field(tag="084", indicators=[" ", " "], subfields=[Subfield("a", values["clc"]),
                                                                             Subfield("2", "clc")]))
        record.add_field(Field(tag="100", indicators=["1", " "], subfields=[
            Subfield("a", values["contributors"][0]["name"]), Subfield("4", "aut")]))
        record.add_field(Field(tag="245", indicators=["1", "0"], subfields=[Subfield("a", values["title"] + " /")]))
        record.add_field(Field(tag="264", indicators=[" ", "1"], subfields=[
            Subfield("b", values["publisher"] + ","), Subfield("c", str(values["publication_year"]))]))
        record.add_field(Field(tag="521", indicators=["1", " "], subfields=[
            Subfield("a", f"{values['age_min']}-{values['age_max']}")]))
        record.add_field(Field(tag="650", indicators=[" ", "4"], subfields=[Subfield("a", values["subjects"][0])]))
        for copy in range(rng.randint(1, 2)):
            branch = rng.choice(["ZX", "JX", "XZ"])
            record.add_field(Field(tag="952", indicators=[" ", " "], subfields=[
                Subfield("a", branch), Subfield("b", branch), Subfield("p", f"B{number:07d}{copy}"),
                Subfield("y", "picture_book"), Subfield("g", "29.80")]))
        chunks.append(record.as_marc())
    return b"".join(chunks)
