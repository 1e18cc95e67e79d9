"""Step 6 of the flow: a question (and the conversation so far) -> an ``Answer`` that cites its clauses.

1. The question is checked (empty, too long) and, when it is a follow-up ("那要多久？"), put in the
   context of the conversation: rewritten by the LLM when one is configured, otherwise carried on
   the earlier question's subject.
2. Retrieval; a question that names an article (《XX办法》第十六条) gets the article itself.
3. The clauses are read sentence by sentence (qa/extractive.py) and judged (qa/judging.py). When no
   sentence of the first clauses states the answer, the reply is "related" (the closest clauses as
   可能相关, asserting nothing) or "none" (outside what the documents cover, said with their scope),
   with the 12345 hotline.
4. Without an LLM the answer quotes the supporting sentences verbatim, leading with the direct
   answer (the number, the deadline, the department). With an LLM the answer is streamed, then
   checked: unknown [n] removed, uncited sentences dropped, and so are sentences the clauses they
   cite do not state (``states``); if nothing is left, or the endpoint fails, times out or returns
   nothing usable, the extractive answer is given.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from qa.articles import sentences_with_cases
from qa.config import Settings
from qa.extractive import LIST_LABEL, Quote, applies_to
from qa.generation import GenerationError, Generator, check_citations, completed_sentences, make_llm, renumber
from qa.models import Answer, Citation, Hit, Query
from qa.query import ELLIPTIC, inherited_aspect
from qa.prompts import load_prompts
from qa.reranking import Ranking, reranked
from qa.retrieval import Filters
from qa.searchers import open_searcher
from qa.scope import Scope

# Openings that make a question lean on the one before it.
FOLLOWUP_OPENING = re.compile(r"^(那|那么|那要|那如果|还有|另外|如果|要是|它|这个|这些|那个|那些|其中|同样)")
# Words that name an aspect of a matter, not the matter: a short question made of these alone
# (要带什么材料？ 多久能办好？ 找哪个部门？) asks about the subject of the question before it.
ASPECT_WORDS = re.compile(
    r"^(材料|资料|证件|手续|流程|程序|步骤|条件|要求|标准|时间|时限|期限|多久|多长|几天|天数|部门|单位|机构|地方|地点|地址|电话|"
    r"费用|收费|花钱|钱数|金额|补贴|补助|办理|申请|提交|提供|准备|带上|需要|所需|具体|情况|规定|政策|内容|怎么办|哪里|在哪|"
    r"办好|办完|办结|能办|下来|完成|负责|管理|处理|对象|范围|人员|要带|带什么|处罚|罚款|上报|报告|回复|答复|延期|延长|次数)$"
)
# Documents of the earlier question that a question's own words must all be found in for it to be
# read in that question's context (乡镇的数据什么时候要报上去 after a question on a survey).
EARLIER_DOCUMENTS = 2
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Halves of UTF-16 surrogate pairs standing alone: JSON may carry them ("\ud800"), but they are not
# text, and the tokeniser and UTF-8 encoding both fail on them.
LONE_SURROGATES = re.compile(r"[\ud800-\udfff]")
# A greeting, thanks or goodbye on its own (你好, 在吗, 谢谢您): answered as such, not searched (it
# would only meet 资料中没有找到相关规定).
THANKS = r"谢谢|多谢|感谢|谢了|辛苦了|再见|拜拜|好的|嗯"
SMALL_TALK = re.compile(
    rf"(?:(?:你好|您好|你们好|大家好|哈喽|嗨|hi|hello|在吗|在不在|有人吗|{THANKS})[啊呀呢吗哈了您你啦喔哦~～!！。.,，?？\s]*)+",
    re.IGNORECASE,
)
log = logging.getLogger(__name__)
POSSIBLY_RELATED = "可能相关的条款（仅供参考，未必能回答您的问题）："
HOTLINE = "如需进一步咨询，请拨打 12345 政务服务便民热线。"


class QuestionError(ValueError):
    """A question that cannot be asked as given; the message is for the person who asked."""


def plain_text(text: str | None) -> str:
    """Text as it may be searched and shown: NFC, control characters and lone surrogates replaced
    by spaces, one line, trimmed."""
    text = unicodedata.normalize("NFC", LONE_SURROGATES.sub(" ", text or ""))
    return CONTROL_CHARS.sub(" ", text).replace("\n", " ").strip()


def clean_question(question: str | None, settings: Settings) -> str:
    text = plain_text(question)
    if not text:
        raise QuestionError("请输入您的问题。")
    if len(text) > settings.max_question_chars:
        raise QuestionError(f"问题太长了（{len(text)} 字），请精简到 {settings.max_question_chars} 字以内。")
    return text


def conversation(history: Sequence) -> list[tuple[str, str]]:
    """(role, text) turns from Gradio's messages format ({"role", "content"}) or (user, bot) pairs;
    anything else (files, components) is skipped."""
    pairs = []
    for item in history or ():
        if isinstance(item, dict):
            pairs.append((item.get("role"), item.get("content")))
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            pairs += zip(("user", "assistant"), item)
    turns = []
    for role, content in pairs:
        text = plain_text(content) if isinstance(content, str) else ""
        if role in ("user", "assistant") and text:
            turns.append((role, text))
    return turns


# A sentence ending in a colon announces what follows (不予受理的范围：) and says nothing alone: it
# is quoted with the items after it in its clause, up to these many characters. An item of such a
# list is quoted after the sentence announcing it: "（七）匿名投诉；" alone reads as if anonymous
# complaints were taken, when the list is of those that are not.
LIST_ITEMS_CHARS = 240
ITEM_INTRO_REACH = 12  # sentences back from an item to the one announcing its list
ANNOUNCES_ITEMS = re.compile(r"[：:]\s*$")
CIRCLED_ITEM = re.compile(r"^\s*[①-⑳]")


def is_item(sentence: str) -> bool:
    """Whether a sentence opens with an item's label: （一） 1. 一、 ① …"""
    return bool(LIST_LABEL.match(sentence) or CIRCLED_ITEM.match(sentence))


def in_context(quote: Quote) -> str:
    """The quote's sentence as it is shown: verbatim, with the items it announces or the sentence
    announcing the list it is an item of. A sentence its clause holds twice (③性质为自用; under
    two levels) is shown alone: which copy was meant is not known. A sentence of a table row is
    shown after the row's case: "所误时间不补" alone does not say for whom."""
    cases = sentences_with_cases(quote.hit.article.text)
    clause = [sentence for sentence, _ in cases]
    if clause.count(quote.sentence) != 1:
        return quote.sentence
    at = clause.index(quote.sentence)
    if cases[at][1]:
        return cases[at][1] + "……" + quote.sentence
    if ANNOUNCES_ITEMS.search(quote.sentence):
        text = quote.sentence
        for n, item in enumerate(clause[at + 1 :]):
            if n and len(text) + len(item) > len(quote.sentence) + LIST_ITEMS_CHARS:
                return text + "……"
            text += item
        return text
    if not is_item(quote.sentence):
        return quote.sentence  # not an item: the addressee line of a notice ends in a colon too
    for back in range(at - 1, max(-1, at - 1 - ITEM_INTRO_REACH), -1):
        earlier = clause[back]
        if ANNOUNCES_ITEMS.search(earlier):
            return earlier + ("……" if back < at - 1 else "") + quote.sentence
        if not is_item(earlier) and earlier.rstrip().endswith("。"):
            break  # a sentence of its own between: the item is not of a list announced above it
    return quote.sentence


@dataclass
class Reading:
    question: str
    standalone: str
    notes: list[str]
    hits: list[Hit]
    usable: list[Hit]  # the hits that apply to the places the question names
    quotes: list[Quote]  # the judged sentences of the first usable clauses, best first
    support: float  # the best sentence's verdict (or, without a judge, its support)
    query: Query | None = None
    outside: str = ""  # why the question is outside what the corpus covers ("" when it is not)
    local: tuple[str, ...] = ()  # counties it names that have no documents of their own (Scope.local_elsewhere)
    related: bool = True  # some clause shares most of the question's content words
    threshold: float = 0.0  # the verdict an answer needs
    reader_support: float = 1.0  # the reader's support alone, which must reach ``gate``
    gate: float = 0.0

    @property
    def names_article(self) -> bool:
        return bool(self.hits) and self.hits[0].via == "lookup"

    @property
    def answered(self) -> bool:
        if self.outside:
            return False
        if self.local and not self.names_article:
            return False
        return self.names_article or (bool(self.quotes) and self.support >= self.threshold and self.reader_support >= self.gate)

    @property
    def grade(self) -> str:
        if self.answered:
            return "answer"
        return "related" if self.related and not self.outside and self.usable else "none"


class Answerer:
    def __init__(self, settings: Settings, searcher=None, llm=None):
        self.settings = settings
        # answers read the clauses retrieval reranked, with the same reader and judge
        self.searcher = reranked(searcher or open_searcher(settings), settings)
        self.reader = self.searcher.reader
        self.judge = self.searcher.judge
        self.scope = Scope.of(self.searcher.corpus_articles or getattr(self.searcher, "articles", None) or [])
        self._document_texts: dict[str, str] = {}  # a document's clauses, read by leans_on
        self.prompts = load_prompts(settings)
        llm = llm if llm is not None else make_llm(settings)
        self.generator = Generator(llm, self.prompts, settings) if llm is not None else None

    @property
    def retrieval_k(self) -> int:
        """Hits an answer asks retrieval for: enough for the extractive answer and for the LLM."""
        return max(self.settings.answer_clauses, self.settings.llm_clauses)

    @property
    def threshold(self) -> float:
        """The verdict a sentence needs to be asserted as the answer."""
        return self.judge.threshold if self.judge is not None else self.settings.refusal_threshold

    # -- public --------------------------------------------------------------------------------
    def answer(self, question: str, history: Sequence = (), filters: Filters | None = None, context: str = "") -> Answer:
        final = None
        for final in self.stream(question, history, filters, context):
            pass
        return final

    def stream(self, question: str, history: Sequence = (), filters: Filters | None = None, context: str = "") -> Iterator[Answer]:
        """Answers whose text grows as an LLM writes; the last one is the final, checked answer.
        Raises QuestionError for a question that cannot be asked."""
        cleaned = clean_question(question, self.settings)
        if SMALL_TALK.fullmatch(cleaned):
            text = self.prompts.thanks if re.search(THANKS, cleaned) else self.prompts.greeting
            yield Answer(question=cleaned, text=text, refused=False, standalone_question=cleaned, mode="greeting", grade="none")
            return
        yield from self.respond(self.read(cleaned, history, filters, context))

    def respond(self, reading: Reading) -> Iterator[Answer]:
        """The answers ``stream`` yields, for a question already read (the evaluation reads each
        question once for its support and its answer)."""
        base = Answer(question=reading.question, text="", refused=False, standalone_question=reading.standalone, notes=reading.notes)
        if reading.outside:
            yield self.not_covered(base, reading.outside)
        elif reading.names_article:
            yield self.lookup_answer(base, reading.hits)
        elif not reading.answered:
            why = f"现有文件中没有{'、'.join(reading.local)}本地的规定。" if reading.local else ""
            yield self.refusal(base, reading.usable, related=reading.grade == "related", why=why)
        elif self.generator is None:
            yield self.extractive_answer(base, reading.quotes)
        else:
            yield from self.generated_answer(base, reading.usable[: self.settings.llm_clauses], reading.quotes, reading.query)

    def read(self, question: str, history: Sequence = (), filters: Filters | None = None, context: str = "") -> Reading:
        """Everything the answer is decided on: the standalone question, the hits, the sentences
        that answer it and how well they support an answer.

        A question with words of its own that are all words of the earlier question's documents
        (打算哪年通过验收 after a question on that plan) may still lean on it: it is read both
        alone and in context, and taken in context only when alone it states nothing and in
        context it does (alone it may find another plan's 验收 year)."""
        question = clean_question(question, self.settings)
        turns = conversation(history)
        standalone, notes = self.standalone_question(question, turns)
        asked_before = [text for role, text in turns if role == "user"]
        carried = self._earlier_hits(asked_before, filters) if standalone != question else []
        aspect = inherited_aspect(question, asked_before) if standalone != question else None
        alone = self._read_as(question, standalone, notes, filters, context, carried, aspect)
        if standalone != question or not asked_before or alone.answered or alone.outside:
            return alone
        subject = self._earlier_subject(asked_before)
        if not self.leans_on(question, subject):
            return alone
        in_context = self._read_as(question, f"{subject} {question}"[-self.settings.max_question_chars :], notes, filters, context)
        return in_context if in_context.answered else alone

    def _earlier_hits(self, asked_before: list[str], filters: Filters | None) -> list[Hit]:
        """The first clauses of the question a follow-up leans on: a follow-up often asks the same
        clause about something else (那投诉的呢？), so they are read whatever the words of both
        questions together rank first."""
        subject = self._earlier_subject(asked_before)
        return self.searcher.search(self.reader.analyse(subject), k=EARLIER_DOCUMENTS, filters=filters) if subject else []

    def _read_as(self, question: str, standalone: str, notes: list[str], filters: Filters | None, context: str, carried: Sequence[Hit] = (), aspect: tuple[str, ...] | None = None) -> Reading:
        # A follow-up's own kind of answer ("那要多久" asks for a duration) wins over the earlier question's.
        query = self.reader.analyse(standalone, kind_from=question, aspect=aspect)
        ranking = self.retrieve(query, filters, context, carried)
        hits = self.searcher.by_verdict(ranking)
        usable = [hit for hit in hits if applies_to(hit.article, list(query.named_places))]
        quotes = self.follow_up_order(query, self.quotes_of(ranking, usable[: self.settings.answer_clauses]), carried)
        outside = self.scope.outside(query, hits)
        return Reading(
            question,
            standalone,
            notes,
            hits,
            usable,
            quotes,
            self.support(quotes, usable),
            query=query,
            outside=outside,
            local=tuple(self.scope.local_elsewhere(query)) if not outside else (),
            related=self.is_related(query, usable[: self.settings.answer_clauses]),
            threshold=self.threshold,
            reader_support=self.reader_support(quotes, usable),
            gate=self.settings.refusal_threshold,
        )

    def quotes_of(self, ranking: Ranking, hits: list[Hit]) -> list[Quote]:
        """The judged sentences of ``hits``: those reranking read already, the others read now."""
        wanted = {hit.article.id for hit in hits}
        quotes = [q for q in ranking.quotes if q.hit.article.id in wanted]
        unread = [hit for hit in hits if hit.article.id not in ranking.read]
        if unread:
            quotes = quotes + self.searcher.read(ranking.query, unread)
            quotes.sort(key=lambda q: -q.score)  # stable: ties keep the order they were read in
        return quotes

    def follow_up_order(self, query: Query, quotes: list[Quote], carried: Sequence[Hit]) -> list[Quote]:
        """The sentences that answer a follow-up (``carried``: the clauses that answered the turn
        before), in the order it asks for them; best first otherwise.

        An elliptic follow-up (那投诉的呢？) asks the question before about what it names: sentences
        naming it in their own words lead, first those of the earlier clauses (咨询类…2个工作日,
        投诉…5个工作日内办结反馈), then any other (another plan's 2个工作日内退回投诉, whose title alone
        says 投诉). One that moves to a place (那泾源县呢？ after the region's 生活污水治理率) asks for that
        place's own rule: its own documents' sentences lead (泾源县's 34%) over the wider region's (40%),
        which applies there too."""
        if not carried:
            return quotes
        earlier = {hit.article.id for hit in carried}

        def order(quote: Quote) -> tuple[bool, bool, bool]:
            answers = quote.score >= self.threshold
            doc = quote.hit.article.document
            own_place = not query.named_places or (doc is not None and any(p in (doc.region or "") for p in query.named_places))
            naming = not query.aspect or self.reader.names_aspect(query, quote)
            # the earlier clauses first only for what an elliptic follow-up names (another aspect of
            # the same clause); a follow-up asking for something else (要带什么材料？) is ranked as asked
            return (not (answers and naming), not own_place, bool(query.aspect) and quote.hit.article.id not in earlier)

        return sorted(quotes, key=order)  # stable: best first within each

    def support(self, quotes: list[Quote], hits: list[Hit], score=lambda q: q.score) -> float:
        """How well the clauses an answer always quotes (the first ``cited_top_clauses`` of the
        ranking) support it: the best verdict of their sentences (0..1), or with ``score`` another
        measure of them. Not the first clause alone: when retrieval puts the answering clause
        second, the answer still quotes it."""
        quoted = {hit.article.id for hit in hits[: self.settings.cited_top_clauses]}
        return max((score(q) for q in quotes if q.hit.article.id in quoted), default=0.0)

    def reader_support(self, quotes: list[Quote], hits: list[Hit]) -> float:
        """:meth:`support` by the reader's own measure (shared weighted content, the kind of answer
        found), which an answer must reach as well as the judge's verdict."""
        return self.support(quotes, hits, score=lambda q: q.support)

    def states(self, claim: str, hits: list[Hit]) -> bool:
        """Whether the clauses of ``hits`` state ``claim``, a sentence an LLM wrote citing them."""
        return self.reader.claim_support(claim, [hit.article for hit in hits]) >= self.settings.llm_min_claim_support

    def stating(self, claim: str, hits: list[Hit], cited: list[int]) -> list[int]:
        """The clauses (numbers into ``hits``) to cite for ``claim``: those the model cited when they
        state it, otherwise the one other clause it was given that states it best (a small model
        cites [4] for clause [1] labelled 4.5), otherwise none: the claim is not stated."""
        if self.states(claim, [hits[n - 1] for n in cited]):
            return cited
        supports = [(self.reader.claim_support(claim, [hit.article]), n) for n, hit in enumerate(hits, start=1) if n not in cited]
        best, n = max(supports, default=(0.0, 0))
        return [n] if best >= self.settings.llm_min_claim_support else []

    def is_related(self, query: Query, hits: list[Hit]) -> bool:
        """Whether some clause holds most of the question's content words (in its text, title or
        headings): worth showing as 可能相关 when none states the answer."""
        if self.reader.off_corpus(query):
            return False
        content = self.reader.content(query)
        for hit in hits:
            clause = self.reader.clause(hit.article)
            covered, _, _ = content.word_coverage(clause.whole | clause.context)
            if covered >= self.settings.related_min_coverage:
                return True
        return False

    # -- steps ------------------------------------------------------------------------------------
    def standalone_question(self, question: str, turns: list[tuple[str, str]]) -> tuple[str, list[str]]:
        """The question with what a follow-up leaves out filled in from the conversation."""
        asked_before = [text for role, text in turns if role == "user"]
        if not asked_before:
            return question, []
        if self.generator is not None and self.is_followup(question):
            try:
                return self.generator.rewrite_followup(question, turns), []
            except GenerationError as error:
                log.warning("LLM follow-up rewrite failed, carried on the earlier question: %s", error)
                return self._carry_subject(question, asked_before), ["大模型暂时不可用，已按上文补全问题。"]
        return self._carry_subject(question, asked_before), []

    def is_followup(self, question: str) -> bool:
        """Whether a question leans on the one before it, by what it says, not by its length: it
        opens like a follow-up (那…, 还有…), or it names no subject of its own, only an aspect
        (要带什么材料？, 多久能办好) or a place (惠农区呢). "我家孩子上学有补贴吗" has a subject
        (孩子, 上学) and is a new question; so is a question whose words the documents never use
        (股票明天会涨吗), unless they are words of an aspect (多久能办下来)."""
        if FOLLOWUP_OPENING.match(question) or ELLIPTIC.match(question):
            return True
        query = self.reader.analyse(question)
        # a word the corpus never uses is a subject too (股票 in 股票明天会涨吗): a new question
        subject = [w for w in query.words if w not in query.places and not ASPECT_WORDS.search(w)]
        return not subject

    def leans_on(self, question: str, subject: str) -> bool:
        """Whether every word of its own that ``question`` has (not a place, not an aspect) is a word
        of the documents the earlier question ``subject`` is answered from: 红色 after a question on
        蓝色预警, not 孩子 after a question on the 12345 hotline."""
        query = self.reader.analyse(question)
        # a word the corpus never uses (报上去) is found in no document, the earlier one's neither
        own = [w for w, units, _ in self.reader.content(query).words if not ASPECT_WORDS.search(w) and self.reader.uses(units)]
        if not own or not subject:
            return False
        hits = self.searcher.search(self.reader.analyse(subject), k=EARLIER_DOCUMENTS)
        texts = [self._document_text(hit.article.doc_id) for hit in hits]
        return bool(texts) and all(any(word in text for text in texts) for word in own)

    def _document_text(self, doc_id: str) -> str:
        if doc_id not in self._document_texts:
            articles = self.searcher.corpus_articles or getattr(self.searcher, "articles", None) or []
            self._document_texts[doc_id] = "".join(a.text for a in articles if a.doc_id == doc_id)
        return self._document_texts[doc_id]

    def _earlier_subject(self, asked_before: list[str]) -> str:
        """The earlier question a follow-up leans on, with its own subject when it was a follow-up too."""
        subject = ""
        for earlier in asked_before:
            subject = f"{subject} {earlier}".strip() if subject and self.is_followup(earlier) else earlier
        return subject

    def _carry_subject(self, question: str, asked_before: list[str]) -> str:
        """Without an LLM: a follow-up is searched together with the question it follows (and that
        one with its own, when it was a follow-up too). A follow-up naming a place of its own
        (那惠农区呢) keeps it, and the earlier question's places are dropped."""
        subject = self._earlier_subject(asked_before)
        if not self.is_followup(question):
            return question
        places = self.reader.analyse(question).places
        if places:
            for earlier_place in sorted(self.reader.analyse(subject).places, key=len, reverse=True):
                subject = subject.replace(earlier_place, "")
        return f"{subject} {question}"[-self.settings.max_question_chars :]

    def retrieve(self, query: Query, filters: Filters | None, context: str, carried: Sequence[Hit] = ()) -> Ranking:
        """Hits for the question, reranked for the kind of answer wanted, ``carried`` clauses among
        those read. A host page's context (the policy it shows) is preferred when it names a
        document whose clauses answer the question; otherwise the whole corpus answers."""
        k = self.retrieval_k
        ranking = self.searcher.rank(query, k=k, filters=filters, carried=carried)
        context = plain_text(context)[: self.settings.max_question_chars]
        if not context:
            return ranking
        within = replace(filters or Filters(), document=context)
        preferred = self.searcher.rank(query, k=k, filters=within)
        if not preferred.hits:
            return ranking
        quotes = self.quotes_of(preferred, preferred.hits[: self.settings.answer_clauses])
        if self.support(quotes, preferred.hits) < self.threshold:
            return ranking
        seen = {hit.article.id for hit in preferred.hits}
        preferred.hits = preferred.hits + [hit for hit in ranking.hits if hit.article.id not in seen]
        preferred.retrieved = None  # the host page's document first, whatever the verdicts
        return preferred

    # -- the kinds of answer ------------------------------------------------------------------------
    def lookup_answer(self, base: Answer, hits: list[Hit]) -> Answer:
        """The named article itself (all its parts when a long clause was cut)."""
        label = hits[0].article.label
        named = [hit for hit in hits if hit.via == "lookup" and hit.article.label == label and hit.article.doc_id == hits[0].article.doc_id]
        named = named or hits[:1]
        doc = named[0].article.document
        lines = [f"《{doc.title}》{label}原文如下："]
        lines += [f"{hit.article.text}[{n}]" for n, hit in enumerate(named, start=1)]
        citations = [Citation(n, hit) for n, hit in enumerate(named, start=1)]
        return replace(base, text="\n\n".join(lines), citations=citations, mode="lookup")

    def refusal(self, base: Answer, hits: list[Hit], related: bool = True, why: str = "") -> Answer:
        """No clause states the answer. Related: said plainly, then the closest clauses as 可能相关,
        asserting nothing. None: nothing related; what the documents cover is said instead.
        ``why``: a sentence saying why, when there is more to say than that no clause states it."""
        if not related:
            return self.not_covered(base, why)
        closest = hits[: self.settings.answer_clauses]
        lines = [why, self.prompts.related] if why else [self.prompts.related]
        if closest:
            lines.append(POSSIBLY_RELATED)
            lines += [f"[{n}] {hit.article.source()}" for n, hit in enumerate(closest, start=1)]
        citations = [Citation(n, hit) for n, hit in enumerate(closest, start=1)]
        return replace(base, text="\n".join(lines), refused=True, citations=citations, grade="related")

    def not_covered(self, base: Answer, why: str) -> Answer:
        """Nothing in the documents answers or relates to the question, or it is outside what they
        cover (another province, a year they do not reach, no policy question): say why, say what
        they do cover, and hand off to 12345."""
        lines = [why or self.prompts.refusal, self.scope.describe()]
        if why:
            lines.append(HOTLINE)
        return replace(base, text="\n".join(lines), refused=True, citations=[], grade="none")

    def extractive_answer(self, base: Answer, quotes: list[Quote], notes: Sequence[str] = ()) -> Answer:
        """The best sentence's direct answer first, then the supporting sentences verbatim."""
        chosen = self._choose_quotes(quotes)
        numbers: dict[str, int] = {}
        for quote in chosen:
            numbers.setdefault(quote.hit.article.id, len(numbers) + 1)
        best = chosen[0]
        lines = []
        if best.lead:
            lines.append(f"{best.lead}。[{numbers[best.hit.article.id]}]")
        lines.append("依据的条款原文：" if best.lead else "根据相关规定：")
        for quote in chosen:
            lines.append(f"{quote.hit.article.label}：“{in_context(quote)}”[{numbers[quote.hit.article.id]}]")
        lines.append(HOTLINE)
        cited = {}
        for quote in chosen:
            cited.setdefault(quote.hit.article.id, quote.hit)
        citations = [Citation(numbers[article_id], hit) for article_id, hit in cited.items()]
        return replace(base, text="\n".join(lines), citations=citations, mode="extractive", notes=[*base.notes, *notes])

    def _choose_quotes(self, quotes: list[Quote]) -> list[Quote]:
        """The best sentence; the best sentence of each of the first clauses retrieval ranked (the
        dense side finds clauses a colloquial question shares few words with); then of any other
        clause whose best sentence is nearly as good as the best."""
        best = quotes[0]
        chosen = {best.hit.article.id: best}
        second = self._second_of_best_clause(quotes)
        best_of_clause = {}
        for quote in quotes:  # quotes come best first, so the first seen per clause is its best
            best_of_clause.setdefault(quote.hit.article.id, quote)
        for quote in sorted(best_of_clause.values(), key=lambda q: q.rank):
            if quote.rank < self.settings.cited_top_clauses:
                chosen.setdefault(quote.hit.article.id, quote)
        for quote in best_of_clause.values():
            if quote.score >= self.settings.quote_min_ratio * best.score:
                chosen.setdefault(quote.hit.article.id, quote)
        picked = list(chosen.values())[: self.settings.max_quotes]
        return picked[:1] + [second] + picked[1:] if second is not None else picked

    def _second_of_best_clause(self, quotes: list[Quote]) -> Quote | None:
        """For a question asking no one thing (怎么办, 有什么要求: no answering fragment leads), the
        best clause's second sentence when it is judged nearly as well as the best: such answers
        are often two sentences of one clause."""
        best = quotes[0]
        if best.lead:
            return None
        for quote in quotes[1:]:
            if quote.hit.article.id == best.hit.article.id:
                good = quote.score >= self.settings.quote_min_ratio * best.score and quote.score >= self.threshold
                # not a sentence either one is shown with already (a list's items, or its heading)
                shown = quote.sentence in in_context(best) or best.sentence in in_context(quote)
                return quote if good and not shown else None
        return None

    def generated_answer(self, base: Answer, hits: list[Hit], quotes: list[Quote], query: Query | None = None) -> Iterator[Answer]:
        """The LLM's answer, shown only as far as it has been checked: each time a sentence is
        complete the text so far is checked again and what survives is shown, numbered as it will
        be in the end, so nothing made up is on screen even for a moment."""
        draft = replace(base, mode="llm", citations=[Citation(n, hit) for n, hit in enumerate(hits, start=1)])
        attribute = lambda claim, numbers: self.stating(claim, hits, numbers)  # noqa: E731
        # A question asking for a kind of answer (a deadline) is not answered by sentences holding
        # none (突发事件信息报送的上级最迟时限是 [2]、[3]。, the question said back), as in the reader:
        # nothing is shown until one does, and an answer without one is the extractive answer.
        answers_kind = lambda checked: query is None or query.kind is None or any(query.kind.found_by.search(c) for c, _ in checked.claims)  # noqa: E731
        text, shown, checked_upto = "", "", ""
        try:
            for text in self.generator.stream(base.standalone_question, hits):
                complete = completed_sentences(text)
                if not complete or complete == checked_upto or self.prompts.refusal_marker in complete:
                    continue  # checked once per completed sentence, not per token
                checked_upto = complete
                checked = check_citations(complete, len(hits), attribute=attribute)
                visible = renumber(checked.text, checked.cited)
                if visible != shown and answers_kind(checked):
                    shown = visible
                    yield replace(draft, text=visible, citations=[Citation(new, hits[old - 1]) for new, old in enumerate(checked.cited, start=1)])
        except GenerationError as error:
            log.warning("LLM answer failed, extractive answer given: %s", error)
            yield self.extractive_answer(base, quotes, ["大模型服务暂时不可用，以下为条款原文摘录。"])
            return
        if self.prompts.refusal_marker in text:
            yield self.refusal(base, hits)
            return
        checked = check_citations(text, len(hits), attribute=attribute)
        if checked.dropped or checked.unsupported or checked.unknown:
            # what the check removed is for the operator's log, not the citizen's screen
            log.info("LLM answer checked: %d uncited, %d unsupported sentences dropped, unknown citations %s", len(checked.dropped), len(checked.unsupported), checked.unknown)
        if not checked.cited or not answers_kind(checked):
            # nothing left that a clause states: pointers only (依据条款 [2]。), made-up content, no citations
            yield self.extractive_answer(base, quotes, ["大模型的回答未能由条款核实，以下为条款原文摘录。"])
            return
        citations = [Citation(new, hits[old - 1]) for new, old in enumerate(checked.cited, start=1)]
        yield replace(draft, text=f"{renumber(checked.text, checked.cited)}\n{HOTLINE}", citations=citations, notes=list(base.notes))

