"""Answer figures: what counts as an answer showing the gold quote."""

from qa.evaluate import shows_gold
from qa.models import Answer


def answer(text: str) -> Answer:
    return Answer(question="q", text=text, refused=False)


def test_answer_shows_the_gold_quote_in_its_own_text_whatever_the_spacing():
    shown = answer("电话录音至少保存 2 年。[1]\n依据的条款原文：…")
    assert shows_gold(shown, ["电话录音至少保存2年"])
    assert not shows_gold(answer("根据相关规定：按要求进行归档。[1]"), ["电话录音至少保存2年"])


def test_a_gold_quote_longer_than_one_sentence_is_shown_by_its_opening():
    quote = "承办单位应当自收到工单之日起5个工作日内办结。情况复杂的，经批准可以延长。"
    assert shows_gold(answer("第五条：“承办单位应当自收到工单之日起5个工作日内办结。”[1]"), [quote])
    assert not shows_gold(answer("第五条：“情况复杂的，经批准可以延长。”[1]"), [quote])
