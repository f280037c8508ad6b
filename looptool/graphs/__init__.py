"""LangGraph StateGraphs that wire the agents together.

Will hold the seed-dialogue graph, label verification (JGLV), error-driven expansion (EDDE) and
the round loop itself, each compiled with the SQLite checkpointer so a killed run resumes. Graph
state carries ids and counters; rows live in the store.
"""
