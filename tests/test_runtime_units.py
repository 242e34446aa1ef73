"""Small pieces of the agent runtime: limits, thread repair, error text, backoff, builder args."""

import inspect
import types

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import ValidationError
from ray.serve import Application

from agent_runtime.chat.app import ChatAgentArgs, ChatRequest, chat_app_builder
from agent_runtime.factories import tool_rounds_this_run
from agent_runtime.llm_client import LLMClient
from agent_runtime.runner import AgentRunner, dangling_tool_calls, tool_set_key
from agent_runtime.spec import AgentSpec
from agent_runtime.tools.sources import StaticTools
from agent_runtime.translation import error_event
from platform_core.backoff import Backoff
from platform_core.deployment import ServeDeploymentArgs
from platform_core.errors import describe_error
from tests.support.servers import ServerThread
from tests.test_runtime_support import PLAYBOOK_MODEL_ID, create_playbook_llm


def ai_calls(*ids: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"id": i, "name": "t", "args": {}} for i in ids])


def test_tool_rounds_count_only_the_current_run() -> None:
    history = [HumanMessage("a"), ai_calls("1"), ToolMessage("r", tool_call_id="1"), AIMessage("done")]
    current = [HumanMessage("b"), ai_calls("2"), ToolMessage("r", tool_call_id="2"), ai_calls("3", "4")]
    assert tool_rounds_this_run(history + current) == 2
    assert tool_rounds_this_run([*history, HumanMessage("c")]) == 0


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
        min_replicas=1, max_replicas=4, target_ongoing_requests=8
    ).deployment_options()
    assert scaled["autoscaling_config"] == {
        "min_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 8,
    }
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
