"""The semantic tree: domain -> sub-domain -> capability -> function intent.

The tree is curated data down to the leaves (`data/semantic_tree.json`: 24 domains, their
sub-domains, capabilities and intents), so every run covers the domains users meet. The
generator model can grow it: `expand_subdomain` asks for more capabilities and intents of a
sub-domain with structured output. A small model writes poor intents (SmolLM2-135M produces
word salad here), so expansion is for real generators and is off by default for the embedded one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, create_model

from looptool.prompts import render
from looptool.serving.client import Endpoint, structured_call


@dataclass(frozen=True)
class Intent:
    """A leaf of the semantic tree: what one function is for, and where it sits."""

    domain: str
    subdomain: str
    capability: str
    intent: str

    @property
    def path(self) -> str:
        return "/".join((self.domain, self.subdomain, self.capability, self.intent))


@cache
def _tree() -> list[dict]:
    text = resources.files("looptool.tools_sim").joinpath("data", "semantic_tree.json").read_text()
    return json.loads(text)["domains"]


def curated_domains() -> dict[str, list[str]]:
    """Domain -> its sub-domains, from the curated tree."""
    return {d["name"]: [s["name"] for s in d["subdomains"]] for d in _tree()}


def curated_intents(domains: list[str] | None = None) -> list[Intent]:
    """Every curated leaf, optionally of some domains only (unknown names are an error)."""
    known = curated_domains()
    unknown = sorted(set(domains or []) - set(known))
    if unknown:
        raise ValueError(f"unknown domain(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [
        Intent(d["name"], s["name"], c["name"], intent)
        for d in _tree()
        if not domains or d["name"] in domains
        for s in d["subdomains"]
        for c in s["capabilities"]
        for intent in c["intents"]
    ]


# Lowercase words with single spaces, 3-12 of them: the grammar then cannot produce the
# identifier soup a small model otherwise writes ("zpByNizzaCalscals").
# (No max_length beside a pattern: vLLM's grammar backend cannot intersect the two.)
IntentText = Annotated[str, StringConstraints(pattern=r"^[a-z]{1,15}( [a-z]{1,15}){2,11}$")]
PROMPT_EXAMPLES = {"search hotels in a city for given dates", "cancel a booked flight"}


def _expansion_schema(n_caps: int, n_intents: int) -> type[BaseModel]:
    """An output type with exactly n_caps capabilities of exactly n_intents intents each."""
    capability = create_model(
        "Capability",
        capability=(str, Field(pattern=r"^[a-z]{1,15}( [a-z]{1,15}){0,5}$")),
        intents=(list[IntentText], Field(min_length=n_intents, max_length=n_intents)),
    )
    return create_model("Capabilities", capabilities=(list[capability], Field(min_length=n_caps, max_length=n_caps)))


def expand_subdomain(
    endpoint: Endpoint, domain: str, subdomain: str, *, n_caps: int = 3, n_intents: int = 3, seed: int = 0
) -> list[Intent]:
    """Ask the generator for capabilities and intents of one sub-domain."""
    schema = _expansion_schema(n_caps, n_intents)
    prompt = render("looptool.tools_sim", "expand_intents", domain=domain, subdomain=subdomain, n_caps=n_caps, n_intents=n_intents)
    answer = structured_call(endpoint, [("user", prompt)], schema, temperature=0.8, seed=seed, max_tokens=400)
    intents, seen = [], set(PROMPT_EXAMPLES)  # a small model likes to copy the examples
    for cap in answer.capabilities:
        for text in cap.intents:
            if text not in seen:
                seen.add(text)
                intents.append(Intent(domain, subdomain, cap.capability, text))
    return intents
