"""Article splitting rules, each on a small hand-written text."""

from qa.articles import assemble, cut_into_parts, match_heading, sentences, sentences_with_cases, split_articles
from qa.models import Document
from qa.text import cn_to_int, compact, int_to_cn, split_lines, strip_markup


def articles_of(text: str, target: int = 600, max_chars: int = 1200):
    doc = Document(id="d1", source_file="t.txt", title="测试办法", start=0, end=len(text))
    return split_articles(doc, text, target_chars=target, max_chars=max_chars)


MEASURES = """第一章 总 则
第一条 为规范热线运行，制定本办法。
第二条 热线受理企业和群众诉求。依照本办法第五条
第五条规定的情形除外。
第二章 工作流程
第三条 宁夏 12345 热线运行管理适用本办法，法律、法规另有规定的从其规定。
第四条 办理反馈：
（一）一般诉求5个工作日内办结。
（二）延期最多2次，每次不超过5个工作日。
"""


def test_each_numbered_article_is_one_unit_with_its_chapter_in_the_path():
    articles = articles_of(MEASURES)
    labels = [a.label for a in articles]
    assert labels == ["第一条", "第二条", "第三条", "第四条"]
    fourth = articles[-1]
    assert fourth.path == ["第二章 工作流程", "第四条"]
    assert "（二）延期最多2次" in fourth.text


def test_cross_reference_at_line_start_is_not_a_heading():
    second = articles_of(MEASURES)[1]
    assert "第五条规定的情形除外" in second.text


def test_heading_with_body_on_the_same_line_is_one_article():
    third = articles_of(MEASURES)[2]
    assert third.label == "第三条"
    # The chapter heading travels with its first article; the article's own line is kept whole.
    assert third.text.splitlines() == ["第二章 工作流程", "第三条 宁夏 12345 热线运行管理适用本办法，法律、法规另有规定的从其规定。"]


PLAN = """一、总体要求
坚持问题导向。
二、主要任务
（一）强化热线管理。
1. 整合热线。将未纳入 12345 热线平台统一管理

的热线做好归并工作。
2. 规范办理。按时办结。
（二）加强知识库建设。
完善知识库。
三、保障措施
（一）加强组织领导。各地要高度重视。
"""


def test_plan_sections_nest_and_keep_the_heading_path():
    articles = articles_of(PLAN, target=20)
    paths = [a.path for a in articles]
    assert ["二、主要任务", "（一）强化热线管理", "1.整合热线"] in paths
    assert ["三、保障措施", "（一）加强组织领导"] in paths


def test_short_section_stays_whole():
    articles = articles_of(PLAN, target=600)
    assert [a.label for a in articles] == ["一、", "二、", "三、"]


def test_sentence_cut_by_a_page_break_continues():
    articles = articles_of(PLAN, target=20)
    merged = next(a for a in articles if "整合热线" in a.text)
    assert "统一管理的热线做好归并工作" in merged.text


def test_intro_heading_travels_with_its_first_subsection():
    articles = articles_of(PLAN, target=20)
    first_task = next(a for a in articles if a.path[-1] == "1.整合热线")
    assert first_task.text.startswith("二、主要任务")


def test_numbering_must_run_on():
    # One skipped number is tolerated (gazettes skip numbers); a larger jump is body text.
    text = "一、总则\n内容。\n五、这不是标题因为中间缺了三个\n（二）也不是。\n"
    articles = articles_of(text, target=5)
    assert [a.label for a in articles] == ["一、"]
    assert "五、这不是标题" in articles[0].text and "（二）也不是" in articles[0].text


def test_dotted_numbering():
    text = "1 总则\n说明。\n1.1 适用范围。\n本预案适用。\n1.2 工作原则。\n坚持人民至上。\n2 组织体系\n2.1 领导机构。\n设立委员会。\n"
    articles = articles_of(text, target=10)
    assert [a.path for a in articles][-1] == ["2 组织体系", "2.1 领导机构"]
    assert [a.label for a in articles] == ["1.1", "1.2", "2.1"]
    assert articles[0].text.startswith("1 总则\n说明。\n1.1 适用范围。")


def test_table_rows_stay_with_their_heading():
    rows = "\n".join(f"{n}\t事项{n}\t区审批局\t" for n in range(1, 6))
    text = f"一、任务分工\n{rows}\n二、工作要求\n按时完成。\n"
    articles = articles_of(text, target=10)
    assert articles[0].label == "一、"
    assert "5\t事项5\t区审批局" in articles[0].text


def test_long_clause_is_cut_at_sentence_ends_into_parts_under_the_same_path():
    sentence = "各级热线管理机构应当加强数据管理，确保数据安全。"
    text = "第一条 " + sentence * 120 + "\n"
    articles = articles_of(text, max_chars=1200)
    assert len(articles) > 1
    assert all(len(a.text) <= 1200 for a in articles)
    assert all(a.label == "第一条" and a.path == ["第一条"] for a in articles)
    assert [a.part for a in articles] == list(range(1, len(articles) + 1))
    assert all(a.text.endswith("。") for a in articles)
    assert compact("".join(a.text for a in articles)) == compact(text)


def test_cut_into_parts_handles_a_sentence_longer_than_a_part():
    spans = cut_into_parts("字" * 2500, 1200)
    assert all(b - a <= 1200 for a, b in spans) and spans[-1][1] == 2500


def test_page_numbers_are_dropped():
    text = "一、总体要求\n坚持问题导向，\n— 12 —\n推动工作落实。\n"
    article = articles_of(text)[0]
    assert "12" not in article.text
    assert "坚持问题导向，推动工作落实。" in article.text or "坚持问题导向，\n推动工作落实。" in article.text


def test_offsets_map_back_to_the_source():
    articles = articles_of(PLAN, target=20)
    for article in articles:
        assert compact(article.text)[:8] == compact(PLAN[article.start:article.end])[:8]


# A form and a plan as some source files hold them: HTML tick boxes and paragraph tags, Markdown
# bold, and a web address in angle brackets (text, not markup).
MARKED = """一、检查内容
（一）**强化组织领导。**各乡镇要高度重视，明确任务。**
（二）安全检查
用气设备\t<input type="checkbox"/> 燃气灶具； <input type="checkbox"/> 热水器；
安全管理\t符合 <input type="checkbox"/> 不符合 <input type="checkbox"/>\t按要求整改
<p>深化信息公开</p>\t<p>及时公开。</p>
**
网址：<http://www.dwk.gov.cn>
"""


def test_markup_is_cut_out_of_article_text_and_paths_without_moving_boundaries():
    articles = articles_of(MARKED, target=20)
    for article in articles:
        assert "<input" not in article.text and "<p>" not in article.text and "**" not in article.text
        assert not any("**" in step for step in article.path)
    assert [a.path for a in articles] == [["一、检查内容", "（一）强化组织领导"], ["一、检查内容", "（二）安全检查"]]
    assert articles[0].text == "一、检查内容\n（一）强化组织领导。各乡镇要高度重视，明确任务。"
    assert articles[1].text.splitlines()[1:] == [
        "用气设备\t燃气灶具； 热水器；",
        "安全管理\t符合 不符合\t按要求整改",
        "深化信息公开\t及时公开。",
        "网址：<http://www.dwk.gov.cn>",
    ]
    # other tags are a document's own text (a rule on web pages may quote them)
    assert strip_markup("不得出现<script>等代码，<b>加粗</b>按原样显示") == "不得出现<script>等代码，<b>加粗</b>按原样显示"
    # texts are compared without markup (a gold quote copied with its ** still matches)
    assert compact("（**牵头领导：**李静）") == compact("（牵头领导：李静）")
    # the same articles (labels, paths, parts) as the text without its markup
    clean = "\n".join(strip_markup(line.text) for line in split_lines(MARKED))
    assert [(a.label, a.path, a.part) for a in articles_of(clean, target=20)] == [(a.label, a.path, a.part) for a in articles]


def test_offsets_skip_the_markup_and_still_point_into_the_source():
    articles = articles_of(MARKED, target=20)
    for article in articles:
        assert MARKED[article.start] == article.text[0] and MARKED[article.end - 1] == article.text[-1]
    # the first article ends before the ** that closes its line
    assert MARKED[articles[0].end :].startswith("**\n（二）")
    # every character of the text, bar the line breaks put between lines, is where the map says
    assembled = assemble(split_lines(MARKED), frozenset())
    assert "<" in assembled.text  # the web address
    for pos, char in enumerate(assembled.text):
        if char != "\n":
            assert MARKED[assembled.source_offset(pos)] == char, (pos, char)


def test_heading_shapes():
    assert match_heading("第二十一条 办理反馈：").label == "第二十一条"
    assert match_heading("（三）强化督办。").title == "（三）强化督办"
    assert match_heading("- (一) 因建议没有得到采纳").label == "（一）"
    assert match_heading("3.2.2 预警。").label == "3.2.2"
    assert match_heading("序号\t事项") is None
    assert match_heading("2022年5月") is None


def test_chinese_numerals_round_trip():
    for n in (1, 10, 11, 20, 21, 99, 100, 103, 110, 120):
        assert cn_to_int(int_to_cn(n)) == n
    assert cn_to_int("二十一") == 21 and int_to_cn(43) == "四十三"


def test_a_long_table_is_cut_between_rows_not_inside_one():
    # a row's cells hold full stops; cutting there would part a task from its 牵头单位 cell
    row = "{n}\t抓好社会保障信息公开\t加密重点民生政策推送，提高信息公开覆盖度。\t查看网站发布情况。\t民政局、医疗保障局\n"
    text = "".join(row.format(n=n) for n in range(1, 40))
    spans = cut_into_parts(text, 600)
    assert len(spans) > 1
    for start, end in spans:
        part = text[start:end]
        assert part.endswith("\n") or end == len(text)
        assert all(line.endswith("医疗保障局") for line in part.splitlines())


def test_a_table_rows_case_is_one_sentence_with_the_first_thing_done_about_it():
    row = "2.考生忘带准考证或身份证。\t先验证考生相貌，可先允许入场参加考试。同时报告考点主考。\t掌握情况，做好记录。\n"
    assert sentences(row + "下一段的句子。还有一句话。") == [
        "2.考生忘带准考证或身份证。\t先验证考生相貌，可先允许入场参加考试。",
        "同时报告考点主考。",
        "掌握情况，做好记录。",
        "下一段的句子。",
        "还有一句话。",
    ]
    # a line without cells is split as before
    assert sentences("第一句话。第二句话；第三句话") == ["第一句话。", "第二句话；", "第三句话"]


def test_the_later_sentences_of_a_table_row_are_said_of_its_case():
    row = "17.考生发生晕场、疾病等情况。\t报告考点主考。不能继续考试的,允许其退场治疗。\t所误时间不补。\n下一段的句子。"
    assert sentences_with_cases(row) == [
        ("17.考生发生晕场、疾病等情况。\t报告考点主考。", ""),  # holds its case itself
        ("不能继续考试的,允许其退场治疗。", "17.考生发生晕场、疾病等情况。"),
        ("所误时间不补。", "17.考生发生晕场、疾病等情况。"),
        ("下一段的句子。", ""),
    ]
