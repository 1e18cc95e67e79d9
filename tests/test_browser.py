"""The app as people use it, in headless Chromium (Debian's chromium and chromium-driver, driven by
selenium): a citizen asks in the chat and opens the cited clause; hotline staff search with a filter;
a government page embeds the widget. A screenshot of each is written to test-output/."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytest.register_assert_rewrite("fixtures_web")

from qa.config import PROJECT_ROOT  # noqa: E402
from qa.web.library import FeedbackLog  # noqa: E402

pytest_plugins = ["fixtures_web"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = PROJECT_ROOT / "test-output"
WAIT_S = 90  # an answer on a busy 2-core machine; normally a few seconds
QUESTION = "12345热线的通话录音保存多久？"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("headless Chromium is needed: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1100", "--lang=zh-CN"):
        options.add_argument(argument)
    # The network log shows every request the pages make: none may leave the machine.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    SCREENSHOTS.mkdir(exist_ok=True)
    yield driver
    driver.quit()


def wait_for(driver, condition, timeout: float = WAIT_S):
    """Polls until ``condition`` holds; elements Gradio re-renders meanwhile are looked up again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(condition)


def css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def requested_hosts(driver) -> set[str]:
    hosts = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if url.startswith("http"):
                hosts.add(urlparse(url).hostname)
    return hosts


def ask(driver, question: str, scope: str = "") -> object:
    """Types the question into the chat (Enter sends it) and returns the answer once its cited
    clauses are shown."""
    from selenium.webdriver.common.keys import Keys

    box = wait_for(driver, lambda d: css(d, f"{scope} #qa-question textarea"))[0]
    answers_before = len(css(driver, f"{scope} #qa-chatbot .qa-citation"))
    box.send_keys(question, Keys.ENTER)
    wait_for(driver, lambda d: len(css(d, f"{scope} #qa-chatbot .qa-citation")) > answers_before)
    return css(driver, f"{scope} #qa-chatbot .message-row, {scope} #qa-chatbot [data-testid='bot']")[-1]


def font_size(driver, element) -> float:
    return float(driver.execute_script("return parseFloat(getComputedStyle(arguments[0]).fontSize)", element))


def test_chat_answer_cites_a_clause_that_opens_highlighted_in_the_document(browser, web):
    from selenium.webdriver.common.keys import Keys

    browser.get(web.url + "/")
    # the page says what the documents cover, read from them (regions, years, how many)
    coverage = wait_for(browser, lambda d: [e for e in css(d, "#qa-coverage") if "份政策文件" in e.text])[0]
    assert "宁夏回族自治区" in coverage.text and "年" in coverage.text
    ask(browser, QUESTION)
    bot = browser.find_element("css selector", "#qa-chatbot").text
    assert "[1]" in bot and "2年" in bot

    # The cited clause opens from the keyboard (a native <details>: Enter on its summary).
    citation = css(browser, "#qa-chatbot details.qa-citation")[0]
    summary = citation.find_element("css selector", "summary")
    assert "[1]" in summary.text and "宁政办发〔2022〕30号" in summary.text and "试行" in summary.text
    summary.send_keys(Keys.ENTER)
    wait_for(browser, lambda d: citation.get_attribute("open") is not None)
    clause = citation.find_element("css selector", ".qa-clause-text")
    assert "电话录音至少保存2年" in clause.text
    browser.save_screenshot(str(SCREENSHOTS / "chat.png"))

    # 复制回答及出处 copies the answer and its citations as plain text. (Gradio's own copy button,
    # "Copy message", copied the message's HTML; its label "对话" covered the top of the answers.)
    assert not css(browser, "#qa-chatbot button[aria-label='Copy message'], #qa-chatbot [data-testid='block-label']")
    copy = css(browser, "#qa-chatbot button.qa-copy")[-1]
    assert copy.text == "复制回答及出处"
    copy.click()
    wait_for(browser, lambda d: "已复制" in copy.text)
    copied = browser.execute_script("return window.__qaLastCopied")
    assert copied.startswith(css(browser, "#qa-chatbot .qa-answer-text")[-1].text.split("\n")[0])
    assert "引用的条款：\n[1] 《宁夏回族自治区12345政务服务便民热线运行管理办法（试行）》（宁政办发〔2022〕30号）" in copied
    assert "<" not in copied and "**" not in copied

    # Like: stored with the question, the answer and its citations.
    like = css(browser, "#qa-chatbot button[aria-label='Like'], #qa-chatbot button[title='Like']")[-1]
    like.click()
    log = FeedbackLog(web.settings.data_dir)
    wait_for(browser, lambda d: log.read())
    stored = log.read()[-1]
    assert stored["rating"] == "like" and stored["question"] == QUESTION and stored["page"] == "chat"
    assert stored["answer"]["citations"][0]["n"] == 1 and "[1]" in stored["answer"]["answer"]

    # Large text (适老化) makes the answers bigger; its switch is a compact one at the header's right
    # (it took half the header row: Gradio 6's Checkbox ignores scale=0).
    switch = css(browser, "#qa-large-text")[0]
    assert switch.rect["width"] <= 160 and switch.rect["x"] > browser.execute_script("return window.innerWidth") * 0.75, switch.rect
    before = font_size(browser, clause)
    css(browser, "#qa-large-text input")[0].click()
    wait_for(browser, lambda d: font_size(d, clause) > before * 1.1)
    css(browser, "#qa-large-text input")[0].click()

    # "查看全文" opens the whole document scrolled to the clause, which is highlighted.
    link = citation.find_element("css selector", "a.qa-open-doc")
    windows = set(browser.window_handles)
    link.click()
    wait_for(browser, lambda d: len(d.window_handles) > len(windows))
    browser.switch_to.window((set(browser.window_handles) - windows).pop())
    try:
        marked = wait_for(browser, lambda d: css(d, ".qa-highlight"))[0]
        assert "电话录音至少保存2年" in marked.text
        in_view = browser.execute_script(
            "const r = arguments[0].getBoundingClientRect(); return r.top >= 0 && r.top < window.innerHeight;", marked
        )
        assert in_view, "the page is scrolled to the cited clause"
        browser.save_screenshot(str(SCREENSHOTS / "document.png"))
    finally:
        browser.close()
        browser.switch_to.window(windows.pop())
    assert requested_hosts(browser) <= {"127.0.0.1"}


@pytest.fixture()
def stingy(web):
    """The same loaded index served with a rate limit that does not refill during the test (a
    request a minute past a burst of 20): the browser and this test are both 127.0.0.1."""
    from fixtures_web import serve_again

    running = serve_again(web, rate_limit_per_minute=1, rate_limit_burst=20)
    yield running
    running.stop()


def test_a_question_past_the_rate_limit_is_told_so_in_the_chat_not_in_an_error_box(browser, stingy):
    import httpx
    from selenium.webdriver.common.keys import Keys

    from qa.web.guard import TOO_MANY_REQUESTS

    browser.get(stingy.url + "/")
    box = wait_for(browser, lambda d: css(d, "#qa-question textarea"))[0]
    with httpx.Client(base_url=stingy.url, timeout=30) as session:  # use up this address's allowance
        assert any(session.get("/api/documents").status_code == 429 for _ in range(30))
    box.send_keys(QUESTION, Keys.ENTER)
    bot = wait_for(browser, lambda d: [m for m in css(d, "#qa-chatbot [data-testid='bot']") if TOO_MANY_REQUESTS in m.text])[-1]
    assert bot.text.strip() == TOO_MANY_REQUESTS
    assert QUESTION in css(browser, "#qa-chatbot [data-testid='user']")[-1].text
    browser.save_screenshot(str(SCREENSHOTS / "rate-limited.png"))
    # Gradio's error toast and its "Error" over the chat and the question box stay away.
    assert not css(browser, "[data-testid='toast-body'], #qa-chatbot .error, #qa-question .error")
    assert "Error" not in browser.find_element("css selector", "body").text


def test_follow_up_question_is_answered_in_context_and_can_be_disliked(browser, web):
    browser.get(web.url + "/")
    ask(browser, "森林防火戒严期是什么时候？")
    ask(browser, "那要注意什么？")
    answers = css(browser, "#qa-chatbot .qa-citation")
    assert "防火" in answers[-1].get_attribute("textContent"), "the follow-up is about the fire ban period"

    dislike = css(browser, "#qa-chatbot button[aria-label='Dislike'], #qa-chatbot button[title='Dislike']")[-1]
    dislike.click()
    log = FeedbackLog(web.settings.data_dir)
    wait_for(browser, lambda d: any(line["question"] == "那要注意什么？" for line in log.read()))
    stored = log.read()[-1]
    assert stored["rating"] == "dislike" and "森林防火戒严期" in stored["answer"]["standalone_question"]


def test_search_desk_with_a_region_filter_highlights_and_copies(browser, web):
    from selenium.webdriver.common.keys import Keys

    browser.get(web.url + "/")
    wait_for(browser, lambda d: css(d, "button[role='tab']"))
    next(tab for tab in css(browser, "button[role='tab']") if "条款检索" in tab.text).click()
    query = wait_for(browser, lambda d: [e for e in css(d, "#qa-search-query textarea") if e.is_displayed()])[0]
    query.send_keys("防汛 值班")
    region = css(browser, "#qa-filter-region input")[0]
    region.click()
    option = wait_for(browser, lambda d: [o for o in css(d, "#qa-filter-region [role='option']") if "大武口区" in o.text])
    option[0].click()
    css(browser, "#qa-search-button")[0].click()
    hits = wait_for(browser, lambda d: css(d, "#qa-search-results .qa-hit"))
    assert len(hits) >= 3
    for hit in hits:
        assert "大武口区" in hit.find_element("css selector", ".qa-meta").text
    marks = [m.text for m in css(browser, "#qa-search-results mark")]
    assert "防汛" in marks and "值班" in marks

    copy = hits[0].find_element("css selector", "button.qa-copy")
    copy.click()
    wait_for(browser, lambda d: "已复制" in copy.text)
    copied = browser.execute_script("return window.__qaLastCopied")
    assert copied.startswith(hits[0].find_element("css selector", ".qa-clause-text").text[:10])
    assert "——《" in copied
    browser.save_screenshot(str(SCREENSHOTS / "search.png"))

    # A named article is looked up directly (all regions again).
    region.click()
    wait_for(browser, lambda d: [o for o in css(d, "#qa-filter-region [role='option']") if "全部" in o.text])[0].click()
    query.send_keys(Keys.CONTROL, "a")
    query.send_keys("12345热线管理办法第二十一条", Keys.ENTER)
    wait_for(browser, lambda d: css(d, "#qa-search-results .qa-badge"))
    assert "第二十一条" in css(browser, "#qa-search-results .qa-hit")[0].text


def test_example_host_page_embeds_the_widget(browser, web, host_site):
    browser.get(f"{host_site.url}/host-page.html?app={web.url}")
    frame = wait_for(browser, lambda d: css(d, "#qa-widget-frame"))[0]

    # The iframe: the page's subject travels as ?context= and is shown above the chat.
    browser.switch_to.frame(frame)
    try:
        title = wait_for(browser, lambda d: [e for e in css(d, "#qa-widget-title") if "正在咨询" in e.text])[0]
        assert "12345政务服务便民热线运行管理办法" in title.text
        assert not css(browser, "button[role='tab']"), "the widget is chat only"
        assert wait_for(browser, lambda d: [e for e in css(d, "#qa-coverage") if "份政策文件" in e.text])
        ask(browser, "通话录音保存多久？")
        assert "[1]" in css(browser, "#qa-chatbot")[0].text
    finally:
        browser.switch_to.default_content()
    browser.execute_script("arguments[0].scrollIntoView()", frame)
    browser.save_screenshot(str(SCREENSHOTS / "widget-iframe.png"))

    # The <gradio-app> web component, its script from the app itself.
    component = "#qa-widget-component gradio-app"
    title = wait_for(browser, lambda d: [e for e in css(d, f"{component} #qa-widget-title") if "正在咨询" in e.text])[0]
    assert "12345政务服务便民热线运行管理办法" in title.text
    ask(browser, "热线工作人员的通话要录音吗，录音保存几年？", scope=component)
    assert "[1]" in css(browser, f"{component} #qa-chatbot")[0].text
    browser.execute_script("arguments[0].scrollIntoView()", css(browser, component)[0])
    browser.save_screenshot(str(SCREENSHOTS / "widget-component.png"))
    assert requested_hosts(browser) <= {"127.0.0.1"}


def choose(driver, dropdown_id: str, text: str) -> None:
    """Opens a Gradio dropdown and clicks the option that contains ``text``."""
    css(driver, f"#{dropdown_id} input")[0].click()
    wait_for(driver, lambda d: [o for o in css(d, f"#{dropdown_id} [role='option']") if text in o.text])[0].click()


def open_tab(driver, name: str) -> None:
    wait_for(driver, lambda d: css(d, "button[role='tab']"))
    next(tab for tab in css(driver, "button[role='tab']") if name in tab.text).click()


def test_document_browser_lists_a_region_and_opens_a_document(browser, web):
    browser.get(web.url + "/")
    open_tab(browser, "文件浏览")
    wait_for(browser, lambda d: len(css(d, "#qa-document-list tbody tr")) > 40)
    choose(browser, "qa-browse-region", "惠农区")
    wait_for(browser, lambda d: all("惠农区" in row.text for row in css(d, "#qa-document-list tbody tr")))
    dates = [row.find_element("css selector", "td").text for row in css(browser, "#qa-document-list tbody tr")]
    assert dates == sorted(dates, reverse=True), "newest first"
    choose(browser, "qa-browse-document", "自建房屋安全隐患大排查大整治行动方案")
    title = wait_for(browser, lambda d: [h for h in css(d, "#qa-document-view h1") if "自建房屋" in h.text])[0]
    assert "惠政办发〔2022〕31号" in css(browser, "#qa-document-view .qa-doc-facts")[0].text
    assert len(css(browser, "#qa-document-view .qa-article")) == 13
    facts = css(browser, "#qa-document-view .qa-doc-facts")[0]
    assert browser.execute_script("return getComputedStyle(arguments[0]).display", facts) == "grid", "文号 beside its label"
    browser.execute_script("arguments[0].scrollIntoView()", title)
    browser.save_screenshot(str(SCREENSHOTS / "documents.png"))


ADMIN_UPLOAD = """石嘴山市惠农区城市犬只管理规定

惠政规〔2021〕3号

第一条 为加强城市犬只管理，制定本规定。

第二条 城区内每户限养一只犬，不得饲养烈性犬。

第三条 本规定自2021年3月1日起施行。
"""


def test_admin_tab_refuses_a_wrong_token_then_adds_and_removes_an_upload(browser, web, tmp_path):
    import time

    from selenium.webdriver.common.keys import Keys

    from fixtures_web import ADMIN_TOKEN, corpus_state

    upload = tmp_path / "惠农区犬只管理规定.txt"
    upload.write_bytes(ADMIN_UPLOAD.encode("gbk"))
    before = corpus_state(web.settings)
    browser.get(web.url + "/")
    open_tab(browser, "管理")
    token = wait_for(browser, lambda d: [e for e in css(d, "#qa-admin-token input") if e.is_displayed()])[0]

    # The corpus files are listed for the token only (as GET /api/admin/files is).
    def listed_files(driver) -> list[str]:
        dropdown = css(driver, "#qa-admin-files input")[0]
        dropdown.click()
        options = [o.get_attribute("aria-label") or o.text for o in css(driver, "#qa-admin-files [role='option']")]
        dropdown.send_keys(Keys.ESCAPE)  # closes the list again
        return options

    assert listed_files(browser) == []
    token.send_keys("not-the-token", Keys.ENTER)
    time.sleep(1)
    assert listed_files(browser) == []
    token.clear()
    token.send_keys(ADMIN_TOKEN, Keys.ENTER)
    wait_for(browser, lambda d: any(before[0][0] in o for o in listed_files(d)))
    token.clear()

    # Without the right token the file does not even reach the server (the upload needs it too).
    uploads = Path(web.app.state.upload_dir)
    stored_before = sorted(uploads.rglob("*"))
    token.send_keys("not-the-token")
    css(browser, "#qa-admin-upload input[type='file']")[0].send_keys(str(upload))
    time.sleep(2)
    assert upload.stem not in css(browser, "#qa-admin-upload")[0].text
    assert sorted(uploads.rglob("*")) == stored_before
    token.clear()
    token.send_keys(ADMIN_TOKEN)
    css(browser, "#qa-admin-upload input[type='file']")[0].send_keys(str(upload))
    wait_for(browser, lambda d: upload.stem in css(d, "#qa-admin-upload")[0].text)
    # Uploaded, then the token changed: adding is refused.
    token.clear()
    token.send_keys("not-the-token")
    css(browser, "#qa-admin-add")[0].click()
    wait_for(browser, lambda d: "管理令牌不正确" in css(d, "#qa-admin-status")[0].text)
    assert corpus_state(web.settings) == before

    token.clear()
    token.send_keys(ADMIN_TOKEN)
    css(browser, "#qa-admin-preview")[0].click()
    wait_for(browser, lambda d: "石嘴山市惠农区城市犬只管理规定" in css(d, "#qa-admin-found")[0].text)
    assert corpus_state(web.settings) == before, "a preview changes nothing"
    css(browser, "#qa-admin-add")[0].click()
    wait_for(browser, lambda d: "已加入" in css(d, "#qa-admin-status")[0].text)
    assert (web.settings.corpus_dir / upload.name).exists()
    hits = web.app.state.library.searcher.search("每户限养一只犬", k=1)
    assert hits[0].article.document.source_file == upload.name
    browser.save_screenshot(str(SCREENSHOTS / "admin.png"))

    choose(browser, "qa-admin-files", upload.name)
    css(browser, "#qa-admin-remove")[0].click()
    wait_for(browser, lambda d: "已删除" in css(d, "#qa-admin-status")[0].text)
    assert corpus_state(web.settings)[0] == before[0]
