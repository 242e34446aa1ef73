"""The Gradio page: agent picker, streaming chat with tool steps, thread controls, reload restore.

The conversation lives in the browser (``gr.BrowserState``, i.e. localStorage): the agent, the thread id
and the rendered transcript. On load the page asks the agent's thread API for the thread; when that
answers it is authoritative, when it does not (older agent, agent down) the browser's copy is shown.

The user's API key (needed when the platform has auth on) is the value of a password box: the browser
sends it with each of that tab's events and every agent request of the event carries it
(``AgentClient``'s per-call ``token``). Nothing keeps it past that event: not the replica (this module, the
shared ``AgentClient``), which serves every user, nor localStorage, where ``gr.BrowserState``'s encryption
would not protect it (its secret is in the page). A reload forgets it. Where the UI offers OIDC sign-in
(:mod:`ui.sign_in`), "Sign in" puts the issuer's token into the same box, with the same lifetime.
"""

import logging
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocols.events import Metadata, is_valid_thread_id
from ui.client import API_KEY_PANEL, CREATE_KEY_HINT, AgentClient, HistoryUnavailable, clean_api_key
from ui.sign_in import GO_SIGN_IN_JS, TAKE_SIGN_IN_JS
from ui.transcript import AnswerRenderer, ChatMessage, render_history, safe_messages, user_turns

logger = logging.getLogger(__name__)

STORAGE_KEY = "ray-agent-platform-ui"
# BrowserState encrypts with a key that is sent to the page anyway: a stable value only keeps a stored
# conversation readable across replica restarts; it is not a secret.
STORAGE_SECRET = "ray-agent-platform-ui-v1"

CSS = """
#chat pre, #chat pre code { white-space: pre-wrap !important; overflow-wrap: anywhere; }
#status { min-height: 1.5em; }
"""

# Handler results hold one value per output component, in the order the listeners name them.
Skip = dict[str, Any]  # what ``gr.skip()`` returns: leave that output as it is
StoredSession = dict[str, Any]  # a dumped BrowserSession, what ``gr.BrowserState`` keeps
# chatbot, thread id, status, session
ConversationOutputs = tuple[list[ChatMessage] | Skip, str | Skip, str, StoredSession | Skip]
# chatbot, message box, thread id, status, session
SendOutputs = tuple[list[ChatMessage] | Skip, str | Skip, str | Skip, str | Skip, StoredSession | Skip]
# agent picker, chatbot, thread id, status, session
RestoreOutputs = tuple[str, list[ChatMessage], str, str, StoredSession]


class BrowserSession(BaseModel):
    """What the browser keeps between page loads."""

    model_config = ConfigDict(extra="ignore")

    agent: str | None = None
    thread_id: str | None = None
    messages: list[ChatMessage] = Field(default_factory=list)

    @classmethod
    def load(cls, raw: Any) -> "BrowserSession":
        """The session the browser sent; an unreadable one (an older version's, say) is an empty one."""
        try:
            return cls.model_validate(raw or {})
        except ValidationError:
            logger.warning("ignoring an unreadable browser session")
            return cls()


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _code(value: str) -> str:
    return f"`{value}`"


class ChatUI:
    """Event handlers of the page; talks to agents only through :class:`AgentClient`."""

    def __init__(self, agent_urls: dict[str, str], client: AgentClient) -> None:
        self.agent_urls = agent_urls
        self.client = client
        self.default_agent = next(iter(agent_urls))

    def _agent(self, name: str | None) -> str:
        return name if name in self.agent_urls else self.default_agent

    # --- handlers (return/yield values in the order of their ``outputs``) ---------------------------

    def new_chat(self, agent: str | None) -> tuple[list[ChatMessage], str, str, StoredSession]:
        """Start over with ``agent`` (outputs: chatbot, thread id, status, session)."""
        agent = self._agent(agent)
        return [], "", f"New chat with the **{agent}** agent.", self._stored(agent, None, [])

    async def send(
        self, text: str, agent: str | None, raw_session: Any, api_key: str | None = None
    ) -> AsyncIterator[SendOutputs]:
        """Stream one answer (outputs: chatbot, message box, thread id, status, session).

        ``api_key``: what the page's key box holds, sent as this request's credential.
        """
        text = (text or "").strip()
        if not text:
            yield gr.skip(), gr.skip(), gr.skip(), "Type a message first.", gr.skip()
            return
        try:
            key = clean_api_key(api_key)
        except ValueError as exc:
            yield gr.skip(), gr.skip(), gr.skip(), f"⚠️ {exc}", gr.skip()
            return
        agent = self._agent(agent)
        session = BrowserSession.load(raw_session)
        if session.agent != agent:  # threads belong to one agent
            session = BrowserSession(agent=agent)
        messages = [*session.messages, {"role": "user", "content": text}]
        renderer = AnswerRenderer(messages)
        shown = safe_messages(messages)  # what the Chatbot gets and the browser keeps: nothing loadable
        yield shown, "", session.thread_id or "", f"The **{agent}** agent is answering…", gr.skip()
        events = self.client.stream_chat(
            self.agent_urls[agent], text, session.thread_id, token=key, agent_name=agent
        )
        async for event in events:
            renderer.apply(event)
            thread = renderer.thread_id or session.thread_id or ""
            shown = safe_messages(messages)
            # Once the thread id is known the browser keeps it, so a reload mid-answer finds the thread.
            stored: StoredSession | Skip = (
                self._stored(agent, thread, shown) if isinstance(event, Metadata) else gr.skip()
            )
            yield shown, gr.skip(), thread, gr.skip(), stored
        renderer.finish()
        shown = safe_messages(messages)
        thread = renderer.thread_id or session.thread_id or ""
        if renderer.error is not None:
            status = f"The **{agent}** agent failed: `{renderer.error.code}` (details in the chat)."
        else:
            status = f"**{agent}** · thread {_code(thread)}"
            if renderer.usage is not None:
                usage = renderer.usage
                status += f" · {usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens."
        yield shown, gr.skip(), thread, status, self._stored(agent, thread, shown)

    @staticmethod
    def _stored(agent: str, thread_id: str | None, messages: list[ChatMessage]) -> StoredSession:
        return BrowserSession(agent=agent, thread_id=thread_id or None, messages=messages).model_dump()

    async def restore(self, raw_session: Any, api_key: str | None = None) -> RestoreOutputs:
        """Page load: the stored conversation (outputs: agent picker, chatbot, thread id, status, session).

        The key box is empty on a fresh page, so with auth on the browser's copy is what shows (the
        status says that a key is needed to reach the agent's).
        """
        session = BrowserSession.load(raw_session)
        agent = self._agent(session.agent)
        if not session.thread_id or session.agent != agent:
            return (agent, *self.new_chat(agent))
        try:
            key = clean_api_key(api_key)
        except ValueError:
            key = None  # no usable key: ask as if none was entered
        messages, status = await self._history(agent, session.thread_id, session.messages, key)
        return agent, messages, session.thread_id, status, self._stored(agent, session.thread_id, messages)

    async def continue_thread(
        self, thread_id: str, agent: str | None, raw_session: Any, api_key: str | None = None
    ) -> ConversationOutputs:
        """Switch to thread ``thread_id`` of ``agent`` (outputs: chatbot, thread id, status, session)."""
        thread_id = (thread_id or "").strip()
        if not is_valid_thread_id(thread_id):
            return gr.skip(), gr.skip(), f"⚠️ {_code(thread_id or ' ')} is not a valid thread id.", gr.skip()
        try:
            key = clean_api_key(api_key)
        except ValueError as exc:
            return gr.skip(), gr.skip(), f"⚠️ {exc}", gr.skip()
        agent = self._agent(agent)
        session = BrowserSession.load(raw_session)
        same = session.agent == agent and session.thread_id == thread_id
        messages, status = await self._history(agent, thread_id, session.messages if same else [], key)
        return messages, thread_id, status, self._stored(agent, thread_id, messages)

    async def _history(
        self, agent: str, thread_id: str, cached: list[ChatMessage], key: str | None
    ) -> tuple[list[ChatMessage], str]:
        """The thread's messages (the agent's when it answers, else this browser's copy) and a status.

        Both copies are made safe to show: one stored by an older version may hold raw answers.
        """
        cached = safe_messages(cached)
        try:
            history = await self.client.fetch_thread(
                self.agent_urls[agent], thread_id, token=key, agent_name=agent
            )
        except HistoryUnavailable as exc:
            logger.info("thread %s: history unavailable (%s)", thread_id, exc.reason)
            if cached:
                return cached, (
                    f"Restored thread {_code(thread_id)} from this browser's copy "
                    f"(the **{agent}** agent's history is unavailable: {exc.reason})."
                )
            return [], (
                f"Continuing thread {_code(thread_id)} with the **{agent}** agent; its history is "
                f"unavailable ({exc.reason})."
            )
        rendered = safe_messages(render_history(history.messages))
        # The browser's copy of the same conversation also holds token usage and error notes: prefer it
        # while it agrees with the agent on what the user asked.
        messages = cached if cached and user_turns(cached) == user_turns(rendered) else rendered
        return messages, (
            f"Restored thread {_code(thread_id)} from the **{agent}** agent "
            f"({_plural(len(user_turns(messages)), 'request')})."
        )


def build_blocks(
    agent_urls: dict[str, str],
    client: AgentClient,
    *,
    title: str,
    concurrency_limit: int,
    sign_in: bool = False,
) -> gr.Blocks:
    """The page; its handlers stream through ``client``. ``sign_in``: offer OIDC sign-in (``auth/login``)."""
    ui = ChatUI(agent_urls, client)
    blocks = gr.Blocks(title=title, analytics_enabled=False, fill_width=False)
    with blocks:  # not ``as blocks``: Blocks.__enter__ is untyped
        gr.Markdown(
            f"## {title}\nAnswers stream live; tool calls and delegations to other agents appear as steps."
        )
        session = gr.BrowserState({}, storage_key=STORAGE_KEY, secret=STORAGE_SECRET)
        if sign_in:
            with gr.Row(equal_height=True):
                sign_in_button = gr.Button("Sign in", elem_id="sign-in", size="sm", scale=0, min_width=120)
                signed_in = gr.Markdown(elem_id="signed-in")
            sign_in_button.click(None, js=GO_SIGN_IN_JS, api_visibility="private")
        with gr.Accordion(API_KEY_PANEL, open=False, elem_id="api-key-panel"):
            # Only a value of this tab's page (see the module's docstring); a password box, so it is
            # not shown on screen, and no autocomplete or spellcheck sees it.
            api_key = gr.Textbox(
                type="password",
                label=API_KEY_PANEL,
                show_label=False,
                placeholder="rap_…",
                elem_id="api-key",
                html_attributes=gr.InputHTMLAttributes(
                    autocomplete="off", autocapitalize="off", autocorrect="off", spellcheck=False
                ),
            )
            gr.Markdown(
                f"Needed when the platform has auth on; {CREATE_KEY_HINT}"
                f"{' (or use Sign in above)' if sign_in else ''}. Kept in this tab only: a reload forgets it."
            )
        with gr.Row(equal_height=True):
            agent = gr.Dropdown(
                choices=list(agent_urls),
                value=ui.default_agent,
                label="Agent",
                elem_id="agent-picker",
                scale=3,
            )
            thread = gr.Textbox(
                label="Current thread", interactive=False, elem_id="thread-id", buttons=["copy"], scale=3
            )
            new_chat = gr.Button("New chat", elem_id="new-chat", scale=1)
        # Gradio's sanitizer (kept on) strips scripts but not <img>: ChatUI passes every message
        # through safe_messages first, so answers quoting web pages cannot make the browser fetch.
        chatbot = gr.Chatbot(
            elem_id="chat",
            height="68vh",
            min_height=400,
            show_label=False,
            buttons=["copy"],
            sanitize_html=True,
        )
        with gr.Row(equal_height=True):
            message = gr.Textbox(
                placeholder="Ask the agent…",
                show_label=False,
                elem_id="message",
                scale=6,
                lines=1,
                max_lines=6,
            )
            send = gr.Button("Send", variant="primary", elem_id="send", scale=1)
        status = gr.Markdown(elem_id="status")
        with gr.Accordion("Continue a thread", open=False, elem_id="continue-panel"):
            with gr.Row(equal_height=True):
                continue_id = gr.Textbox(label="Thread id", elem_id="continue-id", scale=4)
                continue_btn = gr.Button("Continue thread", elem_id="continue", scale=1)

        send_inputs = [message, agent, session, api_key]
        send_outputs = [chatbot, message, thread, status, session]
        for listener in (message.submit, send.click):
            listener(
                ui.send,
                inputs=send_inputs,
                outputs=send_outputs,
                concurrency_limit=concurrency_limit,
                api_visibility="private",
            )
        conversation = [chatbot, thread, status, session]  # what starting or switching a conversation sets
        for listener in (new_chat.click, chatbot.clear, agent.input):
            listener(ui.new_chat, inputs=[agent], outputs=conversation, api_visibility="private")
        continue_btn.click(
            ui.continue_thread,
            inputs=[continue_id, agent, session, api_key],
            outputs=conversation,
            api_visibility="private",
        )
        restore: dict[str, Any] = {
            "fn": ui.restore,
            "inputs": [session, api_key],
            "outputs": [agent, chatbot, thread, status, session],
            "api_visibility": "private",
        }
        if sign_in:  # the token a sign-in left for this tab goes into the key box first
            blocks.load(None, js=TAKE_SIGN_IN_JS, outputs=[api_key, signed_in]).then(**restore)
        else:
            blocks.load(**restore)
    blocks.queue(default_concurrency_limit=concurrency_limit)
    return blocks
