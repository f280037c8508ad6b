"""A scripted OpenAI-compatible server for fast tests of control flow (never of model quality).

Replies come from a queue of (status, body) pairs, or from a `responder(path, body)` function
when the queue is empty; every request is recorded. A body is a dict (sent as JSON) or bytes
(sent as they are, as text/html: a broken server's error page, binary junk, nothing). A server
can be made to fail for good (`fail_after`: HTTP 500 for every POST after the first N) and slow
(`delay_s` per POST); it counts the requests it holds at once (`peak_in_flight`).
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
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


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog (5) resets connections when many requests are in flight
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up mid-reply (it gave up on a broken body) is no error of the fake's


class FakeOpenAI:
    def __init__(self) -> None:
        self.replies: list[tuple[int, dict]] = []
        self.requests: list[tuple[str, dict]] = []
        self.responder: Callable[[str, dict], tuple[int, dict]] | None = None
        self.fail_after: int | None = None  # HTTP 500 for every POST after this many
        self.delay_s = 0.0  # each POST is answered this late
        self.posts = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do: clients reuse connections
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: dict | bytes) -> None:
                raw = isinstance(body, bytes)
                data = body if raw else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if raw else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._reply(200, {"data": [{"id": "m"}, {"id": "adapter"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    fake.requests.append((self.path, body))
                    fake.posts += 1
                    failing = fake.fail_after is not None and fake.posts > fake.fail_after
                    queued = fake.replies.pop(0) if fake.replies and not failing else None
                    fake.in_flight += 1
                    fake.peak_in_flight = max(fake.peak_in_flight, fake.in_flight)
                try:
                    time.sleep(fake.delay_s)
                    if failing:
                        queued = (500, {"error": "scripted failure"})
                    elif queued is None and fake.responder is not None:
                        queued = fake.responder(self.path, body)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1
                self._reply(*(queued or (200, {})))

        self.server = _Server(("127.0.0.1", 0), Handler)
        # A short poll: `close` waits for the serving loop's next poll (0.5 s by default), in every test.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
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
        if "pattern" in schema:
            return regex_instance(schema["pattern"], rng)
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


def regex_instance(pattern: str, rng: random.Random) -> str:
    """A string matching `pattern`, for the regexes agents send: literals, escapes, [classes],
    [^negated classes], quantifiers {n}, {m,n}, ?, * and +, anchors."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch in "^$":
            i += 1
            continue
        if ch == "\\":
            escaped = {"d": "0123456789", "w": "abcxyz", "s": " "}.get(pattern[i + 1], pattern[i + 1])
            choices, i = list(escaped), i + 2
        elif ch == "[":
            end = pattern.index("]", i + 2)
            body, negated = pattern[i + 1 : end], pattern[i + 1] == "^"
            body = body[1:] if negated else body
            members = set()
            j = 0
            while j < len(body):
                if body[j] == "\\":
                    members.add({"n": "\n", "t": "\t"}.get(body[j + 1], body[j + 1]))
                    j += 2
                elif j + 2 < len(body) and body[j + 1] == "-":
                    members |= {chr(c) for c in range(ord(body[j]), ord(body[j + 2]) + 1)}
                    j += 3
                else:
                    members.add(body[j])
                    j += 1
            choices = [c for c in "abcdefghij klmnop" if c not in members] if negated else sorted(members)
            i = end + 1
        elif ch in "(|)":
            raise NotImplementedError(f"regex_instance: groups are not supported: {pattern!r}")
        else:
            choices, i = [ch], i + 1
        low, high = 1, 1
        if i < len(pattern) and pattern[i] == "{":
            end = pattern.index("}", i)
            bounds = pattern[i + 1 : end].split(",")
            low = int(bounds[0])
            high = int(bounds[-1]) if bounds[-1] else low + 8
            i = end + 1
        elif i < len(pattern) and pattern[i] in "?*+":
            low, high = {"?": (0, 1), "*": (0, 8), "+": (1, 8)}[pattern[i]]
            i += 1
        out += [rng.choice(choices) for _ in range(rng.randint(low, min(high, low + 12)))]
    return "".join(out)


def schema_name(body: dict) -> str:
    """The name of a request's response JSON schema (the agent's name for LoopTool's agents)."""
    return body["response_format"]["json_schema"]["name"]


def prompt_of(body: dict) -> str:
    return json.dumps(body.get("messages"), sort_keys=True)


def instance_reply(body: dict, key: str) -> dict:
    """A reply with an instance of the request's response schema, chosen by `key`."""
    schema = body["response_format"]["json_schema"]["schema"]
    return chat_reply(json.dumps(schema_instance(schema, random.Random(hashlib.sha256(key.encode()).hexdigest()))))


def json_schema_responder(vary: Callable[[str, int], int] | None = None):
    """A responder answering every request with an instance of its response JSON schema, chosen
    deterministically from the prompt, so the same prompt always gets the same answer (and two
    runs of the same work give the same data). `vary(prompt, nth)` may return a different
    variant for the nth identical prompt (to make self-consistency samples disagree)."""
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def respond(path: str, body: dict) -> tuple[int, dict]:
        prompt = prompt_of(body)
        with lock:
            nth = seen.get(prompt, 0)
            seen[prompt] = nth + 1
        variant = vary(prompt, nth) if vary else 0
        return 200, instance_reply(body, prompt if variant == 0 else f"{prompt}|{variant}")

    return respond
