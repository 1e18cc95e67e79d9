"""The main page's named events, called with ``gradio_client`` against the whole app served on
127.0.0.1, as another program would: ``ask`` and ``search`` (plain text and structured
citations), and the desk's ``desk_search`` with filters passed directly."""

from __future__ import annotations

import html
import re

import httpx
import pytest

pytest.register_assert_rewrite("fixtures_web")

from fixtures_web import serve_again  # noqa: E402

pytest_plugins = ["fixtures_web"]

HOTLINE = "打12345咨询问题几天能回复？"


@pytest.fixture(scope="module")
def client(web):
    from gradio_client import Client

    return Client(f"{web.url}/", verbose=False, download_files=False)


def test_the_events_programs_use_are_named(client):
    named = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/ask", "/search_clauses", "/chat", "/desk_search", "/filter_choices", "/coverage"} <= named
    assert not any(name.startswith("/lambda") or name.startswith("/_") for name in named)


def test_ask_gives_plain_text_and_structured_citations(client):
    answer = client.predict(HOTLINE, None, "", api_name="/ask")
    assert answer["grade"] == "answer" and answer["refused"] is False
    assert "2个工作日内办结" in answer["answer"] and "<" not in answer["answer"]
    assert answer["citations"][0]["n"] == 1 and "12345" in answer["citations"][0]["doc_title"]


def test_ask_takes_the_conversation(client):
    first = client.predict(HOTLINE, None, "", api_name="/ask")
    history = [{"role": "user", "content": HOTLINE}, {"role": "assistant", "content": first["answer"]}]
    follow_up = client.predict("那投诉的呢？", history, "", api_name="/ask")
    assert follow_up["grade"] == "answer"
    assert any("投诉" in c["text"] for c in follow_up["citations"])


def test_a_question_outside_the_documents_is_refused(client):
    answer = client.predict("北京的住房公积金怎么提取", None, "", api_name="/ask")
    assert answer["refused"] is True and answer["grade"] == "none"


def test_search_takes_filters_directly(client):
    everything = client.predict("政务公开工作要点", "", "", "", None, 20, api_name="/search_clauses")
    regions = {hit["region"] for hit in everything["hits"]}
    assert len(regions) > 1
    one = sorted(regions)[0]
    filtered = client.predict("政务公开工作要点", one, "", "", None, 20, api_name="/search_clauses")
    assert filtered["hits"] and {hit["region"] for hit in filtered["hits"]} == {one}


def test_the_desk_search_takes_a_region_without_loading_the_choices_first(client):
    everything = client.predict("政务公开工作要点", "", "", "", None, 20, api_name="/search_clauses")
    region = everything["hits"][0]["region"]
    html = client.predict("政务公开工作要点", region, "", "", "", api_name="/desk_search")
    assert "not in the list of choices" not in html and region in html


def reply_scripts(page: str) -> list[str]:
    """The 答复口径 each hit of the desk's results would copy."""
    return [html.unescape(v) for v in re.findall(r'class="qa-copy" value="([^"]*)">复制答复口径', page)]


def test_the_desk_reply_script_quotes_the_item_that_answers_not_the_whole_article(client):
    scripts = reply_scripts(client.predict("12345热线咨询类工单几个工作日内办结", "", "", "", "", api_name="/desk_search"))
    assert "第二十一条的规定：“咨询类工单2个工作日内办结反馈诉求人" in scripts[0]
    assert "接诉即办" not in scripts[0]  # item (一) of the same article
    # an article looked up by name is read out whole
    whole = reply_scripts(client.predict("12345热线管理办法第二十一条", "", "", "", "", api_name="/desk_search"))[0]
    assert "接诉即办" in whole and "咨询类工单2个工作日内办结" in whole


def test_an_empty_question_is_a_clear_error(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="问题"):
        client.predict("   ", None, "", api_name="/ask")


def test_programs_are_held_to_the_rate_limit(web):
    from gradio_client import Client

    running = serve_again(web, rate_limit_per_minute=1, rate_limit_burst=6)
    try:
        limited = Client(f"{running.url}/", verbose=False, download_files=False)
        with pytest.raises(httpx.HTTPStatusError) as caught:
            for _ in range(10):
                limited.predict(HOTLINE, None, "", api_name="/ask")
        assert caught.value.response.status_code == 429
    finally:
        running.stop()
