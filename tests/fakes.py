"""A scripted OpenAI-compatible server for fast tests of control flow (never of model quality).

Replies come from a queue of (status, body) pairs, or from a `responder(path, body)` function
when the queue is empty; every request is recorded.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from looptool.serving.client import Endpoint


def chat_reply(content: str, finish_reason: str = "stop") -> dict[str, Any]:
    """A chat.completion body whose message says `content`."""
    return {
        "id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": finish_reason, "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }  # fmt: skip


class FakeOpenAI:
    def __init__(self) -> None:
        self.replies: list[tuple[int, dict]] = []
        self.requests: list[tuple[str, dict]] = []
        self.responder: Callable[[str, dict], tuple[int, dict]] | None = None
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._reply(200, {"data": [{"id": "m"}, {"id": "adapter"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    fake.requests.append((self.path, body))
                    queued = fake.replies.pop(0) if fake.replies else None
                if queued is None and fake.responder is not None:
                    queued = fake.responder(self.path, body)
                self._reply(*(queued or (200, {})))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = Endpoint(f"http://127.0.0.1:{self.server.server_port}/v1", "m", max_retries=3)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
