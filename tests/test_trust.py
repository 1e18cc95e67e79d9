"""Answers a citizen can trust (issue 13): one test per failure class, on the bundled corpus with the
real model, index, reader and judge. The questions are written for these tests, not taken from any
evaluation set."""

import pytest

from qa.answering import Answerer
from qa.index import build_index
from qa.models import Article, Hit, Query
from qa.query import analyse
from qa.scope import Scope, places_in


@pytest.fixture(scope="module")
def answerer(settings):
    build_index(settings, progress=False)  # incremental: instant when the index is current
    return Answerer(settings)


# -- other regions: the corpus holds Ningxia's documents only ------------------------------------
@pytest.mark.parametrize(
    "question, place",
    [
        ("北京的住房公积金怎么提取", "北京"),
        ("上海落户需要什么条件", "上海"),
        ("深圳南山区的保障性租赁住房怎么申请", "南山区"),
        ("成都市12345热线工单几天办结", "成都市"),
        ("羊城的政务服务大厅周末开门吗", "羊城"),  # a city by its customary name
        ("雄安新区的保障性租赁住房租金怎么定", "雄安新区"),  # a new area, no division of its own
    ],
)
def test_a_place_outside_the_corpus_is_not_covered_and_the_scope_is_said(answerer, question, place):
    answer = answerer.answer(question)
    assert answer.grade == "none" and answer.refused
    assert place in answer.text and "宁夏回族自治区" in answer.text  # says what it does cover
    assert "根据相关规定" not in answer.text and not answer.citations


def test_a_ningxia_place_without_documents_of_its_own_is_not_outside(answerer):
    # 银川 has no document of its own, but the region's documents apply there
    reading = answerer.read("在银川打12345反映问题，几个工作日能办结？")
    assert not reading.outside and reading.answered
    first_line = next(answerer.respond(reading)).text.splitlines()[0]
    assert "5个工作日" in first_line and "重办" not in first_line


@pytest.mark.parametrize("question", ["平罗县的养老服务补贴怎么申领", "盐池县政务服务大厅几点上班", "石嘴山市平罗县的养老服务补贴怎么申领"])
def test_a_county_without_documents_of_its_own_gets_no_answer_but_what_is_related(answerer, question):
    # the corpus holds the region's documents and three districts' and counties', not 平罗县's or 盐池县's
    answer = answerer.answer(question)
    county = "盐池县" if "盐池县" in question else "平罗县"
    assert answer.refused and answer.grade in ("related", "none") and f"没有{county}本地的规定" in answer.text


def test_county_short_names_that_are_ordinary_words_are_no_places():
    assert "新建" not in places_in("今年要新建几个标准化蜂场")
    assert "北京" in places_in("北京的政策")


# -- not a policy question ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "question",
    ["明天银川天气怎么样", "帮我写一段新年祝福语", "这只股票明天会涨吗", "帮我写一首关于政务服务的诗", "你是哪家公司开发的", "用Python写个爬虫给我", "帮我起草一份请假条", "菊花泡水喝能降火吗"],
)
def test_a_request_that_is_no_policy_question_is_not_covered(answerer, question):
    answer = answerer.answer(question)
    assert answer.grade == "none" and answer.refused
    assert "不属于政策咨询" in answer.text


def test_a_cinema_licence_is_a_policy_question(answerer):
    # 电影 asks for films, not in 电影院 or 电影放映单位 (a licence the documents move between bureaus)
    assert answerer.read("想开家电影院，审批找哪个部门").outside == ""


def test_an_arithmetic_looking_document_name_is_still_a_policy_question(answerer):
    assert not answerer.read("37+8责任清单里用电安全由谁牵头").outside


# -- a year the documents do not cover ------------------------------------------------------------
def test_a_year_no_document_covers_is_not_covered(answerer):
    answer = answerer.answer("2019年的政务公开工作要点有哪些重点")
    assert answer.grade == "none" and "2019年" in answer.text


# -- three grades ----------------------------------------------------------------------------------
def test_an_answer_leads_with_the_sentence_that_states_it(answerer):
    answer = answerer.answer("我打12345咨询个政策问题，一般几个工作日能给答复？")
    assert answer.grade == "answer" and not answer.refused
    first_line = answer.text.splitlines()[0]
    assert "2个工作日" in first_line and "[1]" in first_line


@pytest.mark.parametrize("question", ["打12345投诉几天能回复", "通过12345热线投诉，多长时间给我答复"])
def test_a_complaint_question_leads_with_the_complaint_time_limit(answerer, question):
    # 第二十一条: 投诉类工单5个工作日; another plan's "2 个工作日内退回投诉" (a department returning a
    # complaint that is not its own) covers the question as well only through its title
    answer = answerer.answer(question)
    first_line = answer.text.splitlines()[0]
    assert answer.grade == "answer" and "5个工作日" in first_line and "退回" not in first_line


def test_a_question_that_does_not_say_which_kind_leads_with_every_time_limit(answerer):
    # 反映问题 is no one kind of work order: the consultation's 2 days and the complaint's 5 both answer
    answer = answerer.answer("给12345反映个情况，要等几天才有回复")
    first_line = answer.text.splitlines()[0]
    assert "2个工作日" in first_line and "5个工作日" in first_line


def test_fragments_the_question_tells_apart_lead_alone(answerer):
    article = Article(id="t", doc_id="d", label="第一条", path=["第一条"], text="咨询类工单2个工作日内办结，投诉类工单5个工作日内办结。", start=0, end=0)
    quote = answerer.reader.quotes(answerer.reader.analyse("投诉类工单几个工作日办结"), [Hit(article, 1.0)])[0]
    assert quote.lead == "投诉类工单5个工作日内办结"


def test_a_question_no_clause_states_is_related_or_none_and_asserts_nothing(answerer):
    # the 12345 rules say how fast, not what the operators earn
    answer = answerer.answer("12345热线的话务员一个月工资多少钱")
    assert answer.refused and answer.grade in ("related", "none")
    assert "根据相关规定" not in answer.text and "依据的条款原文" not in answer.text
    if answer.grade == "related":
        assert answer.text.startswith("现有文件没有直接规定")


@pytest.mark.parametrize(
    "question",
    [
        "在泾源县申请住房补贴要带哪些材料？",  # no clause lists what to bring
        "大武口区政务服务中心星期天开不开门？",  # none says whether the hall opens on a rest day
        "一张绿票卖多少钱？",  # 万元增加值能耗 holds no sum of money
    ],
)
def test_a_question_asking_for_what_no_clause_names_gets_no_answer(answerer, question):
    answer = answerer.answer(question)
    assert answer.refused and answer.grade in ("related", "none"), answer.text


def test_papers_the_question_names_are_not_its_answer(answerer):
    article = next(a for a in answerer.searcher.corpus_articles if "持证残疾人" in a.text)
    quotes = answerer.reader.quotes(answerer.reader.analyse("办残疾人证需要带什么材料"), [Hit(article, 1.0)])
    assert not any("残疾人证" in q.lead for q in quotes)


def test_a_figure_says_nothing_of_what_it_leaves_out(answerer):
    from qa.judging import FEATURES, feature_rows

    article = next(a for a in answerer.searcher.corpus_articles if "不含公告时间" in a.text)
    query = answerer.reader.analyse("简易注销的公告期是多少天")
    quote = next(q for q in answerer.reader.quotes(query, [Hit(article, 1.0)]) if "不含公告时间" in q.sentence)
    assert quote.lead  # a duration, of the 办结, not of the 公告
    row = feature_rows(query, [quote], answerer.reader, answerer.searcher.cosines.of(query, [quote]))[0]
    assert row[FEATURES.index("focus_in_lead")] < 1.0


def test_grades_are_in_the_json_the_api_returns(answerer):
    data = answerer.answer("北京的住房公积金怎么提取").to_dict()
    assert data["grade"] == "none" and data["refused"] is True


# -- follow-ups by meaning --------------------------------------------------------------------------
HOTLINE_TURNS = [{"role": "user", "content": "打12345咨询问题几天能回复？"}, {"role": "assistant", "content": "咨询类工单2个工作日内办结反馈诉求人。[1]"}]


@pytest.mark.parametrize("question", ["那投诉的呢？", "要带什么材料？", "多久能办好", "那惠农区呢"])
def test_an_elliptic_question_is_a_follow_up(answerer, question):
    assert answerer.is_followup(question)
    assert "12345" in answerer.read(question, HOTLINE_TURNS).standalone


def test_a_bare_phrase_and_ne_is_a_follow_up_about_that_phrase(answerer):
    turns = [{"role": "user", "content": "大武口区暴雨蓝色预警是什么标准？"}, {"role": "assistant", "content": "…"}]
    assert answerer.is_followup("红色的呢？")
    reading = answerer.read("红色的呢？", turns)
    assert "蓝色预警" in reading.standalone and reading.query.focus == ("红色",)


def test_a_follow_up_of_aspect_words_the_corpus_never_uses_still_leans_on_the_question_before(answerer):
    turns = [{"role": "user", "content": "我的小公司没有债务，税也交清了，能走简易注销吗？"}, {"role": "assistant", "content": "…"}]
    answer = answerer.answer("多久能办下来？", turns)
    assert answer.grade == "answer" and "简易注销" in answer.standalone_question
    assert answer.text.startswith("简易注销全流程1个工作日办结")


def test_a_question_leans_on_the_one_before_only_when_its_words_are_in_that_ones_documents(answerer):
    assert answerer.leans_on("红色预警的标准呢", "大武口区暴雨蓝色预警是什么标准")
    assert not answerer.leans_on("我家孩子上学有补贴吗", "打12345咨询问题几天能回复")


@pytest.mark.parametrize("question", ["我家孩子上学有补贴吗", "公租房怎么申请", "森林防火戒严期是几月"])
def test_a_short_question_with_its_own_subject_is_a_new_question(answerer, question):
    assert not answerer.is_followup(question)
    assert answerer.read(question, HOTLINE_TURNS).standalone == question


def test_a_follow_up_that_names_a_place_drops_the_earlier_place(answerer):
    turns = [{"role": "user", "content": "大武口区的森林防火戒严期是什么时候？"}]
    standalone = answerer.read("那惠农区呢", turns).standalone
    assert "惠农区" in standalone and "大武口区" not in standalone


@pytest.mark.parametrize("first", ["给12345打电话问政策，多长时间给答复？", "打12345咨询点事，几天能有回复？"])
def test_an_elliptic_follow_up_leads_with_what_the_clause_that_answered_before_says_of_it(answerer, first):
    # 那投诉的呢？ asks the same of 投诉: 第二十一条's 5 working days, not another plan's 2 days to return
    # a misrouted complaint nor its 1 day to pass one on, whose document's title says 投诉
    turns = [{"role": "user", "content": first}, {"role": "assistant", "content": answerer.answer(first).text}]
    answer = answerer.answer("那投诉的呢？", turns)
    assert answer.grade == "answer"
    assert answer.text.startswith("求助、投诉、举报、建议类工单5个工作日内办结反馈诉求人")


def test_a_follow_up_naming_levels_in_words_finds_them_written_in_roman_numerals(answerer):
    turns = [{"role": "user", "content": "自治区一级应急响应由谁来决定启动？"}, {"role": "assistant", "content": "…"}]
    answer = answerer.answer("那三级的呢？", turns)
    assert answer.grade == "answer" and "Ⅲ级" in answer.text.split("依据的条款原文")[0]


def test_what_a_follow_up_names_may_be_written_apart_in_the_clause(answerer):
    # 市县政府 as people say it, 市、县（区）人民政府 as the plan writes it
    turns = [{"role": "user", "content": "自治区的专项应急预案几年要搞一次演练？"}, {"role": "assistant", "content": "…"}]
    answer = answerer.answer("那市县政府呢？", turns)
    assert answer.grade == "answer" and answer.text.startswith("市、县（区）人民政府及其有关部门每年至少开展一次")


def test_a_bound_answers_how_an_amount_is_set(answerer):
    answer = answerer.answer("保障性租赁住房的租金按什么标准定？")
    assert answer.grade == "answer" and answer.text.startswith("租金低于同地段同品质市场租赁住房租金")


def test_a_follow_up_naming_only_a_place_asks_what_the_turn_before_asked_and_that_places_rule_leads(answerer):
    turns = []
    for question in ("农村卫生厕所普及率到2025年要达到多少？", "生活污水治理率呢？"):
        turns += [{"role": "user", "content": question}, {"role": "assistant", "content": answerer.answer(question, turns).text}]
    answer = answerer.answer("那泾源县呢？", turns)
    # the aspect (生活污水) is the turn before's; 泾源县's own plan (34%) before the region's (40%)
    assert answer.grade == "answer" and answer.text.startswith("农村生活污水治理率达到34%")


def test_a_follow_up_asking_a_thing_of_its_own_does_not_ask_the_kind_the_question_before_asked():
    first = "泾源县事业单位的住房补贴按啥标准算？"  # a basis of calculation
    own = analyse(f"{first} 月标准工资都包括哪几块？", kind_from="月标准工资都包括哪几块？")
    assert own.kind is None  # what it is made of: 包括职务岗位工资…, no rule of calculation
    # an elliptic one asks what the latest question before it asked
    after = analyse(f"{first} 月标准工资都包括哪几块？ 那机关工勤人员呢？", kind_from="那机关工勤人员呢？")
    assert after.kind is None
    assert analyse(f"{first} 那行政机关的呢？", kind_from="那行政机关的呢？").kind.name == "basis"


def test_an_elliptic_follow_ups_aspect_is_what_it_names_that_the_question_before_did_not():
    from qa.query import elliptic_aspect

    assert elliptic_aspect("那农村生活污水呢？", earlier="农村卫生厕所普及率要达到多少？") == ("生活", "污水")
    assert elliptic_aspect("那农村生活污水呢？") == ("农村", "生活")  # alone: the first two it names
    assert elliptic_aspect("那投诉的呢？", earlier="打12345投诉几天能回复？") == ("投诉",)  # nothing new: as named


def test_an_inherited_aspect_is_only_for_a_follow_up_that_names_nothing_but_a_place():
    from qa.query import inherited_aspect

    first, sewage = "农村卫生厕所普及率要达到多少？", "生活污水治理率呢？"
    assert inherited_aspect("那泾源县呢？", [first, sewage]) == ("生活", "污水")
    assert inherited_aspect("那隆德县呢？", [first, sewage, "那泾源县呢？"]) == ("生活", "污水")  # back along the chain
    assert inherited_aspect("那泾源县呢？", [sewage, "农村卫生厕所普及率要达到多少？"]) is None  # stops at a full question
    assert inherited_aspect("那投诉的呢？", [first, sewage]) is None  # names its own aspect
    assert inherited_aspect("泾源县的公租房怎么申请？", [first, sewage]) is None  # not elliptic


def test_a_table_rows_answer_is_quoted_with_the_case_it_is_for(answerer):
    # the exam plan's table: the case (身份证过期) in one cell, what is done in the next
    answer = answerer.answer("惠农区中考，孩子的身份证过期了还让进考场吗？")
    assert answer.grade == "answer" and "先验证考生相貌" in answer.text


def test_unrelated_questions_after_a_follow_up_get_their_own_answers(answerer):
    history = HOTLINE_TURNS + [{"role": "user", "content": "那投诉的呢？"}, {"role": "assistant", "content": "…"}]
    answer = answerer.answer("北京的住房公积金怎么提取", history)
    assert answer.grade == "none" and "投诉" not in answer.standalone_question


# -- the question is analysed once -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("question", "focus"),
    [
        ("饭馆装了燃气报警器，政府给不给补贴？补多少", {"补贴"}),  # the part before, when the asking part has none
        ("企业简易注销，公告期要公示多少天？", {"公告", "公示"}),
        ("我想问一下", set()),  # asks for no kind of answer
        ("安全生产百日专项整治是从什么时候到什么时候", {"整治"}),  # not 是从 / 时候, the asking cut apart
    ],
)
def test_the_focus_is_what_the_kind_of_answer_is_asked_about(question, focus):
    assert set(analyse(question).focus) >= focus and (focus or not analyse(question).focus)


def test_a_count_asked_with_its_measure_wants_a_number_of_that_measure():
    kind = analyse("植树节那天全区一共种了多少棵树").kind
    assert kind.name == "count"
    assert kind.found_by.search("当天栽植各类苗木5万株") and not kind.found_by.search("组织干部职工1500余人参加")
    assert analyse("参加活动的有多少人").kind.found_by.search("组织干部职工1500余人参加")
    # a count without a measure word takes any number, as before
    assert analyse("一共有几个等级").kind.found_by.search("分为3个等级")


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("每年能拿到多少生态补偿转移支付资金", "money"),  # the money noun well after 多少
        ("优秀教师有多少奖金", "money"),
        ("补贴多少天能到账", "duration"),  # 多少天 asks a duration beside a fee
        ("罚款多少", "money"),
        ("报名啥时候开始", "date"),
        ("打算哪年完成验收", "date"),
    ],
)
def test_the_kind_of_answer_asked(question, kind):
    assert analyse(question).kind.name == kind


def test_colloquial_words_of_asking_are_no_content():
    assert "啥时候" not in analyse("自建房排查啥时候开始").words


def test_a_follow_up_that_only_asks_keeps_the_focus_of_the_question_it_follows():
    query = analyse("饭馆装燃气报警器有补贴吗 补多少", kind_from="补多少")
    assert query.kind is not None and "补贴" in query.focus


def test_a_query_carries_what_every_step_needs(settings):
    from qa.keywords import Synonyms

    query = analyse("泾源县2023年住房补贴多久发一次", Synonyms.load(settings.synonyms_file))
    assert isinstance(query, Query)
    assert query.kind_name == "duration" and "泾源县" in query.named_places and query.years == (2023,)
    assert "补贴" in query.tokens and "住房补贴" in query.words


def test_reranking_hands_its_judged_quotes_to_the_answer(answerer):
    query = answerer.reader.analyse("12345热线咨询类工单几个工作日办结")
    ranking = answerer.searcher.rank(query, k=5)
    assert ranking.quotes and {q.hit.article.id for q in ranking.quotes} <= ranking.read
    assert all(q.verdict is not None for q in ranking.quotes) == (answerer.judge is not None)


# -- scope is known from the documents ----------------------------------------------------------------
def test_the_scope_is_read_from_the_documents(answerer):
    scope: Scope = answerer.scope
    assert "宁夏回族自治区" in scope.regions and scope.documents > 10
    assert scope.years and all(2000 < y < 2100 for y in scope.years)
    assert f"{scope.documents} 份" in scope.describe()


def test_an_upload_without_a_masthead_brings_its_region_and_year_from_its_title_and_dates():
    """An admin's upload is often one document, no gazette masthead: its title still names its
    region (石嘴山市惠农区…办法) and its 施行 line a year, so a question naming that region is not
    told "现有文件中没有惠农区本地的规定" about the very document that is its."""
    from qa.config import load_settings
    from qa.corpus import parse_text

    text = "石嘴山市惠农区城市养犬管理办法\n\n惠政发〔2020〕5号\n\n第一条 为规范城市养犬行为，制定本办法。\n\n第二条 本办法自2020年6月1日起施行。\n"
    scope = Scope.of(parse_text(text, "dogs.txt", load_settings()).articles)
    assert scope.regions == ("石嘴山市惠农区",) and "惠农区" in scope.region_names
    assert scope.years == (2020,)
    question = analyse("惠农区2020年的养犬管理办法什么时候施行？")
    assert scope.outside(question, []) == "" and scope.local_elsewhere(question) == []
