"""The OpenAI-compatible API: ``GET /v1/models`` and ``POST /v1/chat/completions`` (streamed or
not), so that chat clients people already run (the ``openai`` SDK, Open WebUI, LobeChat, Chatbox,
bots) can ask the product unchanged.

The last user message is the question and the earlier user and assistant turns its conversation,
read as ``POST /api/ask`` reads its history; system and developer messages are not read at all
(a client's instructions do not steer the answer). The reply's content
is the product's answer with its ``[n]`` markers and the reference lines of the clauses cited; the
same answer as ``POST /api/ask`` gives it (grade, refused, citations) is in the extra field
``policy_qa``. A streamed reply is the final, checked answer sent in pieces: an LLM's draft is
never streamed, as a sentence it cannot support is dropped before anyone sees it.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict

from qa.answering import QuestionError
from qa.config import Settings
from qa.models import Answer
from qa.web.guard import bearer_token
from qa.web.library import Library

MODEL_ID = "policy-qa"
# Characters per streamed piece: small enough that a client shows the answer growing.
STREAM_PIECE_CHARS = 24


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = "text"
    text: str = ""


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content if part.type == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    # temperature, max_tokens, user … are accepted and have nothing to change here
    model_config = ConfigDict(extra="ignore")
    model: str = MODEL_ID
    messages: list[Message]
    stream: bool | None = False


class OpenAIError(Exception):
    """An error as OpenAI's API gives it: {"error": {"message", "type", "code"}}."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None, headers=None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.headers = status, message, kind, code, headers

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.kind, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def key_guard(settings: Settings):
    """A dependency: with ``api_key`` set, a request must bring it as ``Authorization: Bearer``
    (compared in constant time)."""

    def check(request: Request) -> None:
        if settings.api_key and not hmac.compare_digest((bearer_token(request.headers) or "").encode(), settings.api_key.encode()):
            raise OpenAIError(401, "API 密钥不正确或缺失（Authorization: Bearer …）", "authentication_error", "invalid_api_key",
                              headers={"WWW-Authenticate": "Bearer"})

    return check


def conversation(messages: list[Message]) -> tuple[str, list[dict]]:
    """(the question: the last user message, the turns before it as the answer step reads them)."""
    turns = [m for m in messages if m.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user" or not turns[-1].text.strip():
        raise OpenAIError(400, "最后一条消息须是用户的问题（role 为 user，内容不为空）")
    return turns[-1].text, [{"role": m.role, "content": m.text} for m in turns[:-1]]


def reply_text(answer: Answer) -> str:
    """The answer, and under it the clauses it cites (a refusal lists its related clauses itself)."""
    if answer.refused or not answer.citations:
        return answer.text
    return answer.text + "\n\n引用：\n" + "\n".join(c.reference() for c in answer.citations)


def completion(answer: Answer, completion_id: str, created: int) -> dict:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": MODEL_ID,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply_text(answer)}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "policy_qa": answer.to_api(),
    }


def chunks(answer: Answer, completion_id: str, created: int):
    """The server-sent events of a streamed reply: the role, the text in pieces, the end with
    ``policy_qa``, then [DONE]."""

    def event(delta: dict, finish: str | None = None, **extra) -> str:
        chunk = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]} | extra
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    yield event({"role": "assistant", "content": ""})
    text = reply_text(answer)
    for start in range(0, len(text), STREAM_PIECE_CHARS):
        yield event({"content": text[start : start + STREAM_PIECE_CHARS]})
    yield event({}, "stop", policy_qa=answer.to_api())
    yield "data: [DONE]\n\n"


def openai_router(settings: Settings, library: Library) -> APIRouter:
    router = APIRouter(prefix="/v1", dependencies=[Depends(key_guard(settings))])

    @router.get("/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "policy-qa"}]}

    @router.post("/chat/completions")
    def chat_completions(request: ChatRequest):
        question, history = conversation(request.messages)
        try:
            answer = library.answer(question, history=history)
        except QuestionError as error:
            raise OpenAIError(400, str(error)) from error
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if request.stream:
            return StreamingResponse(chunks(answer, completion_id, created), media_type="text/event-stream")
        return completion(answer, completion_id, created)

    return router


def install_openai_api(app, settings: Settings, library: Library) -> None:
    """The /v1 routes on ``app``, with errors in OpenAI's shape (its clients read error.message)."""
    app.include_router(openai_router(settings, library))

    @app.exception_handler(OpenAIError)
    async def openai_error(request, error: OpenAIError):
        return error.response()
