"""A document that contains markup (<script>, an <img> with onerror, <b>) is shown as text
everywhere a browser shows it — the chat's answer and cited clause, the document page, the staff
search desk — and none of it runs. Headless Chromium, as in tests/test_browser.py."""

from __future__ import annotations

import httpx
import pytest

pytest.register_assert_rewrite("fixtures_web")

from fixtures_web import ADMIN_TOKEN  # noqa: E402
from test_browser import SCREENSHOTS, ask, browser, css, open_tab, wait_for  # noqa: E402, F401

pytest_plugins = ["fixtures_web"]

MARKUP_NAME = "惠农区政府网站内容管理办法.txt"
SCRIPT = "<script>window.__qaInjected=1</script>"
IMAGE = '<img src=x onerror="window.__qaInjected=2">'
MARKUP = f"""惠农区政府网站内容管理办法

惠政发〔2024〕8号

第一条 网站发布的宣传材料中不得出现{SCRIPT}等脚本代码。

第二条 网页中的<b>加粗</b>和{IMAGE}等标记应按原样显示，不得执行。

第三条 本办法自2024年3月1日起施行。
"""
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def markup_document(web):
    """The document added through the admin API for this module, removed after it."""
    with httpx.Client(base_url=web.url, timeout=300, headers=ADMIN) as client:
        added = client.post("/api/admin/files", files={"file": (MARKUP_NAME, MARKUP.encode("utf-8"), "text/plain")})
        assert added.status_code == 200, added.text
        yield added.json()["added"]["documents"][0]
        assert client.delete(f"/api/admin/files/{MARKUP_NAME}").status_code == 200


def nothing_ran(driver) -> None:
    assert driver.execute_script("return typeof window.__qaInjected") == "undefined", "the document's markup ran"


def test_markup_in_a_cited_clause_is_shown_as_text(browser, web, markup_document):
    browser.get(web.url + "/")
    ask(browser, "网站宣传材料中不得出现什么代码？")
    citation = css(browser, "#qa-chatbot details.qa-citation")[0]
    citation.find_element("css selector", "summary").click()
    wait_for(browser, lambda d: citation.get_attribute("open") is not None)
    clause = citation.find_element("css selector", ".qa-clause-text")
    assert SCRIPT in clause.text, clause.text
    assert SCRIPT in css(browser, "#qa-chatbot")[0].text, "the answer quotes it as text too"
    assert not css(browser, "#qa-chatbot script, #qa-chatbot img[src='x']")
    nothing_ran(browser)
    browser.save_screenshot(str(SCREENSHOTS / "markup-chat.png"))


def test_markup_in_the_document_page_and_the_search_desk_is_shown_as_text(browser, web, markup_document):
    browser.get(f"{web.url}/doc/{markup_document['id']}")
    body = wait_for(browser, lambda d: [e for e in css(d, "main") if "第二条" in e.text])[0]
    assert SCRIPT in body.text and IMAGE in body.text and "<b>加粗</b>" in body.text
    assert not css(browser, "main script, main img, main b")
    nothing_ran(browser)

    browser.get(web.url + "/")
    open_tab(browser, "条款检索")
    query = wait_for(browser, lambda d: [e for e in css(d, "#qa-search-query textarea") if e.is_displayed()])[0]
    query.send_keys("网页中的标记应按原样显示")
    css(browser, "#qa-search-button")[0].click()
    hit = wait_for(browser, lambda d: [h for h in css(d, "#qa-search-results .qa-hit") if "按原样显示" in h.text])[0]
    assert IMAGE in hit.text
    assert not css(browser, "#qa-search-results img, #qa-search-results script")
    nothing_ran(browser)
    browser.save_screenshot(str(SCREENSHOTS / "markup-search.png"))


def test_markdown_in_the_widget_context_is_shown_as_text(browser, web):
    """?context= comes from whoever wrote the address: a link or an image in it stays text (a
    crafted address cannot put a phishing link or a tracking image into the widget)."""
    from urllib.parse import quote

    context = "[点此领取补贴](http://evil.example/) ![t](http://evil.example/t.png) **粗体**"
    browser.get(f"{web.url}/widget?context={quote(context)}")
    title = wait_for(browser, lambda d: [e for e in css(d, "#qa-widget-title") if "正在咨询" in e.text])[0]
    assert context in title.text
    assert not title.find_elements("css selector", "a, img, strong")
