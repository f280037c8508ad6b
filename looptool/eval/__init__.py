"""Evaluation: a BFCL-v3 compatible AST checker and the synthetic held-out tool-call eval.

Will score a base model or any round's adapter on the BFCL-v3 single-turn categories, with the
official checker's semantics (and documented opt-in deviations), plus a held-out split of the
workspace's own synthetic samples.
"""
