"""Ask a model one BFCL-v3 multi-turn entry, as BFCL's inference does, running its calls between steps.

This follows BFCL's `BaseHandler.inference_multi_turn_FC` (bfcl_eval/model_handler/base_handler.py)
with the message handling of its local `<tool_call>` models (`local_inference/base_oss_handler.py`,
`qwen_fc.py`):

* The entry gets fresh backend instances (`BackendSession`, loaded from `initial_config`, with the
  long-context fixtures in multi_turn_long_context); they live across all of its turns.
* At each user turn the turn's messages join the conversation. In multi_turn_miss_func the turn
  where withheld functions arrive has no user text: the offered docs grow by those functions and
  the user message is BFCL's fixed `ADDITIONAL_FUNCTION_MESSAGE`.
* Then steps: the model is asked with the whole conversation so far (every step a new request);
  its reply is decoded with `decode_step`, the same reading the scorer uses. A reply without
  calls (plain text, or any malformed block) ends the turn. Otherwise the calls run on the session
  in order, the reply joins the conversation as an assistant message holding those calls (BFCL's
  Qwen FC handler re-renders the extracted calls the same way), each result follows as one `tool`
  message, and the model is asked again.
* After more than `MAXIMUM_STEP_LIMIT` steps with calls in one turn the entry stops there
  (BFCL's `count > MAXIMUM_STEP_LIMIT`, checked after the step's calls ran): the later turns are
  missing, so the scorer fails the entry as force_terminated.

The answer is recorded as the outputs file holds it: per turn, the raw text of each step.
How a step is put to the model (prompt format, request) is the caller's `AskStep`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from looptool.eval.bfcl_multi_turn import decode_step
from looptool.eval.bfcl_multi_turn_data import MultiTurnEntry
from looptool.eval.bfcl_multi_turn_exec import BackendSession
from looptool.eval.bfcl_prompt import multi_turn_tools
from looptool.schema import Message, ToolSpec
from looptool.serving.client import Completion

# BFCL's `MAXIMUM_STEP_LIMIT` (bfcl_eval/constants/default_prompts.py).
MAXIMUM_STEP_LIMIT = 20
# BFCL's `DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC` (bfcl_eval/constants/default_prompts.py): the
# user message of a miss_func turn whose withheld functions have just been offered. Benchmark data, so
# it stays word for word BFCL's rather than living among the project's own prompts.
ADDITIONAL_FUNCTION_MESSAGE = "I have updated some more functions you can choose from. What about now?"

AskStep = Callable[[list[Message], list[ToolSpec]], Awaitable[Completion]]
"""Ask the model for the next step: the conversation so far and the tools offered at this turn."""


@dataclass
class Transcript:
    """What the model said in one entry: per turn, the text of each step; and every request's
    completion (for its latency and token counts)."""

    turns: list[list[str]] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)
    force_terminated: bool = False  # stopped by the step limit

    def as_completion(self) -> Completion:
        """The whole conversation as one answer: the JSON text of its turns (the form the outputs
        file and stored rows use), with the requests' latency and tokens summed."""
        return Completion(
            content=json.dumps(self.turns, ensure_ascii=False),
            model=self.completions[0].model if self.completions else "",
            latency_ms=sum(c.latency_ms for c in self.completions),
            prompt_tokens=_total(c.prompt_tokens for c in self.completions),
            completion_tokens=_total(c.completion_tokens for c in self.completions),
            truncated=any(c.truncated for c in self.completions),
        )


async def converse(entry: MultiTurnEntry, ask_step: AskStep) -> Transcript:
    """Put `entry` to the model turn by turn, running its calls on a fresh `BackendSession`."""
    session = BackendSession(entry)
    history: list[Message] = []
    transcript = Transcript()
    for index, user_messages in enumerate(entry.turns):
        if index in entry.functions_added:
            user_messages = [{"role": "user", "content": ADDITIONAL_FUNCTION_MESSAGE}]
        history += [Message(role=m["role"], content=m.get("content") or "") for m in user_messages]
        tools = multi_turn_tools(entry.functions_at(index))
        steps: list[str] = []
        transcript.turns.append(steps)
        steps_with_calls = 0
        while True:
            completion = await ask_step(list(history), tools)
            transcript.completions.append(completion)
            steps.append(completion.content)
            calls = decode_step(completion.content)
            if not calls:
                history.append(Message(role="assistant", content=completion.content))
                break
            history.append(Message(role="assistant", tool_calls=calls))
            history += [Message(role="tool", name=call.name, content=session.execute(call)) for call in calls]
            steps_with_calls += 1
            if steps_with_calls > MAXIMUM_STEP_LIMIT:
                transcript.force_terminated = True
                return transcript
    return transcript


def _total(counts: Iterable[int | None]) -> int | None:
    """The sum, or None when a server did not say (a count that is partly known is not a total)."""
    values = list(counts)
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)
