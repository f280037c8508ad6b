"""Seed data (method stage 0, steps 2-3): scenario plans, dialogue verification, and samples.

The agents that talk live in `looptool.agents`, their wiring in `looptool.seed.graph` (its state
and run context in `looptool.seed.state`); this package holds the decisions in between: which
scenario and tools a dialogue gets, whether a finished dialogue is good enough, and which of its
turns become training samples.
"""
