"""Prompt files: every prompt lives in a `prompts/` folder beside the code that uses it.

Prompts are `string.Template` text (`$name` placeholders), so JSON braces in a prompt need no
escaping. A prompt starts with its fixed text and puts what varies (tools, conversation) last:
requests that share a start share the server's prefix cache, and prompt tokens are what a busy
server spends most of its time on. `render` fails loudly on a missing placeholder value rather than sending a model a
prompt with a hole in it.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template


@cache
def load_prompt(package: str, name: str) -> Template:
    """The template `<package>/prompts/<name>.md`."""
    return Template(resources.files(package).joinpath("prompts", f"{name}.md").read_text())


def render(package: str, prompt: str, /, **values: object) -> str:
    """The prompt `<package>/prompts/<prompt>.md` with its `$placeholders` filled."""
    return load_prompt(package, prompt).substitute({k: str(v) for k, v in values.items()}).strip()
