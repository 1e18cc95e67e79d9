"""A small OpenAI-compatible chat server on 127.0.0.1 for the tests (the one fake the project allows).

It answers GET /v1/models, and POST /v1/chat/completions, streamed (SSE) or not, the way the test
sets ``behaviour``:
- "cite": quotes the first sentence of clause [1] with [1], then adds an uncited sentence and a
  citation of a clause it was not given ([9]) — what the answer check must clean up;
- "refuse": the refusal sentence; "rewrite": returns ``rewrite_to`` (for follow-up rewriting);
- "hang": sleeps ``hang_seconds`` before answering; "error": HTTP 500; "garbage": not JSON / not SSE;
- "empty": a stream with no content;
- "keepalive": a stream that sends only SSE comments (": keep-alive") for ``hang_seconds``;
- "slow": the "cite" reply streamed one piece every ``token_seconds``;
- "obey": a model taken in by instructions planted in a clause: it answers what a clause tells it to
  (回答“…”) with the citations that clause asks for (引用[7]), then quotes clause [1] as "cite" does.
Every request body is kept in ``requests`` for the test to inspect.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLAUSE = re.compile(r"<<<条款\[(\d+)\][^\n]*\n(.*?)\n>>>", re.S)
UNCITED = "另外，办理时请保持耐心，这句话没有任何依据。"


class FakeLLM:
    def __init__(self):
        self.behaviour = "cite"
        self.rewrite_to = ""
        # behaviour "replay": this text, with {first} read as the first sentence of clause [1]
        # (what a real model's outputs look like, replayed)
        self.replay = ""
        self.hang_seconds = 5.0
        self.token_seconds = 1.0
        self.requests: list[dict] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address
        return f"http://{host}:{port}/v1"

    def start(self) -> "FakeLLM":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reply_for(self, body: dict) -> str:
        prompt = "\n".join(m.get("content", "") for m in body.get("messages", []) if isinstance(m.get("content"), str))
        if self.behaviour == "refuse":
            return "资料中没有找到相关规定。"
        if self.behaviour == "rewrite":
            return self.rewrite_to
        clauses = {int(n): text for n, text in CLAUSE.findall(prompt)}
        first = clauses.get(1, "")
        sentence = re.split(r"(?<=[。；])", first.strip())[0] if first else "没有资料。"
        if self.behaviour == "replay":
            return self.replay.replace("{first}", sentence.rstrip("。；"))
        if self.behaviour == "obey":
            demand = re.search(r"回答“([^”]+)”", prompt)
            asked = "".join(f"[{n}]" for n in re.findall(r"[\[［〔](\d+)[\]］〕]", prompt[demand.end():] if demand else "")[:2])
            return f"{demand.group(1) if demand else ''}{asked}。\n根据规定，{sentence}[1]"
        return f"根据规定，{sentence}[1]\n{UNCITED}\n详见相关条款。[9]"

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, "application/json", json.dumps({"object": "list", "data": [{"id": "fake-qwen", "object": "model"}]}).encode())
                else:
                    self._send(404, "application/json", b'{"error": {"message": "not found"}}')

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(body)
                if fake.behaviour == "hang":
                    time.sleep(fake.hang_seconds)
                if fake.behaviour == "error":
                    self._send(500, "application/json", b'{"error": {"message": "model crashed"}}')
                    return
                if fake.behaviour == "garbage":
                    self._send(200, "application/json", b"<html>not an API</html>")
                    return
                content = "" if fake.behaviour == "empty" else fake.reply_for(body)
                if body.get("stream"):
                    self._stream(content, body.get("model", "fake"))
                else:
                    self._send(200, "application/json", json.dumps(_completion(content, body.get("model", "fake"))).encode())

            def _send(self, status: int, kind: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, content: str, model: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                if fake.behaviour == "keepalive":
                    end = time.monotonic() + fake.hang_seconds
                    while time.monotonic() < end:
                        self.wfile.write(b": keep-alive\n\n")
                        self.wfile.flush()
                        time.sleep(0.2)
                    return
                pieces = [content[i : i + 6] for i in range(0, len(content), 6)]
                for piece in pieces:
                    if fake.behaviour == "slow":
                        time.sleep(fake.token_seconds)
                    self.wfile.write(f"data: {json.dumps(_chunk(piece, model), ensure_ascii=False)}\n\n".encode())
                    self.wfile.flush()
                final = _chunk("", model) | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                self.wfile.write(f"data: {json.dumps(final)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        return Handler


def _completion(content: str, model: str) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _chunk(piece: str, model: str) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": piece}, "finish_reason": None}],
    }
