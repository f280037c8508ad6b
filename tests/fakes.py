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


# -- a fake model that answers any JSON-schema request -------------------------------------------

_PATTERN_VALUES = {"^[A-Z]{2}$": "US", "^[A-Z]{3}$": "USD", "^[a-z]{2}$": "en"}
_FORMAT_VALUES = {
    "date": "2025-03-14", "date-time": "2025-03-14T10:00:00Z", "email": "ana@example.com",
    "uri": "https://example.com/item",
}  # fmt: skip
_WORDS = ("alpha", "bravo", "delta", "lima", "oscar", "paris", "tango", "zulu")


def schema_instance(schema: dict[str, Any], rng) -> Any:
    """A value that validates against `schema` (the subset LoopTool's agents and tools use)."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    if "anyOf" in schema:
        return schema_instance(rng.choice(schema["anyOf"]), rng)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "string":
        if schema.get("pattern") in _PATTERN_VALUES:
            return _PATTERN_VALUES[schema["pattern"]]
        if schema.get("format") in _FORMAT_VALUES:
            return _FORMAT_VALUES[schema["format"]]
        text = " ".join(rng.choice(_WORDS) for _ in range(3))
        while len(text) < schema.get("minLength", 0):
            text += " " + rng.choice(_WORDS)
        return text[: schema.get("maxLength", 10_000)]
    if kind in ("integer", "number"):
        low = schema.get("minimum", 0)
        high = schema.get("maximum", low + 100)
        value = rng.randint(int(-(-low // 1)), int(high // 1))
        return value if kind == "integer" else float(value)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "array":
        count = max(schema.get("minItems", 1), min(schema.get("maxItems", 2), 2))
        return [schema_instance(schema.get("items", {"type": "string"}), rng) for _ in range(count)]
    properties = schema.get("properties", {})
    return {key: schema_instance(sub, rng) for key, sub in properties.items()}


def json_schema_responder(vary: Callable[[str, int], int] | None = None):
    """A responder answering every request with an instance of its response JSON schema, chosen
    deterministically from the prompt, so the same prompt always gets the same answer (and two
    runs of the same work give the same data). `vary(prompt, nth)` may return a different
    variant for the nth identical prompt (to make self-consistency samples disagree)."""
    import hashlib
    import random

    seen: dict[str, int] = {}
    lock = threading.Lock()

    def respond(path: str, body: dict) -> tuple[int, dict]:
        prompt = json.dumps(body.get("messages"), sort_keys=True)
        with lock:
            nth = seen.get(prompt, 0)
            seen[prompt] = nth + 1
        variant = vary(prompt, nth) if vary else 0
        digest = hashlib.sha256(f"{prompt}|{variant}".encode()).hexdigest()
        schema = body["response_format"]["json_schema"]["schema"]
        return 200, chat_reply(json.dumps(schema_instance(schema, random.Random(digest))))

    return respond
