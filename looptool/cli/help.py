"""How the commands' help is shown: each docstring as paragraphs that wrap to the terminal."""

from __future__ import annotations

import inspect
import re

import typer


def _flowing_help(group: typer.Typer) -> None:
    """Each command's help as paragraphs that wrap to the terminal, and its first sentence as its
    line in the command lists of --help: typer's rich mode keeps a docstring's line breaks after
    its first paragraph, which cut sentences in odd places once the terminal wraps them too."""
    for info in group.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            if info.short_help is None:
                info.short_help = first_sentence(info.callback.__doc__)
            info.help = flowing_paragraphs(info.callback.__doc__)
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _flowing_help(sub.typer_instance)


def flowing_paragraphs(doc: str) -> str:
    """A docstring with each paragraph on one line; a paragraph with indented lines (an example,
    a table) keeps its line breaks. A config section's name ("[eval]") is escaped, or rich's
    markup would take it for a style and leave it out."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    text = "\n\n".join(p if any(line.startswith(" ") for line in p.splitlines()) else " ".join(p.split())
                        for p in paragraphs)
    return re.sub(r"(?<!\\)\[([a-z_.]+)\]", r"\\[\1]", text)


def first_sentence(doc: str) -> str:
    """The first sentence of a docstring's first paragraph, on one line (all of the paragraph when
    no sentence ends in it)."""
    paragraph = " ".join(inspect.cleandoc(doc).split("\n\n", 1)[0].split())
    end = re.search(r"[.?!](\s|$)", paragraph)
    return paragraph[: end.start() + 1] if end else paragraph
