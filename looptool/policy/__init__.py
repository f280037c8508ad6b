"""The policy model as every stage sees it: its prompt (`prompt`: how tools, history and calls are
rendered, and the chat template that wraps them) and where its weights are (`weights`).

Seed samples, training, probing and evaluation import it from here, below all of them, so the
model is asked in one form everywhere.
"""
