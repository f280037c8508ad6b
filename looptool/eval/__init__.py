"""Evaluation: a BFCL-v3 compatible AST checker and the synthetic held-out tool-call eval.

Scores a base model or any round's adapter on the BFCL-v3 categories (multi-turn ones through an
inference loop that runs the model's calls on BFCL's backends), with the official checker's
semantics (and documented opt-in deviations), plus a held-out split of the workspace's own
synthetic samples.
"""
