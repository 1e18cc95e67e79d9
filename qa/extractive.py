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

from qa.articles import sentences_with_cases
from qa.config import Settings
from qa.keywords import Synonyms, normalise
from qa.models import AnswerKind, Article, Hit, Query
from qa.query import ASKING_WORDS, NAMING_NUMBER, analyse, as_query, content_words

HAN_RUN = re.compile(r"[\u3400-\u9fff]+")
LIST_LABEL = re.compile(r"^\s*(\d{1,3}\s*[.、．](?!\d)|\d{1,3}\t|[（(]\s*[一二三四五六七八九十\d]{1,3}\s*[)）]|[一二三四五六七八九十]{1,3}、|第[一二三四五六七八九十百\d]+条)\s*")
FRAGMENT_SPLIT = re.compile(r"(?<=[，,；;：:])")
# A sentence's opening up to a colon this short names what the rest says (森林草原防火戒严期：…).
MAX_LABEL_CHARS = 20
# What a figure leaves out, in brackets: 1个工作日办结（不含公告时间） says nothing of how long the
# 公告 takes, so the words inside do not make the figure one about them.
EXCLUDED = re.compile(r"[（(](?:不含|不包括|不计|除)[^）)]*[）)]")
PROVINCE_LEVEL = re.compile(r"(省|自治区)$")


def han_bigrams(text: str) -> set[str]:
    return _bigrams_of(normalise(text))


def _bigrams_of(normalised: str) -> set[str]:
    pairs = set()
    for run in HAN_RUN.findall(normalised):
        pairs.update(run[i : i + 2] for i in range(len(run) - 1))
    return pairs


def content_units(normalised: str) -> set[str]:
    """What a question and a sentence are compared on (text already normalised): Chinese character
    bigrams and naming numbers."""
    return _bigrams_of(normalised) | set(NAMING_NUMBER.findall(normalised))


ASKING_BIGRAMS = frozenset().union(*(han_bigrams(word) for word in ASKING_WORDS))


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


# Numbers a claim states (5 in 5个工作日, 70 in 70平方米), each of which its clause must hold.
NUMBER_IN_CLAIM = re.compile(r"(?<![\d.])\d+(?:\.\d+)?[\u4e00-\u9fff%％]?")
# Fragments an answer leads with when the question does not tell them apart (more is a list, not a lead).
MAX_LEAD_FRAGMENTS = 3


def _unspaced(text: str) -> str:
    """``text`` normalised without whitespace (PDF text spaces numbers out: 在 1 个工作日内)."""
    return re.sub(r"\s+", "", normalise(text))


def _without(text: str, named: tuple[str, ...]) -> str:
    for words in named:
        text = re.sub(rf"(?<!\d){re.escape(words)}(?!\d)", " ", text)
    return text


# Clauses whose sentences the reader keeps worked out (see ClauseReader.clause).
CLAUSE_CACHE_SIZE = 20_000


@dataclass
class Quote:
    """A sentence of a retrieved clause that answers (part of) the question."""

    hit: Hit
    sentence: str
    support: float  # 0..1: share of the question's weighted content it holds (see ClauseReader.quotes)
    lead: str = ""  # the fragment holding the direct answer, when the question asks for one
    rank: int = 0  # the clause's place in the retrieval ranking (0 = first)
    # How far the sentence goes towards the question, before the kind of answer is checked: its
    # share of the question's weighted content (with its clause's title and heading path), and its
    # share by its own words alone; what the judge (qa/judging.py) reads.
    coverage: float = 0.0
    own_coverage: float = 0.0
    # The judge's probability that this sentence states what was asked (None: no judge has seen it).
    verdict: float | None = None

    @property
    def score(self) -> float:
        """What quotes are ranked by: the judge's verdict, or the support when there is no judge."""
        return self.support if self.verdict is None else self.verdict


@dataclass(frozen=True)
class ClauseUnits:
    """A clause as the reader compares it: its context units (document title and heading path),
    its readable sentences with their units, and the units of its whole text."""

    context: frozenset[str]
    sentences: list[tuple[str, frozenset[str]]]
    whole: frozenset[str]

    def units_of(self, sentence: str) -> frozenset[str]:
        """One of its sentences' units (none for a sentence it does not hold)."""
        return next((units for s, units in self.sentences if s == sentence), frozenset())


@dataclass(frozen=True)
class QuestionContent:
    """A question's content as the reader weighs it: bigram weights (less words of asking and place
    names) and its content words with their units and weights."""

    weights: dict[str, float]
    total: float
    words: list[tuple[str, frozenset[str], float]]  # word, its units, its weight

    def word_coverage(self, units: frozenset[str] | set[str]) -> tuple[float, float, int]:
        """(weighted share of the content words all of whose units are in ``units``, the weight of
        the heaviest word missing, how many words are missing)."""
        total = math.fsum(w for _, _, w in self.words)
        if not total:
            return 1.0, 0.0, 0
        missing = [w for _, u, w in self.words if not u <= units]
        return 1.0 - math.fsum(missing) / total, max(missing, default=0.0), len(missing)


# How far apart the characters of a word said whole may be written in a clause (县(区)人民政府).
APART_CHARS = 6


def written_apart(word: str, text: str) -> bool:
    """Whether the characters of ``word`` (three or more) appear in ``text`` in order, a few apart:
    市县政府's 县政府 in 市、县（区）人民政府, not in 自治区人民政府. Both normalised."""
    if len(word) < 3:
        return False
    return re.search(f".{{0,{APART_CHARS}}}?".join(map(re.escape, word)), text) is not None


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
        self._clauses: dict[str, ClauseUnits] = {}
        if len(articles) <= CLAUSE_CACHE_SIZE:  # read them all now (0.15 s for 1,000 clauses), not
            for article in articles:  # during the first questions
                self.clause(article)

    @functools.lru_cache(maxsize=1024)
    def analyse(self, question: str, kind_from: str = "", aspect: tuple[str, ...] | None = None) -> Query:
        """The question as a ``Query``, read with this reader's synonyms. Kept (a ``Query`` is
        frozen): a conversation asks it of the same earlier questions turn after turn."""
        return analyse(question, self.synonyms, kind_from, aspect)

    def units(self, text: str) -> set[str]:
        """What the question and a sentence are compared on, each word of a synonym group read as
        the group's first word (回复 and 反馈 as 答复)."""
        return content_units(self.synonyms.canonical(normalise(text)))

    def clause(self, article: Article) -> ClauseUnits:
        """A clause's units, worked out once per clause: the same clauses come up question after
        question."""
        cached = self._clauses.get(article.id)
        if cached is None:
            title = article.document.title if article.document else ""
            context = frozenset(self.units(" ".join([title, *article.path])))
            # a heading or the title on its own line answers nothing; a sentence of a table row is
            # read with the row's case, as a sentence under a heading is read with its heading
            readable = [(s, frozenset(self.units(f"{case} {s}"))) for s, case in sentences_with_cases(article.text) if s not in article.path and s not in title]
            whole = frozenset().union(*(u for _, u in readable)) if readable else frozenset()
            if len(self._clauses) >= CLAUSE_CACHE_SIZE:
                self._clauses.clear()  # a large corpus: start again rather than grow without bound
            cached = self._clauses[article.id] = ClauseUnits(context, readable, whole)
        return cached

    def _weight(self, bigram: str) -> float:
        df = self._document_frequency.get(bigram, 0)
        if df == 0:
            # A pair the corpus never uses is mostly colloquial wording (厂里, 掏钱), sometimes a
            # topic the corpus lacks (寒假); it counts, but for less than a rare corpus term.
            return self.settings.unseen_bigram_weight * math.log(self._articles + 1)
        return math.log((self._articles + 1) / (df + 1))

    @property
    def rarest_weight(self) -> float:
        """The weight of a bigram that occurs in one clause: the scale of every other weight."""
        return math.log((self._articles + 1) / 2)

    def uses(self, units: frozenset[str] | set[str]) -> bool:
        """Whether the corpus uses every bigram of a word (``units``, from :meth:`units`)."""
        return all(u in self._document_frequency for u in units)

    def unseen_share(self, query: Query | str) -> float:
        """Share of the question's content words the corpus never uses (a topic it lacks: 驾照, 股票)."""
        words = self.content(query).words
        unseen = [w for w, units, _ in words if not self.uses(units)]
        return len(unseen) / len(words) if words else 0.0

    def off_corpus(self, query: Query | str) -> bool:
        """Whether the question has words of its own (not words of asking or function words) and
        the corpus uses none of them: 股票, 明天 in "股票明天会涨吗"."""
        words = self.content(query).words
        return bool(words) and not any(self.uses(units) for _, units, _ in words)

    @functools.lru_cache(maxsize=256)
    def content(self, query: Query | str) -> QuestionContent:
        """The question's content: its bigrams less the words of asking and the place names (a
        place says where a rule should apply, checked by applies_to, not what the rule is about),
        and its content words (places left out likewise)."""
        query = as_query(query, self.synonyms)
        places = set().union(*(han_bigrams(p) for p in query.places))
        weights = {b: self._weight(b) for b in content_units(query.canonical or query.normalised) - ASKING_BIGRAMS - places}
        words = []
        for word in query.words:
            if word in query.places:
                continue
            units = frozenset(self.units(word) - ASKING_BIGRAMS) or frozenset(self.units(word))
            if units:
                words.append((word, units, max(self._weight(u) for u in units)))
        return QuestionContent(weights, math.fsum(weights.values()), words)

    def claim_support(self, claim: str, articles: list[Article]) -> float:
        """How far one of the clauses ``articles`` states ``claim`` (a sentence an LLM wrote citing
        them), the best of them: the weighted share of the claim's content words found whole in the
        clause, its title and headings (rare words weigh most: 免费 or 营业执照 said of a clause that
        never says them is made up), 0.0 for a clause that does not hold every number the claim
        states with its unit (3个工作日 where the clause says 5). One clause must state it: words
        gathered from several clauses cited together do not. Words, not bigrams: a paraphrase's
        colloquial glue (的话, 一般) is rare in the corpus too. Numbers swapped between the matters
        of one clause (2 and 5 days) are not caught."""
        words = [frozenset(self.units(w)) for w in content_words(self.synonyms.canonical(normalise(claim)))]
        weights = [max((self._weight(u) for u in units), default=0.0) for units in words]
        total = math.fsum(weights)
        stated = {m.group(0) for m in NUMBER_IN_CLAIM.finditer(_unspaced(claim))}
        best = 0.0
        for article in articles:
            clause = self.clause(article)
            doc = article.document
            text = _unspaced(" ".join([doc.title if doc else "", " ".join(article.path), article.text]))
            if not stated <= {m.group(0) for m in NUMBER_IN_CLAIM.finditer(text)}:
                continue
            if not total:
                continue
            known = clause.whole | clause.context
            best = max(best, math.fsum(w for units, w in zip(words, weights) if units and units <= known) / total)
        return best

    def names_aspect(self, query: Query, quote: "Quote") -> bool:
        """Whether the sentence itself, not only its clause's title and headings, holds a word of
        what an elliptic follow-up names (``Query.aspect``)."""
        units = self.clause(quote.hit.article).units_of(quote.sentence)
        return bool(query.aspect) and self.focus_share(query, units, query.aspect, text=quote.sentence) > 0

    def context_text(self, article: Article) -> str:
        """A clause's document title and heading path, the text its context units come from."""
        return f"{article.document.title if article.document else ''} {' '.join(article.path)}"

    def focus_share(self, query: Query, units: set[str] | frozenset[str], words: tuple[str, ...] | None = None, text: str = "") -> float:
        """Weighted share of the question's focus words (``Query.focus``: what the kind of answer is
        asked about; or ``words``) found whole in ``units``; 1.0 when the question has none. With
        ``text`` (where an elliptic follow-up's aspect is looked for: it is said the way people say
        it, 市县政府), a word written apart there counts too (:func:`written_apart`)."""
        asked = query.focus if words is None else words
        pairs = [(w, frozenset(self.units(w) - ASKING_BIGRAMS) or frozenset(self.units(w))) for w in asked]
        # a word the corpus never uses (县里, 报完) cannot be asked of its sentences
        pairs = [(w, u) for w, u in pairs if u and all(x in self._document_frequency for x in u)]
        weights = [max(self._weight(x) for x in u) for _, u in pairs]
        total = math.fsum(weights)
        if not total:
            return 1.0
        normal = normalise(text) if text else ""
        return math.fsum(weight for (w, u), weight in zip(pairs, weights) if u <= units or (normal and written_apart(normalise(w), normal))) / total

    def quotes(self, query: Query | str, hits: list[Hit], kind: AnswerKind | None = None) -> list[Quote]:
        """Every sentence of the hits with its support, best first (ties go to the answering
        fragment holding more of the question, then to retrieval order).
        ``kind`` is the kind of answer wanted (default: the one the question asks for)."""
        query = as_query(query, self.synonyms)
        content = self.content(query)
        weights, total = content.weights, content.total
        kind = kind or query.kind
        # numbers the question names itself (12345, 110) are its topic, never its answer
        named = set(NAMING_NUMBER.findall(query.normalised))
        if kind is not None and kind.name == "papers":
            # nor are the papers it names (在泾源办残疾人证要带啥材料 is not answered by 持残疾人证的)
            named |= {m.group(0) for m in kind.found_by.finditer(query.normalised)}
        named = tuple(sorted(named, key=len, reverse=True))
        found = []
        for rank, hit in enumerate(hits):
            clause = self.clause(hit.article)
            # where what an elliptic follow-up names is looked for, written apart too (focus_share)
            context_text = self.context_text(hit.article) if query.aspect else ""
            for sentence, units in clause.sentences:
                own = weights.keys() & units
                if len(own) < self.settings.min_shared_bigrams:
                    continue  # one shared word (a place, a common noun) is a coincidence, not an answer
                # the title and heading path say what the sentence is about (context_match_weight)
                context_only = (weights.keys() & clause.context) - own
                # fsum: exact whatever order the sets iterate in, so ties between sentences break the
                # same way in every process (str hashing differs per process)
                own_weight = math.fsum(weights[b] for b in own)
                matched = own_weight + self.settings.context_match_weight * math.fsum(weights[b] for b in context_only)
                coverage = matched / total if total else 0.0
                support = coverage
                lead = ""
                if kind is not None:
                    # an amount or a deadline in a sentence about none of what is asked about (30cm
                    # for 补贴补多少) is another matter's, not the answer
                    where = f"{sentence} {context_text}" if query.aspect else ""
                    if self.focus_share(query, units | clause.context, text=where) > 0.0:
                        lead = self._lead(sentence, kind, weights, named)
                    if not lead:
                        support *= self.settings.missing_kind_factor
                quote = Quote(hit, sentence, support, lead, rank, coverage, own_weight / total if total else 0.0)
                lead_share = math.fsum(weights.get(b, 0.0) for b in self.units(lead)) / total if lead and total else 0.0
                found.append((-support, -lead_share, rank, quote))
        # Equal support: the sentence whose answering fragment holds more of the question (投诉几天
        # 能回复: 第二十一条's 投诉…类工单5个工作日内办结反馈 before another plan's 2 个工作日内退回投诉,
        # both titled 12345…投诉; 几个工作日能办结: 办结反馈's 2 and 5 days before 重办期限5个工作日),
        # then retrieval's order.
        found.sort(key=lambda t: (t[0], t[1], t[2]))
        return [quote for *_, quote in found]

    def _lead(self, sentence: str, kind: AnswerKind, weights: dict[str, float], named: tuple[str, ...] = ()) -> str:
        """The fragment (between commas) holding the kind of answer wanted, the most on-topic first.
        ``named``: numbers the question names, which do not count as an answer in a fragment."""
        # the item number a sentence opens with (51. 强化…, （三）, a table row's 6) is no answer
        fragments = [f for f in FRAGMENT_SPLIT.split(LIST_LABEL.sub("", sentence, count=1)) if kind.found_by.search(_without(f, named))]
        if not fragments:
            return ""
        on_topic = [math.fsum(weights.get(b, 0.0) for b in self.units(f)) for f in fragments]
        # Fragments the question does not tell apart are all the answer: 几天能回复 gets both 咨询类
        # 2个工作日 and 投诉类 5个工作日, 投诉几天能回复 the complaint's alone.
        best = [f.strip().rstrip("，,；;：:。") for f, w in zip(fragments, on_topic) if w >= max(on_topic) - 1e-9]
        lead = "，".join(best[:MAX_LEAD_FRAGMENTS])
        # what a sentence opening "防火戒严期：即每年10月1日起…" defines is part of its answer
        label = FRAGMENT_SPLIT.split(LIST_LABEL.sub("", sentence, count=1))[0].strip()
        if label.endswith(("：", ":")) and len(label) <= MAX_LABEL_CHARS and not lead.startswith(label.rstrip("：:")):
            return label + lead
        return lead
