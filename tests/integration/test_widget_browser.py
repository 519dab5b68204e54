"""The chat widget in a real headless Chromium, against the real query API served over HTTP.

The API runs in a thread (werkzeug, as `cmsrag serve` does) over the session's PostgreSQL with one indexed page;
the answering model is a fake OpenAI-compatible server that streams a word every few tens of milliseconds, so
the test can watch the answer grow. Needs Debian's `chromium` + `chromium-driver` and `selenium`: missing, the
tests skip locally and fail under CI=true. Every wait is explicit, with a timeout; nothing sleeps.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from services.cli.app import App
from services.embedder.pipeline import Pipeline
from shared.models import DocRef
from shared.query_settings import QuerySettings, Rate
from tests.conftest import unavailable
from tests.fakes.http_server import Reply
from tests.fakes.openai_server import FakeOpenAIServer
from tests.integration.test_pipeline import SECTIONS, page, write

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the `browser` fixture reports it: a skip locally, a failure in CI
    webdriver = None  # type: ignore[assignment]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
WAIT = 20  # seconds; generous for a loaded CI machine, and only ever spent when something is wrong
PAGE_URL = "https://example.org/docs/frob.html"
QUESTION = "How do I descale the kettle when the frobnicator hums?"
ANSWER = "When the frobnicator hums, descale the kettle and restart it [1]. Installing it needs a kettle [2]."

# Records every change of the last answer as [data-state, text length, question box disabled], so the test can
# tell a streamed answer (many growing snapshots) from one that appeared all at once.
WATCH_ANSWERS = """
window.__cmsragSnapshots = [];
new MutationObserver(() => {
  const answers = document.querySelectorAll('[data-cmsrag="answer"]');
  const last = answers[answers.length - 1];
  if (!last) return;
  const text = last.querySelector('.cmsrag-answer-text');
  window.__cmsragSnapshots.push([last.dataset.state, text ? text.textContent.length : 0,
                                 document.querySelector('[data-cmsrag="question"]').disabled]);
}).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
"""


class PacedOpenAIServer(FakeOpenAIServer):
    """The fake OpenAI server, streaming its chunks `pace` seconds apart, as a real model does."""

    def __init__(self, pace: float, answer: str) -> None:
        super().__init__(answer=lambda messages: answer)
        self.pace = pace

    def route(self, path: str, body: dict[str, Any]) -> Reply:
        reply = super().route(path, body)
        if reply.events is not None:
            reply.events = self._paced(reply.events)
        return reply

    def _paced(self, events: Iterable[bytes]) -> Iterator[bytes]:
        for event in events:
            time.sleep(self.pace)
            yield event


class LiveServer:
    """A WSGI app on 127.0.0.1 (a free port) in a daemon thread."""

    def __init__(self, wsgi: Callable[..., Any]) -> None:
        self.server = make_server("127.0.0.1", 0, wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def host_site(html: dict[str, str]) -> Callable[..., Any]:
    """A stand-in for someone else's website: serves `html["page"]` at every path."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [html["page"].encode()]

    return wsgi


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if webdriver is None:
        unavailable("selenium", "pip install -e '.[dev]'")
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        unavailable("Chromium", f"{', '.join(missing)} missing (scripts/install-system-deps.sh installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # with an explicit driver too, Selenium Manager never downloads anything
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1100,900", "--lang=en-US"):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except WebDriverException as exc:
        unavailable("Chromium", f"it did not start: {exc.msg}")
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


@pytest.fixture
def start_api(make_settings, db, site_dir) -> Iterator[Callable[..., str]]:
    """`start_api(**query_settings)` → the base URL of the real API, with frob.html indexed for site `docs`."""
    started: list[tuple[App, LiveServer]] = []

    def start(**query: Any) -> str:
        from services.api.app import create_app

        app = App(make_settings(query=dataclasses.replace(QuerySettings(), **query)))
        write(site_dir, "frob.html", page("Frobnicator guide", SECTIONS))
        Pipeline(app.settings, app.db, app.embedder).sync(DocRef("docs", "frob.html"))
        server = LiveServer(create_app(app))
        started.append((app, server))
        return server.url

    yield start
    for app, server in started:
        server.stop()
        app.close()


@pytest.fixture
def paced_llm() -> Iterator[PacedOpenAIServer]:
    with PacedOpenAIServer(pace=0.06, answer=ANSWER) as server:
        yield server


def wait_for(driver: WebDriver, what: str, condition: Callable[[WebDriver], Any]) -> Any:
    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.05).until(condition)
    except TimeoutException:
        logs = [entry["message"] for entry in driver.get_log("browser")]  # type: ignore[attr-defined]
        pytest.fail(f"timed out after {WAIT} s waiting for {what}; browser console: {logs}")


def ask(driver: WebDriver, question: str) -> None:
    box = wait_for(driver, "an enabled question box",
                   lambda d: next((e for e in d.find_elements(By.CSS_SELECTOR, '[data-cmsrag="question"]')
                                   if e.is_displayed() and e.is_enabled()), None))
    box.send_keys(question, Keys.ENTER)


def answers(driver: WebDriver) -> list[Any]:
    return driver.find_elements(By.CSS_SELECTOR, '[data-cmsrag="answer"]')


def wait_until_answered(driver: WebDriver, count: int, state: str = "done") -> Any:
    """The `count`-th answer once its data-state is final; fails fast if it ends in another state."""
    final = wait_for(driver, f"answer {count} to finish", lambda d: len(answers(d)) >= count and
                     answers(d)[count - 1].get_attribute("data-state") in ("done", "error") and answers(d)[count - 1])
    if final.get_attribute("data-state") != state:
        error = driver.find_element(By.CSS_SELECTOR, '[data-cmsrag="error"]').text
        pytest.fail(f"answer {count} ended as {final.get_attribute('data-state')!r}, not {state!r}: {error!r}")
    return final


def screenshot(driver: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / name)), f"could not write test-artifacts/{name}"


def citation_links(answer: Any) -> tuple[list[str], list[str]]:
    """(hrefs of the [n] markers in the answer text, hrefs of the Sources list)."""
    markers = [a.get_attribute("href") for a in answer.find_elements(By.CSS_SELECTOR, "sup a")]
    sources = [a.get_attribute("href")
               for a in answer.find_elements(By.CSS_SELECTOR, '[data-cmsrag="citations"] li a')]
    return markers, sources


def assert_cites_sections_of_the_page(answer: Any) -> None:
    markers, sources = citation_links(answer)
    assert markers and sources, f"no citation links in {answer.get_attribute('innerHTML')}"
    anchors = {f"{PAGE_URL}#{name}" for name in SECTIONS}
    assert set(markers) | set(sources) <= anchors, "citations must deep-link to a section of the indexed page"
    assert set(markers) <= set(sources)


def test_the_answer_streams_in_with_citation_links_to_the_cited_sections(browser, start_api, paced_llm):
    api = start_api(llm="openai-compatible", llm_base_url=paced_llm.base_url, llm_api_key="test-key",
                    llm_model="fake-chat")
    browser.get(f"{api}/?site=docs")
    assert browser.title == "cmsrag"
    browser.execute_script(WATCH_ANSWERS)
    ask(browser, QUESTION)
    answer = wait_until_answered(browser, 1)

    snapshots = browser.execute_script("return window.__cmsragSnapshots")
    streaming = [length for state, length, _ in snapshots if state == "streaming" and length]
    assert len(set(streaming)) >= 5 and streaming == sorted(streaming), f"not streamed: {snapshots}"
    assert all(disabled for state, _, disabled in snapshots if state == "streaming"), "input must be disabled"
    assert snapshots[-1][0] == "done"
    text = answer.find_element(By.CSS_SELECTOR, ".cmsrag-answer-text").text
    assert text.startswith("When the frobnicator hums, descale the kettle") and "[1]" in text

    assert_cites_sections_of_the_page(answer)
    markers, sources = citation_links(answer)
    assert markers[0] == sources[0], "[1] links to the first source"
    assert answer.get_attribute("aria-live") == "polite"
    screenshot(browser, "widget.png")

    ask(browser, "And how do I configure the teapot settings?")  # a follow-up carries the conversation
    wait_until_answered(browser, 2)
    sent = " ".join(str(m.get("content")) for m in paced_llm.bodies[-1]["messages"])
    assert QUESTION in sent and "descale the kettle and restart it" in sent


def test_a_visitor_over_the_rate_limit_is_told_when_to_try_again(browser, start_api):
    api = start_api(public_rate=Rate(per_minute=1, burst=1))
    browser.get(f"{api}/?site=docs")
    ask(browser, "How do I descale the kettle?")
    wait_until_answered(browser, 1)
    ask(browser, "How do I configure the teapot?")
    wait_until_answered(browser, 2, state="error")
    message = browser.find_element(By.CSS_SELECTOR, '[data-cmsrag="error"]').text
    assert re.fullmatch(r"Too many questions — try again in \d+ s\.", message), message
    box = browser.find_element(By.CSS_SELECTOR, '[data-cmsrag="question"]')
    wait_for(browser, "the question box to be enabled again", lambda d: box.is_enabled())


def test_the_widget_embedded_on_another_origin_answers_through_cors(browser, start_api):
    html = {"page": ""}
    host = LiveServer(host_site(html))
    try:
        api = start_api(allowed_origins=(host.url,))
        assert api != host.url
        html["page"] = (f"<!doctype html><html lang='en'><head><title>Another site</title></head><body>"
                        f"<h1>Someone else's page</h1><script src='{api}/widget.js' data-site='docs' "
                        f"data-title='Ask the frobnicator docs' defer></script></body></html>")
        browser.get(f"{host.url}/guide")
        toggle = wait_for(browser, "the floating Ask button",
                          lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, '[data-cmsrag="open"]')), None))
        assert toggle.get_attribute("aria-expanded") == "false"
        toggle.click()
        ask(browser, "How do I descale the kettle?")
        answer = wait_until_answered(browser, 1)
        assert_cites_sections_of_the_page(answer)
        assert browser.execute_script("return location.origin") == host.url
        screenshot(browser, "widget-embedded.png")
    finally:
        host.stop()
