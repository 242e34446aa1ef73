"""The web UI in a real browser (Chromium, headless, via Playwright) against the offline multi-agent stack.

Needs a Chromium binary: ``CHROMIUM`` (default /usr/bin/chromium, Debian's ``apt-get install -y chromium``).
Saves a screenshot of the travel conversation to ``test-artifacts/ui-travel.png``.
"""

import copy
import importlib.util
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.stack import ROOT, ServeStack

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
HAVE_PLAYWRIGHT = importlib.util.find_spec("playwright") is not None

# Skip marks, not a module-level importorskip: they skip (fail, under CI=true) only when the tests are
# selected, never a `-m "not integration"` run that merely collects this module.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set CHROMIUM)",
    ),
    pytest.mark.skipif(not HAVE_PLAYWRIGHT, reason="playwright (dev dependency) not installed: make install"),
]
if HAVE_PLAYWRIGHT:
    import playwright.sync_api as playwright_api
    from playwright.sync_api import expect

logger = logging.getLogger(__name__)

ARTIFACTS = ROOT / "test-artifacts"
TRIP = "Plan a 3-day trip to Lisbon next week."
AGENTS = {"Weather": "/weather-agent", "Research": "/research-agent", "Travel": "/travel-agent"}
ANSWER_TIMEOUT_MS = 300_000
WEATHER_STEP = "Delegated to weather agent (a2a_weather) · ok"
RESEARCH_STEP = "Delegated to research agent (a2a_research) · ok"
PACKING_STEP = "Delegated to packing agent (a2a_packing) · ok"

# Records the chat's text length at every DOM change, to see the answer grow token by token.
WATCH_CHAT = """() => {
  window.__chatLengths = [];
  const chat = document.querySelector('#chat');
  new MutationObserver(() => window.__chatLengths.push(chat.innerText.length))
    .observe(chat, {subtree: true, childList: true, characterData: true});
}"""


# Scrolls the chat to its top; returns the scroll offset left over (Gradio's autoscroll may still move it
# while the last update settles, so callers repeat it until it returns 0).
SCROLL_CHAT_TO_TOP = """() => {
  let left = 0;
  for (const el of document.querySelectorAll('#chat, #chat *')) {
    const style = getComputedStyle(el).overflowY;
    if (el.scrollHeight > el.clientHeight + 2 && (style === 'auto' || style === 'scroll')) {
      el.scrollTo({top: 0, behavior: 'instant'});
      left += el.scrollTop;
    }
  }
  return left === 0;
}"""


@pytest.fixture(scope="module")
def ui_stack(offline_multi: ServeStack) -> ServeStack:
    """The offline multi-agent stack with the multi config's UI at /ui.

    Deployed here whatever runs at /ui now: the single-agent config's UI has the same app name and route
    and only the weather agent, and a test of that config may have deployed it after the multi stack.
    """
    ui = next(
        a for a in offline_multi.local_config("serve_multi_config.yaml")["applications"] if a["name"] == "ui"
    )
    assert set(AGENTS.values()) <= set(ui["args"]["agents"].values()), ui["args"]
    if offline_multi.apps.get("ui") != ui:
        offline_multi.deploy({"applications": [ui]})
    offline_multi.wait_ready("/ui")
    return offline_multi


@pytest.fixture(scope="module")
def browser() -> Iterator["playwright_api.Browser"]:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                # no calls home: this machine's closed network refuses them, many at a time
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


def open_ui(page: "playwright_api.Page", url: str) -> None:
    """Open the UI and wait until its page-load handler has run.

    That handler (``ChatUI.restore``) sets the agent picker and the status line: an agent picked before
    it answers is set back and the open dropdown closes (seen on a loaded 2-core machine in CI).
    """
    page.goto(url)
    page.locator("#message textarea").wait_for(timeout=60_000)
    expect(page.locator("#status")).to_have_text(re.compile(r"\S"), timeout=60_000)


def choose_agent(page: "playwright_api.Page", name: str) -> None:
    """Pick ``name`` in the agent dropdown (nothing to do when it is already picked).

    A click that lands before the page's scripts have wired the dropdown opens nothing, so open it again
    until the option shows.
    """
    picker = page.locator("#agent-picker input")
    if picker.input_value() == name:
        return  # already the picked agent (the first one is preselected)
    option = page.get_by_role("option", name=name)
    for _ in range(10):
        picker.click()
        try:
            option.wait_for(state="visible", timeout=5_000)
            break
        except playwright_api.TimeoutError:
            page.keyboard.press("Escape")
    option.click()
    expect(picker).to_have_value(name)


def thread_id_box(page: "playwright_api.Page") -> "playwright_api.Locator":
    return page.locator("#thread-id textarea, #thread-id input").first


def test_travel_conversation_streams_steps_and_survives_a_reload(ui_stack: ServeStack, browser) -> None:
    base = ui_stack.base_url
    context = browser.new_context(viewport={"width": 1280, "height": 1200})
    page = context.new_page()
    broken: list[str] = []
    page.on("response", lambda r: broken.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on(
        "requestfailed", lambda r: broken.append(f"failed {r.url}") if "/queue/data" not in r.url else None
    )

    open_ui(page, f"{base}/ui/")
    message = page.locator("#message textarea")
    # Gradio's scripts and styles came through the /ui route prefix of the Serve proxy.
    assert not [b for b in broken if "/ui/" in b], broken
    expect(page.locator("#agent-picker")).to_be_visible()

    choose_agent(page, "Travel")
    expect(page.locator("#status")).to_contain_text("New chat with the Travel agent")

    page.evaluate(WATCH_CHAT)
    message.fill(TRIP)
    page.locator("#send").click()
    chat, status = page.locator("#chat"), page.locator("#status")
    expect(chat).to_contain_text(TRIP)
    expect(status).to_contain_text("completion tokens", timeout=ANSWER_TIMEOUT_MS)
    expect(chat).to_contain_text(WEATHER_STEP)
    expect(chat).to_contain_text(RESEARCH_STEP)
    expect(chat).to_contain_text(PACKING_STEP)
    expect(chat).to_contain_text(
        re.compile(r"Tokens: [1-9]\d* prompt \+ [1-9]\d* completion · trace [0-9a-f]{32}")
    )
    text = chat.inner_text()
    assert "Lisbon" in text.split(PACKING_STEP, 1)[1]  # the itinerary below the steps
    assert "⚠" not in text, text  # no error notes

    lengths = page.evaluate("window.__chatLengths")
    assert len(set(lengths)) >= 20, f"the answer did not stream ({len(set(lengths))} distinct updates)"
    thread_id = thread_id_box(page).input_value()
    assert re.fullmatch(r"[A-Za-z0-9._:-]+", thread_id), thread_id
    assert thread_id in status.inner_text()

    page.get_by_text(WEATHER_STEP).first.click()  # expand the step
    expect(chat).to_contain_text("Arguments")
    expect(chat).to_contain_text("Result (ok)")
    # The screenshot shows the question, the steps and the start of the answer.
    page.wait_for_function(SCROLL_CHAT_TO_TOP, polling=300, timeout=10_000)
    page.wait_for_timeout(300)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-travel.png"), full_page=True)

    # A reload shows the same conversation: from the agent's thread API when it has one, else from the
    # copy in the browser's localStorage.
    history = httpx.get(f"{base}/travel-agent/threads/{thread_id}", timeout=30)
    source = "from the Travel agent" if history.status_code == 200 else "from this browser's copy"
    logger.info("thread API answered %s: restoring %s", history.status_code, source)
    page.reload()
    expect(status).to_contain_text(f"Restored thread {thread_id} {source}", timeout=60_000)
    expect(chat).to_contain_text(TRIP)
    expect(chat).to_contain_text(WEATHER_STEP)
    expect(chat).to_contain_text(RESEARCH_STEP)
    assert thread_id_box(page).input_value() == thread_id
    expect(page.locator("#agent-picker input")).to_have_value("Travel")
    page.screenshot(path=str(ARTIFACTS / "ui-travel-reloaded.png"), full_page=True)

    # "New chat" forgets the thread; "Continue thread" goes back to it by id.
    page.locator("#new-chat").click()
    expect(thread_id_box(page)).to_have_value("")
    expect(chat).not_to_contain_text(TRIP)
    page.get_by_text("Continue a thread").click()
    page.locator("#continue-id input, #continue-id textarea").first.fill(thread_id)
    page.locator("#continue").click()
    expect(thread_id_box(page)).to_have_value(thread_id)
    if history.status_code != 200:  # no thread API: the reload above already used the browser's copy
        expect(status).to_contain_text("its history is unavailable")
        context.close()
        return
    expect(status).to_contain_text(f"Restored thread {thread_id} from the Travel agent")
    expect(chat).to_contain_text(TRIP)

    # Once the agent no longer has the thread, a reload falls back to the browser's copy.
    assert httpx.delete(f"{base}/travel-agent/threads/{thread_id}", timeout=30).status_code == 204
    page.reload()
    expect(status).to_contain_text(f"Restored thread {thread_id} from this browser's copy", timeout=60_000)
    expect(status).to_contain_text("HTTP 404")
    expect(chat).to_contain_text(TRIP)
    expect(chat).to_contain_text(WEATHER_STEP)
    expect(chat).to_contain_text(RESEARCH_STEP)
    context.close()


def test_rejected_request_is_a_clear_error(ui_stack: ServeStack, browser) -> None:
    """An agent's 4xx answer shows up in the chat and the status line, not as a broken page."""
    context = browser.new_context()
    page = context.new_page()
    open_ui(page, f"{ui_stack.base_url}/ui/")
    choose_agent(page, "Weather")
    pixel = "http://127.0.0.1:9/pixel.png"  # shown markup must not make the browser fetch (ui/transcript.py)
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url) if "pixel.png" in r.url else None)
    markup = f"![x]({pixel}) <img src='{pixel}?tag'> "
    page.locator("#message textarea").fill(markup + "x" * 20_000)  # over the agent's request limit: a 422
    page.locator("#send").click()
    expect(page.locator("#chat")).to_contain_text("http_422", timeout=60_000)
    expect(page.locator("#status")).to_contain_text("failed")
    expect(page.locator("#chat")).to_contain_text("image: x")  # the image became a link
    expect(page.locator("#chat img")).to_have_count(0)
    assert fetched == [], fetched
    context.close()


def test_api_key_goes_with_the_tabs_requests_and_a_reload_forgets_it(ui_stack: ServeStack, browser) -> None:
    """The "API key" panel: a password box whose key the tab sends with its events, that shows nowhere
    on the page, is in no browser storage, and is gone after a reload.

    Auth is off on this stack (loopback), so the agent accepts the request whatever the key; the 401,
    403 and 429 messages are unit-tested in tests/ui/test_auth.py.
    """
    key = "rap_0123456789abcdef_" + "k" * 43
    context = browser.new_context()
    page = context.new_page()
    joined: list[str] = []  # what the page sent to Gradio's queue: the events' inputs
    page.on("request", lambda r: joined.append(r.post_data or "") if "/queue/join" in r.url else None)
    open_ui(page, f"{ui_stack.base_url}/ui/")
    choose_agent(page, "Weather")

    panel = page.locator("#api-key-panel")
    panel.locator("button.label-wrap").first.click()  # the accordion's toggle
    expect(panel).to_contain_text("platform-keys create")
    box = page.locator("#api-key input").first
    expect(box).to_have_attribute("type", "password")
    box.fill(key)
    page.locator("#message textarea").fill("Weather in Paris?")
    page.locator("#send").click()
    expect(page.locator("#status")).to_contain_text("completion tokens", timeout=ANSWER_TIMEOUT_MS)
    assert any(key in body for body in joined), "the send event did not carry the key"
    assert key not in page.locator("body").inner_text()
    storage = page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}])")
    assert key not in storage

    open_ui(page, f"{ui_stack.base_url}/ui/")  # the page loaded afresh, as a reload does
    panel.locator("button.label-wrap").first.click()  # closed again: its box is rendered only when open
    expect(page.locator("#api-key input").first).to_have_value("")
    context.close()


OIDC_CLIENT = {"UI_OIDC_CLIENT_ID": "platform-ui", "UI_OIDC_CLIENT_SECRET": "ui-client-secret"}


@pytest.fixture(scope="module")
def oidc_ui(ui_stack: ServeStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeStack]:
    """A UI that signs in at a real OpenID provider, in front of a weather agent with auth on.

    The provider (``oidc-provider-mock``, a real authorization server) runs in this process; the agent
    accepts its tokens (``OIDC_ISSUER``, ``OIDC_AUDIENCE`` = the UI's client id, for its ID tokens).
    """
    from oidc_provider_mock import User, run_server_in_thread

    alice = User(sub="alice", claims={"email": "alice@example.com", "scope": "agent:weather"})
    with run_server_in_thread(user_claims=[alice]) as provider:
        oidc = {"OIDC_ISSUER": f"http://localhost:{provider.server_port}", "OIDC_AUDIENCE": "platform-ui"}
        agent = copy.deepcopy(ui_stack.apps["weather_agent"])
        agent.update(name="weather_agent_oidc", route_prefix="/weather-agent-oidc")
        database = f"sqlite:///{tmp_path_factory.mktemp('oidc-data') / 'agents.db'}"
        env = agent.setdefault("runtime_env", {}).setdefault("env_vars", {})
        env.update(oidc, AUTH="on", DATABASE_URL=database)
        ui = copy.deepcopy(ui_stack.apps["ui"])
        ui.update(name="ui_oidc", route_prefix="/ui-oidc")
        ui["args"] = {**ui["args"], "agents": {"Weather": "/weather-agent-oidc"}}
        ui.setdefault("runtime_env", {}).setdefault("env_vars", {}).update(oidc, **OIDC_CLIENT)
        ui_stack.deploy({"applications": [agent, ui]})
        ui_stack.wait_ready("/weather-agent-oidc")
        ui_stack.wait_ready("/ui-oidc")
        try:
            yield ui_stack
        finally:
            ui_stack.remove("ui_oidc", "weather_agent_oidc")


def test_sign_in_with_oidc_puts_the_token_in_the_tabs_key_box(oidc_ui: ServeStack, browser) -> None:
    """Sign in at the OpenID provider, chat with an agent that has auth on, and a reload signs out."""
    context = browser.new_context()
    page = context.new_page()
    ui_url = f"{oidc_ui.base_url}/ui-oidc/"
    open_ui(page, ui_url)
    message, chat, status = page.locator("#message textarea"), page.locator("#chat"), page.locator("#status")
    message.fill("Weather in Paris?")
    page.locator("#send").click()  # no credential yet: the agent refuses, the page says what to do
    expect(chat).to_contain_text("This platform needs an API key: sign in", timeout=60_000)

    page.locator("#sign-in").click()
    page.locator('input[name="sub"]').fill("alice")  # the provider's login form
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(ui_url, timeout=60_000)
    page.locator("#message textarea").wait_for(timeout=60_000)
    expect(page.locator("#signed-in")).to_contain_text("Signed in as alice@example.com", timeout=60_000)
    storage = page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}])")
    assert "eyJ" not in storage, "the token left the browser's storage for the key box"

    page.locator("#new-chat").click()
    # The page's state (with the refused message) is what a send carries until the reload's restore or
    # the click has answered: both start a new chat and say so.
    expect(status).to_contain_text("New chat with", timeout=60_000)
    message.fill("Weather in Paris?")
    page.locator("#send").click()
    expect(status).to_contain_text("completion tokens", timeout=ANSWER_TIMEOUT_MS)
    expect(chat).to_contain_text("Paris")
    assert "needs an API key" not in chat.inner_text()

    open_ui(page, ui_url)  # a reload: the token is gone with the page
    expect(page.locator("#signed-in")).not_to_contain_text("Signed in")
    page.locator("#new-chat").click()
    message.fill("Weather in Paris?")
    page.locator("#send").click()
    expect(chat).to_contain_text("This platform needs an API key: sign in", timeout=60_000)
    context.close()
