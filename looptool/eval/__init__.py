"""Evaluation: BFCL-v3 and ACEBench compatible checkers and the synthetic held-out tool-call eval.

Scores a base model or any round's adapter on the BFCL-v3 categories (multi-turn ones through an
inference loop that runs the model's calls on BFCL's backends) and on ACEBench's Normal and
Special categories, with the official checkers' semantics (and documented opt-in deviations),
plus a held-out split of the workspace's own synthetic samples.
"""
