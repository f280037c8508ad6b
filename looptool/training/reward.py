"""The tool-call reward for GRPO: does a completion make exactly the calls its label asks for?

Why binary. The method trains with a binary reward: 1 when the completion's parsed tool calls
equal the label's, 0 otherwise; when the label has no call, 1 when the completion makes none; 0
on any parse failure. A binary signal cannot be gamed by getting half of a call right, and it is
the same test that greedy capability probing uses to call a sample "correct", so what training
rewards is exactly what the loop later measures.

One comparison. Reading calls out of text and comparing them is done by `looptool.calls` only
(`parse_calls`, `label_matches`, `match_key`); this module never parses or compares calls by
itself. That comparison treats the calls of one answer as a multiset (parallel calls may come in
any order, and a duplicated call must be duplicated), keeps the order of list arguments
(`[1, 2]` is not `[2, 1]`), counts equal numbers as equal (`1 == 1.0`) but keeps booleans apart
from numbers (`True != 1`).

Partial credit. `partial_reward` is an optional, denser signal for a weak model that rarely
gets a whole answer right: half the credit for calling the right functions (names as a
multiset), half for calls that match exactly, both divided by the larger of the expected and
predicted call counts so that extra calls cost as much as missing ones. It is 1.0 exactly when
the binary reward is 1.0 and strictly lower otherwise, and an unreadable answer still gets 0.
It is off by default: the binary reward is the method's.

Accepted alternatives. A label may hold other accepted answers (a judge's BOTH_OK verdict adds the
policy's answer): the binary reward is 1 for a match with any of them, and the partial reward
takes its credit against the closest one.

TRL. `reward_function(kind)` gives the callable that `trl.GRPOTrainer` takes in
`reward_funcs`. TRL calls it with `prompts`, `completions`, `completion_ids` and every dataset
column as keyword arguments; the dataset must have a "label" column holding
`Label.model_dump_json()` for each row. Completions are strings for text prompts, or lists of
message dicts for conversational prompts; when the tokenizer parses responses, an assistant
message may carry its calls in a structured "tool_calls" field instead of its text, and those
calls are written back as `<tool_call>` blocks so that the same parser reads them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from looptool.calls import ParseResult, label_matches, match_key, parse_calls
from looptool.schema import Label, ToolCall

__all__ = [
    "REWARDS",
    "ToolCallReward",
    "binary_reward",
    "completion_text",
    "parse_label",
    "partial_reward",
    "reward_function",
]

REWARD_NAME = "tool_call_reward"  # TRL logs a reward as "rewards/<name>/mean"


# ---------------------------------------------------------------------------------------------
# Inputs


def completion_text(completion: Any) -> str:
    """The text a completion answers with.

    A string is itself; a list of messages gives its assistant messages' text joined by newlines;
    a single message dict gives its own text. A message's text is its content (a string, None, or
    a list of {"type": "text", "text": ...} parts) followed by its structured "tool_calls", if
    any, written as `<tool_call>` blocks. Anything else raises TypeError: a dataset wired wrongly
    must fail loudly rather than train on zero rewards.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        role = completion.get("role", "assistant")
        if role != "assistant":
            raise TypeError(f"completion is a {role!r} message, expected an assistant message")
        return _message_text(completion)
    if isinstance(completion, list):
        if not all(isinstance(m, dict) for m in completion):
            kinds = sorted({type(m).__name__ for m in completion if not isinstance(m, dict)})
            raise TypeError(f"completion messages must be dicts, got {', '.join(kinds)}")
        texts = [_message_text(m) for m in completion if m.get("role") == "assistant"]
        if not texts:
            roles = [m.get("role") for m in completion]
            raise TypeError(f"completion has no assistant message (roles: {roles!r:.120})")
        return "\n".join(texts)
    raise TypeError(
        f"completion must be a str, a message dict or a list of messages, got {type(completion).__name__}"
    )


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "".join(_part_text(part) for part in content)
    else:
        raise TypeError(f"message content must be a str, None or a list of parts, got {type(content).__name__}")
    blocks = [_tool_call_block(call) for call in _tool_calls(message)]
    return "\n".join([text, *blocks]) if blocks else text


def _part_text(part: Any) -> str:
    if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
        raise TypeError(f"content parts must be {{'type': 'text', 'text': str}}, got {part!r:.120}")
    return part["text"]


def _tool_calls(message: dict[str, Any]) -> list[Any]:
    calls = message.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise TypeError(f"message tool_calls must be a list, got {type(calls).__name__}")
    return calls


def _tool_call_block(call: Any) -> str:
    """One structured call as the text the parser reads; the parser, not this module, judges it."""
    try:
        body = json.dumps(call, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"a structured tool call is not JSON-serialisable: {exc}") from None
    return f"<tool_call>\n{body}\n</tool_call>"


def parse_label(value: Any) -> Label:
    """A Label from a Label, a dict, or a JSON string (the dataset's "label" column)."""
    if isinstance(value, Label):
        return value
    try:
        if isinstance(value, str):
            return Label.model_validate_json(value)
        if isinstance(value, dict):
            return Label.model_validate(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "label"
        raise ValueError(f"invalid label {value!r:.200}: {where}: {err.get('msg', 'invalid')}") from None
    raise ValueError(f"a label must be a Label, a dict or a JSON string, got {type(value).__name__}: {value!r:.200}")


# ---------------------------------------------------------------------------------------------
# Rewards on one completion


def _binary(parse: ParseResult, label: Label) -> float:
    return 1.0 if label_matches(parse, label) else 0.0


def _partial(parse: ParseResult, label: Label) -> float:
    if label_matches(parse, label):
        return 1.0  # the one way to score 1, so partial == 1.0 exactly when binary == 1.0
    if not parse.ok or parse.status != "calls":
        return 0.0
    # Credit against the closest accepted answer: the label's own or one a judge accepted (BOTH_OK).
    return max((_call_credit(answer.calls, parse.calls) for answer in label.answers() if not answer.is_no_call),
               default=0.0)


def _call_credit(expected: list[ToolCall], predicted: list[ToolCall]) -> float:
    n = max(len(expected), len(predicted))
    names = Counter(c.name for c in expected) & Counter(c.name for c in predicted)
    exact = Counter(map(match_key, expected)) & Counter(map(match_key, predicted))
    # Not a match, so the multisets differ and fewer than n calls match exactly: the score is < 1.
    return 0.5 * sum(names.values()) / n + 0.5 * sum(exact.values()) / n


def binary_reward(completion: Any, label: Any) -> float:
    """1.0 when the completion makes exactly the label's calls (or, for a no-call label, none)."""
    return _binary(parse_calls(completion_text(completion)), parse_label(label))


def partial_reward(completion: Any, label: Any) -> float:
    """A score in [0, 1]: half for the right function names, half for exactly right calls.

    0 for an unreadable answer, for a call where none was expected, and for no call where calls
    were expected. Equal to 1.0 exactly when `binary_reward` is 1.0.
    """
    return _partial(parse_calls(completion_text(completion)), parse_label(label))


REWARDS: dict[str, Callable[[Any, Any], float]] = {"binary": binary_reward, "partial": partial_reward}
_SCORERS: dict[str, Callable[[ParseResult, Label], float]] = {"binary": _binary, "partial": _partial}


# ---------------------------------------------------------------------------------------------
# The batch function TRL calls


class ToolCallReward:
    """A GRPOTrainer reward function: `fn(prompts=..., completions=..., label=..., **columns)`.

    A class instance rather than a closure so that it pickles; its `__name__` is what TRL logs
    ("rewards/tool_call_reward"). When TRL passes `log_metric`, the share of completions that
    could not be parsed is logged as "tool_call/parse_error_rate".
    """

    def __init__(self, kind: str = "binary") -> None:
        if kind not in REWARDS:
            raise ValueError(f"unknown reward kind {kind!r}; valid kinds: {sorted(REWARDS)}")
        self.kind = kind
        self.__name__ = REWARD_NAME

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r})"

    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] | None = None,
        label: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        if completions is None:
            raise ValueError("the reward function needs `completions`")
        if label is None:
            raise ValueError('the dataset needs a "label" column (Label JSON, one per row) for the tool-call reward')
        if isinstance(label, (str, bytes, dict, Label)) or not isinstance(label, Sequence):
            raise ValueError(f'the "label" column must come as a list, one per completion, got {type(label).__name__}')
        if len(label) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(label)} labels")
        if prompts is not None and len(prompts) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(prompts)} prompts")
        scorer = _SCORERS[self.kind]
        rewards, errors = [], 0
        for i, (completion, raw_label) in enumerate(zip(completions, label)):
            try:
                text, gold = completion_text(completion), parse_label(raw_label)
            except TypeError as exc:
                raise TypeError(f"completion {i}: {exc}") from None
            except ValueError as exc:
                raise ValueError(f"row {i}: {exc}") from None
            parse = parse_calls(text)
            errors += not parse.ok
            rewards.append(float(scorer(parse, gold)))
        log_metric = kwargs.get("log_metric")
        if callable(log_metric) and rewards:
            log_metric("tool_call/parse_error_rate", errors / len(rewards))
        return rewards


def reward_function(kind: str = "binary") -> ToolCallReward:
    """The TRL reward function for `kind` ("binary", the default, or "partial")."""
    return ToolCallReward(kind)
