"""Splitting a gazette into documents, on a small hand-written gazette."""

from qa.documents import split_documents

GAZETTE = """宁夏回族自治区
人民政府公报

2022 年 第 9 期

目 录

自治区人民政府办公厅关于印发测试办法的通知
(宁政办发〔2022〕30号)…………… (24)

自治区人民政府办公厅
关于印发测试办法（试行）的通知

宁政办发〔2022〕30号

各市、县（区）人民政府：

现将《测试办法（试行）》印发给你们，请认真贯彻执行。2013年印发的《旧测试办法》（宁政办发〔2013〕1号）同时废止。

宁夏回族自治区人民政府办公厅

2022年4月27日

（此件公开发布）

测试办法（试行）

第一条 为规范热线，制定本办法。
第二条 本办法自2022年6月1日起施行。

自治区人民政府办公厅关于做好热线工作的通知

宁政办函〔2022〕25 号

各市、县（区）人民政府：
一、提高认识。要高度重视。

宁夏回族自治区人民政府办公厅

2022年8月5日

测试区政府五月份大事记

5月1日，召开会议。
"""


def test_documents_are_found_and_the_masthead_is_not_one():
    docs = split_documents(GAZETTE, "g.txt")
    assert [d.doc_number for d in docs] == ["宁政办发〔2022〕30号", "宁政办函〔2022〕25号", ""]
    assert docs[2].title == "测试区政府五月份大事记"


def test_notice_issuing_a_plan_takes_the_plan_title():
    doc = split_documents(GAZETTE, "g.txt")[0]
    assert doc.title == "测试办法（试行）"
    assert doc.notice_title == "自治区人民政府办公厅关于印发测试办法（试行）的通知"
    assert doc.issuer == "宁夏回族自治区人民政府办公厅"
    assert doc.date == "2022-04-27"
    assert doc.trial
    assert doc.effective_date == "2022-06-01"
    assert doc.repeals == ["《旧测试办法》（宁政办发〔2013〕1号）"]
    assert doc.region == "宁夏回族自治区"
    assert doc.gazette == "宁夏回族自治区人民政府公报 2022年第9期"


def test_notice_without_a_plan_keeps_its_own_title():
    doc = split_documents(GAZETTE, "g.txt")[1]
    assert doc.title == "自治区人民政府办公厅关于做好热线工作的通知"
    assert doc.notice_title == ""
    assert doc.date == "2022-08-05"


def test_offsets_cover_each_document():
    docs = split_documents(GAZETTE, "g.txt")
    assert GAZETTE[docs[0].start:].startswith("自治区人民政府办公厅\n关于印发")
    assert docs[0].end <= docs[1].start


def test_a_plain_file_is_one_document():
    text = "关于做好防汛工作的通知\n\n一、加强值班。\n二、及时报告。\n"
    docs = split_documents(text, "plain.txt")
    assert len(docs) == 1 and docs[0].title == "关于做好防汛工作的通知" and docs[0].start == 0
