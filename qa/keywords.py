"""Keyword side of retrieval: jieba tokenisation with a user dictionary built from the corpus itself."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from pathlib import Path

import jieba

from qa.models import Article, Document

# Function words and punctuation carry no meaning for matching a clause.
STOPWORDS = frozenset(
    "的 了 和 与 及 或 等 是 在 对 为 把 被 由 从 向 于 以 其 之 也 都 要 将 并 个 有 无 不 能 可 会 吗 呢 吧 啊 呀 么 嘛 "
    "我 我们 你 你们 他 她 它 他们 这 那 这个 那个 什么 怎么 怎么样 如何 哪 哪些 哪个 多少 几 谁 请问 一下 一个 "
    "现在 还是 就 还 又 再 很 最 上 下 中 里 后 前 时 给 让 吗？ 啥 咋 嗯".split()
)
TOKEN_CHARS = re.compile(r"[\w\u3400-\u9fff]", re.UNICODE)
QUOTED_TERM = re.compile(r"“([^”]{2,12})”")
BOOK_TITLE = re.compile(r"《([^》]{2,16})》")
# An agency name starts where a run of Chinese starts (after 、 ： or a line break), so that
# 同时报告区应急管理局 does not yield 时报告区应急管理局.
AGENCY = re.compile(
    r"(?<![\u4e00-\u9fff])(?:自治区|区|县|市)?[\u4e00-\u9fff]{1,8}?(?:局|厅|委员会|办公室|管委会|中心|分局|支队|大队|总队|联合会)(?![\u4e00-\u9fff])"
)
ALNUM_TERM = re.compile(r"\d{3,6}[\u4e00-\u9fff]{2,4}(?=[\s，。、；）)]|$)")
# jieba's default frequency for added words: high enough to keep a term whole.
USER_WORD_FREQ = 2000
MIN_TERM_COUNT = 2


# Traditional forms the gazettes mix with the simplified ones (the 泾源县 gazette prints 涇源县 in
# some titles and running heads), folded so that a question and a clause meet on either spelling.
# NFKC leaves these alone: they are distinct characters, not compatibility forms.
VARIANT_CHARS = str.maketrans({"涇": "泾", "時": "时", "間": "间", "縣": "县", "區": "区", "會": "会", "辦": "办"})


# Roman numeral signs as they are read: the emergency plans grade responses Ⅰ级 … Ⅳ级, which people
# say 一级 … 四级 (三级四级呢？); NFKC would make them the letters "iii", which match nothing.
ROMAN_NUMERALS = str.maketrans({chr(0x2160 + n): c for n, c in enumerate("一二三四五六七八九十")} | {chr(0x2170 + n): c for n, c in enumerate("一二三四五六七八九十")})


def normalise(text: str) -> str:
    """NFKC (full-width letters, digits and punctuation to half width), lower case, variant forms,
    Roman numeral signs as Chinese numerals."""
    return unicodedata.normalize("NFKC", text.translate(ROMAN_NUMERALS)).lower().translate(VARIANT_CHARS)


# Bump when tokenisation changes, so indexes built with the old one are rebuilt.
TOKENIZER_VERSION = "jieba-search+bigrams-3"
HAN_RUN = re.compile(r"[\u3400-\u9fff]+")


def tokenize(text: str) -> list[str]:
    """Search-mode jieba tokens (long words also yield their sub-words), stopwords dropped, plus the
    character bigrams of every run of Chinese characters. Bigrams let a colloquial question meet a
    formal clause where jieba cuts the two differently (囤货涨价 / 囤积居奇、哄抬物价); on the dev set
    they raised Recall@1 from 0.68 to 0.75."""
    text = normalise(text)
    tokens = []
    for token in jieba.cut_for_search(text):
        token = token.strip()
        if token and token not in STOPWORDS and TOKEN_CHARS.search(token):
            tokens.append(token)
    for run in HAN_RUN.findall(text):
        tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
    return tokens


def corpus_terms(documents: list[Document], articles: list[Article]) -> list[str]:
    """Government terms found in the corpus: quoted terms, short titles, agency names, 12345热线-style terms."""
    counts: Counter[str] = Counter()
    for article in articles:
        text = normalise(article.text)
        counts.update(QUOTED_TERM.findall(text))
        counts.update(t for t in BOOK_TITLE.findall(text) if len(t) <= 16)
        counts.update(AGENCY.findall(text))
        counts.update(ALNUM_TERM.findall(text))
    terms = {term for term, n in counts.items() if n >= MIN_TERM_COUNT and 2 <= len(term) <= 16}
    for doc in documents:
        for name in (doc.title, doc.issuer):
            for part in re.split(r"[\s（）()《》“”]", normalise(name)):
                if 2 <= len(part) <= 16:
                    terms.add(part)
    return sorted(terms)


def write_user_dictionary(terms: list[str], path: Path) -> None:
    path.write_text("".join(f"{term} {USER_WORD_FREQ}\n" for term in terms if " " not in term), encoding="utf-8")


_loaded_dictionaries: set[str] = set()


def load_user_dictionary(path: Path) -> None:
    """Load once per process; jieba's dictionary is global."""
    key = str(path.resolve())
    if key in _loaded_dictionaries or not path.exists():
        return
    jieba.setLogLevel(60)
    jieba.load_userdict(str(path))
    _loaded_dictionaries.add(key)


# -- synonyms -------------------------------------------------------------------------------------
class Synonyms:
    """Groups of words that mean the same to a citizen and to a rule (回复 / 答复 / 反馈), read from a
    file of one group per line, the documents' word first (qa/data/synonyms.txt). A colloquial
    question and a formal clause share no characters there, so neither BM25 nor the sentence
    reader would see the match; the embedding model sees some of them, not all."""

    def __init__(self, groups: list[list[str]]):
        self._canonical: dict[str, str] = {}
        self._group_of: dict[str, list[str]] = {}
        for group in groups:
            words = [normalise(w) for w in group if w.strip()]
            if len(words) < 2:
                continue
            for word in words:
                self._canonical.setdefault(word, words[0])
                self._group_of.setdefault(word, words)
        # Longest first, so 居民身份证 is one match, not 身份证 inside it.
        alternatives = sorted(self._canonical, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None

    @classmethod
    def load(cls, path: Path) -> "Synonyms":
        """The groups in ``path``; none when there is no such file (``QA_SYNONYMS_FILE=`` turns
        synonyms off: they are an aid, not a must)."""
        if not path.is_file():
            return cls([])
        lines = path.read_text(encoding="utf-8").splitlines()
        return cls([line.split() for line in lines if line.strip() and not line.lstrip().startswith("#")])

    def canonical(self, text: str) -> str:
        """``text`` (normalised) with every word of a group replaced by the group's first word."""
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self._canonical[m.group()], text)

    def expansions(self, text: str) -> list[str]:
        """The other words of each group that ``text`` (normalised) uses a word of, for query expansion."""
        if self._pattern is None:
            return []
        found = dict.fromkeys(m.group() for m in self._pattern.finditer(text))
        return [w for word in found for w in self._group_of[word] if w not in found]


# -- quantities -----------------------------------------------------------------------------------
# A question that asks how much / how long / when / how often wants a clause that states a number.
ASKS_QUANTITY = re.compile(
    r"多少|几[个天日次月年号岁名人户项倍级批]|几月|几号|几点|多久|多长|多大|多高|多远|多快|比例|比率|占比"
    r"|什么时候|何时|哪天|期限|时限|截止|最迟|最晚|最多|最少|至少|不少于|不超过|频次|什么标准|标准是"
)
# A number with a unit (digits or Chinese numerals): 1小时, 70平方米, 每季度2次, 10月10日, 98%.
QUANTITY = re.compile(
    r"(?:\d+(?:\.\d+)?|[一二三四五六七八九十百千万两半]+)\s*"
    r"(?:%|个工作日|工作日|个|次|天|日|小时|分钟|周|月|年|岁|周岁|元|万元|亿元|万|亿|平方米|米|公里|公顷|亩|户|人|家|所|项|倍|级|批|名|件|座|辆|吨|立方米)"
)


def asks_quantity(question: str) -> bool:
    return bool(ASKS_QUANTITY.search(normalise(question)))


def has_quantity(text: str) -> bool:
    return bool(QUANTITY.search(normalise(text)))
