"""Small pieces of the agent runtime: limits, malformed tool calls, thread repair, error text, backoff,
builder args, the runner seam's defaults."""

import asyncio
import inspect
import types
from collections.abc import AsyncIterator

import pytest
from langchain.agents.middleware import ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import ValidationError
from ray.serve import Application

from agent_runtime.chat.app import ChatAgentArgs, ChatRequest, chat_app_builder
from agent_runtime.factories import (
    InvalidToolCall,
    ToolCallValidationMiddleware,
    review_tool_calls,
    tool_rounds_this_run,
)
from agent_runtime.llm_client import LLMClient
from agent_runtime.run_loop import take_ready_tokens
from agent_runtime.runner import AgentRunner, dangling_tool_calls, tool_set_key
from agent_runtime.runner_base import BaseAgentRunner, RunnerHealth
from agent_runtime.spec import AgentSpec
from agent_runtime.state.database import Database
from agent_runtime.tools.sources import StaticTools
from agent_runtime.translation import error_event
from platform_core.backoff import Backoff
from platform_core.deployment import ServeDeploymentArgs
from platform_core.errors import PlatformError, describe_error
from protocols.events import ChatEvent, Done, Metadata, Token, ToolCall
from protocols.threads import ThreadView
from tests.support.runtime import PLAYBOOK_MODEL_ID, create_playbook_llm
from tests.support.servers import ServerThread


def ai_calls(*ids: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"id": i, "name": "t", "args": {}} for i in ids])


def test_tool_rounds_count_only_the_current_run() -> None:
    history = [HumanMessage("a"), ai_calls("1"), ToolMessage("r", tool_call_id="1"), AIMessage("done")]
    current = [HumanMessage("b"), ai_calls("2"), ToolMessage("r", tool_call_id="2"), ai_calls("3", "4")]
    assert tool_rounds_this_run(history + current) == 2
    assert tool_rounds_this_run([*history, HumanMessage("c")]) == 0


def test_review_finds_malformed_calls_and_answers_every_call() -> None:
    message = AIMessage(
        "Let me see.",
        tool_calls=[{"id": "a", "name": "add", "args": {"a": 1}}, {"id": None, "name": "ad", "args": {}}],
        invalid_tool_calls=[
            {"id": "c", "name": "echo", "args": '{"text": hi}', "error": None, "type": "invalid_tool_call"},
            {"id": None, "name": None, "args": "[1]", "error": None, "type": "invalid_tool_call"},
        ],
    )
    review = review_tool_calls(message, {"add", "echo"})
    assert review.problems[0] == "unknown tool 'ad'"
    assert review.problems[1].startswith("tool 'echo': arguments are not valid JSON (Expecting value")
    assert review.problems[2] == "tool '': arguments are a JSON list, not an object"
    rejected, *results = review.feedback
    assert (
        isinstance(rejected, AIMessage) and rejected.text == "Let me see." and not rejected.invalid_tool_calls
    )
    assert [c["args"] for c in rejected.tool_calls] == [{"a": 1}, {}, {}, {}]  # malformed args sent as {}
    ids = [c["id"] for c in rejected.tool_calls]
    assert all(ids) and len(set(ids)) == 4
    assert all(isinstance(r, ToolMessage) for r in results)
    assert [(r.tool_call_id, r.status) for r in results if isinstance(r, ToolMessage)] == [
        (i, "error") for i in ids
    ]
    assert results[0].text.startswith("Not run") and "Available tools: add, echo." in results[1].text
    assert '{"text": hi}' in results[2].text
    assert (
        review_tool_calls(
            AIMessage("fine", tool_calls=[{"id": "x", "name": "add", "args": {}}]), {"add"}
        ).problems
        == []
    )


def test_invalid_tool_call_is_a_run_error_with_its_own_code() -> None:
    exc = InvalidToolCall(["unknown tool 'x'"], attempts=3)
    assert isinstance(exc, PlatformError)
    event = error_event(exc)
    assert event.code == "invalid_tool_call"
    assert event.message == "the model made invalid tool calls 3 times in a row: unknown tool 'x'"
    with pytest.raises(ValueError):
        ToolCallValidationMiddleware(max_retries=-1)


def test_validation_middleware_retries_with_feedback_and_counts_every_attempt() -> None:
    @tool
    def echo(text: str) -> str:
        """Echo."""
        return text

    usage = {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12}
    bad = AIMessage("", tool_calls=[{"id": "1", "name": "ech0", "args": {}}], usage_metadata=usage)
    good = AIMessage(
        "", tool_calls=[{"id": "2", "name": "echo", "args": {"text": "x"}}], usage_metadata=usage
    )
    seen: list[list] = []

    def model(replies: list[AIMessage]):
        def handler(request: ModelRequest) -> ModelResponse:
            seen.append(request.messages)
            return ModelResponse(result=[replies.pop(0)])

        return handler

    request = ModelRequest(model=None, messages=[HumanMessage("q")], tools=[echo])  # type: ignore[arg-type]
    middleware = ToolCallValidationMiddleware(max_retries=2)
    (accepted,) = middleware.wrap_model_call(request, model([bad, good])).result
    assert isinstance(accepted, AIMessage) and accepted.tool_calls == good.tool_calls
    assert accepted.usage_metadata is not None and accepted.usage_metadata["input_tokens"] == 20
    assert [type(m).__name__ for m in seen[1]] == ["HumanMessage", "AIMessage", "ToolMessage"]
    assert request.messages == [HumanMessage("q")]  # the agent's own request (and state) untouched

    seen.clear()
    with pytest.raises(InvalidToolCall) as failed:
        middleware.wrap_model_call(request, model([bad, bad, bad, good]))
    assert failed.value.attempts == 3
    assert failed.value.usage is not None and failed.value.usage["input_tokens"] == 30
    assert len(seen) == 3 and len(seen[-1]) == 5  # each retry sees every rejected attempt so far


def test_dangling_tool_calls_are_the_unanswered_calls_of_the_last_turn() -> None:
    answered_one = [HumanMessage("q"), ai_calls("1", "2"), ToolMessage("r", tool_call_id="1")]
    assert [c["id"] for c in dangling_tool_calls(answered_one)] == ["2"]
    finished = [*answered_one, ToolMessage("r", tool_call_id="2"), AIMessage("answer")]
    assert dangling_tool_calls(finished) == []
    assert dangling_tool_calls([]) == []


def test_describe_error_finds_the_root_cause_in_exception_groups() -> None:
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [ConnectionError("refused")])])
    assert describe_error(nested) == "ConnectionError: refused"
    assert describe_error(ValueError("x" * 1000), limit=20) == "ValueError: " + "x" * 7 + "…"
    assert error_event(RuntimeError("bad")).code == "internal"


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(initial_s=1, max_s=5, jitter=0)
    assert [backoff.next_delay() for _ in range(5)] == [1, 2, 4, 5, 5]
    backoff.reset()
    assert backoff.next_delay() == 1


def test_deployment_options_fixed_or_autoscaled() -> None:
    fixed = ServeDeploymentArgs().deployment_options()
    assert fixed == {"ray_actor_options": {"num_cpus": 0.2}, "max_ongoing_requests": 64, "num_replicas": 1}
    scaled = ServeDeploymentArgs(
        min_replicas=1, max_replicas=4, target_ongoing_requests=8, upscale_delay_s=10, downscale_delay_s=60
    ).deployment_options()
    assert scaled["autoscaling_config"] == {
        "min_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 8,
        "upscale_delay_s": 10,
        "downscale_delay_s": 60,
    }
    defaults = ServeDeploymentArgs(max_replicas=2).autoscaling_config()  # Serve's own delays
    assert (defaults["upscale_delay_s"], defaults["downscale_delay_s"]) == (30, 600)
    assert "num_replicas" not in scaled
    with pytest.raises(ValidationError):
        ServeDeploymentArgs(min_replicas=3, max_replicas=2)


def test_chat_args_reject_typos_and_bad_limits() -> None:
    with pytest.raises(ValidationError):
        ChatAgentArgs.model_validate({"max_tool_round": 3})
    with pytest.raises(ValidationError):
        ChatAgentArgs(run_timeout_s=0)
    args = ChatAgentArgs.model_validate({"mcp_urls": {"weather": "http://x/mcp"}, "max_tool_rounds": 3})
    assert args.mcp_urls == {"weather": "http://x/mcp"} and args.llm_model is None


def test_chat_request_validation() -> None:
    assert ChatRequest(user_request="hi").thread_id is None
    assert ChatRequest(user_request="hi", thread_id="abc-DEF_1.2:3").thread_id == "abc-DEF_1.2:3"
    for bad in ({"user_request": "hi", "thread_id": "a" * 129}, {"user_request": "hi", "thread_id": "-x"}):
        with pytest.raises(ValidationError):
            ChatRequest.model_validate(bad)


def test_builder_is_what_serve_accepts() -> None:
    from agents.weather import SPEC, build_app

    assert isinstance(build_app, types.FunctionType)
    (param,) = inspect.signature(build_app).parameters.values()
    assert param.annotation is ChatAgentArgs
    app = build_app(ChatAgentArgs(max_replicas=3))
    assert isinstance(app, Application)
    assert SPEC.tools.servers == {"weather": "/mcp-weather/mcp"}  # type: ignore[attr-defined]
    assert chat_app_builder(SPEC) is not build_app  # one builder per call, no shared state


async def test_agent_is_rebuilt_only_when_the_tool_set_changes() -> None:
    @tool
    def one(x: int) -> int:
        """First tool."""
        return x

    @tool
    def two(x: int) -> int:
        """Second tool."""
        return x

    fake = create_playbook_llm()
    llm = ServerThread(fake.app).start()
    try:
        runner = AgentRunner(
            AgentSpec(name="r", system_prompt="-", tools=StaticTools([one])), llm=LLMClient(f"{llm.url}/v1")
        )
        first = await runner._compiled_agent()
        assert await runner._compiled_agent() is first
        assert runner.llm.model_id_if_known == PLAYBOOK_MODEL_ID
        runner.tools = StaticTools([one, two])
        assert await runner._compiled_agent() is not first
        assert tool_set_key([one]) != tool_set_key([one, two]) == tool_set_key([two, one])
    finally:
        llm.stop()


class ScriptedRunner(BaseAgentRunner):
    """A runner with only the abstract methods: the seam's defaults do the rest."""

    def __init__(self, ready_after: int) -> None:
        self.spec = AgentSpec(name="seam", system_prompt="-", tools=StaticTools([]))
        self.run_timeout_s = 5.0
        self.checks = 0
        self.ready_after = ready_after
        self.prepared = False

    async def stream(
        self, user_request: str, thread_id: str, run_id: str, *, abort: asyncio.Event | None = None
    ) -> AsyncIterator[ChatEvent]:
        yield Metadata(thread_id=thread_id, run_id=run_id, agent=self.name)
        yield Done(thread_id=thread_id, answer=user_request)

    async def health(self) -> RunnerHealth:
        self.checks += 1
        if self.checks == 1:
            raise ConnectionError("not yet")
        return RunnerHealth(ready=self.checks >= self.ready_after, agent=self.name, tools=[], llm=True)

    async def use_database(self, database: Database) -> None:
        raise NotImplementedError

    async def read_thread(self, thread_id: str) -> ThreadView | None:
        return None

    async def delete_thread(self, thread_id: str) -> bool:
        return False

    async def prepare(self) -> None:
        self.prepared = True


async def test_runner_seam_defaults() -> None:
    runner = ScriptedRunner(ready_after=2)
    assert runner.name == "seam" and runner.thread_key("t1") == "seam/t1"
    events = [e async for e in runner.stream("hi", "t1", "r1")]
    assert isinstance(events[0], Metadata) and isinstance(events[-1], Done)
    await runner.warm_up()  # the first health check fails, the second is ready
    assert runner.checks == 2 and runner.prepared
    await runner.aclose()
    assert issubclass(AgentRunner, BaseAgentRunner)
    with pytest.raises(TypeError):
        BaseAgentRunner()  # type: ignore[abstract]


async def test_tokens_waiting_in_the_queue_leave_as_one_event() -> None:
    queue: asyncio.Queue[object] = asyncio.Queue()
    for item in (Token(text="b"), Token(text="c"), tool_call := ToolCall(id="1", name="t"), Token(text="d")):
        queue.put_nowait(item)
    merged, held = take_ready_tokens(Token(text="a"), queue)
    assert merged == Token(text="abc") and held is tool_call  # a non-token ends the run, and is handed back
    assert queue.qsize() == 1  # "d" waits for the next event

    alone = Token(text="x")
    assert take_ready_tokens(alone, asyncio.Queue()) == (alone, None)  # nothing waiting: sent as it came

    many: asyncio.Queue[object] = asyncio.Queue()
    for _ in range(10):
        many.put_nowait(Token(text="yy"))
    merged, held = take_ready_tokens(Token(text="d"), many, max_chars=5)
    assert (merged.text, held) == ("dyyyy", None)  # the size limit ends the merge; the rest stays queued
    assert many.qsize() == 8


def test_the_spec_picks_the_framework_and_a_wrong_factory_fails_clearly() -> None:
    from agent_runtime.chat.app import build_runner
    from agent_runtime.maf import MAFAgentRunner
    from agents import packing, weather
    from platform_core.errors import ConfigurationError

    args = ChatAgentArgs()
    assert type(build_runner(weather.SPEC, args)) is AgentRunner
    assert type(build_runner(packing.SPEC, args)) is MAFAgentRunner
    wrong = AgentSpec(
        name="wrong", system_prompt="x", tools=StaticTools([]), runner=lambda spec, args: "nope"
    )
    with pytest.raises(ConfigurationError, match="'wrong'.*returned str"):
        build_runner(wrong, args)
