"""One error shape from every platform route: ``APIError`` raised, one handler renders it."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import BaseModel

from agent_runtime.chat.app import create_chat_app
from agent_runtime.runner import AgentRunner
from agent_runtime.spec import AgentSpec
from agent_runtime.tools.sources import StaticTools
from platform_core.api_errors import APIError, install_api_error_handlers
from platform_core.errors import PlatformError

SECRET = "password authentication failed for user ops_admin at db.internal:5432"


def _app() -> FastAPI:
    app = FastAPI()
    install_api_error_handlers(app)

    class Body(BaseModel):
        n: int

    @app.get("/busy")
    async def busy() -> None:
        raise APIError(503, "overloaded", "too many runs", headers={"Retry-After": "3"})

    @app.post("/typed")
    async def typed(body: Body) -> dict[str, int]:
        return {"n": body.n}

    return app


async def _request(app: FastAPI, method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kwargs)


async def test_api_error_renders_status_code_message_and_headers() -> None:
    response = await _request(_app(), "GET", "/busy")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "3"
    assert response.json() == {"error": {"code": "overloaded", "message": "too many runs"}}


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [("GET", "/nowhere", 404, "not_found"), ("DELETE", "/busy", 405, "method_not_allowed")],
)
async def test_framework_http_errors_get_the_same_body(
    method: str, path: str, status: int, code: str
) -> None:
    response = await _request(_app(), method, path)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


async def test_validation_errors_name_the_field_not_the_input() -> None:
    response = await _request(_app(), "POST", "/typed", json={"n": "not-a-number-SECRET"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["message"].startswith("n: ")
    assert "SECRET" not in error["message"]


def test_api_error_is_a_platform_error() -> None:
    assert issubclass(APIError, PlatformError)


class _BrokenStore(InMemorySaver):
    """The storage edge failing as a real database does, with a cause that must not reach clients."""

    async def aget_tuple(self, config: Any) -> Any:
        raise ConnectionError(SECRET)


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_storage_failure_is_503_without_the_database_error_text(method: str, caplog) -> None:
    runner = AgentRunner(AgentSpec(name="probe", system_prompt="-", tools=StaticTools([])))
    runner.use_checkpointer(_BrokenStore())
    response = await _request(create_chat_app(runner), method, "/threads/t1")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "storage_unavailable"
    assert SECRET not in response.text and "db.internal" not in response.text
    assert SECRET in caplog.text  # the operator still sees the cause in the log
