"""The loop (method stages 1-4), one module per stage, under one LangGraph graph.

- `graph`: the round loop (train -> probe -> verify -> expand -> assemble -> evaluate), compiled
  with the SQLite checkpointer so a killed run resumes; graph state carries ids and counters, rows
  live in the store. Its nodes and routing are top-level functions of the state and the run's
  context; `state`: that state (`LoopState`) and context (`LoopContext`).
- `probe`: greedy capability probing (GCP) of a round's data with the trained policy.
- `verify`: judge-guided label verification (JGLV), its own graph.
- `expand`: error-driven data expansion (EDDE).
- `assemble`: the next round's data (Eq. 5's parts).
- `evaluate`: the round's adapter on the held-out samples and the benchmark subsets.
- `control`: the pause file, the one-loop-at-a-time lock, and the review gate.
- `arms`: the static arm and the ablations, run from the same start as the loop.
"""
