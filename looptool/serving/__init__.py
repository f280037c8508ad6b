"""Serving: managed vLLM servers and the one client that talks to models.

- `server`: start, reuse, report and stop local vLLM servers (one per distinct model).
- `client`: endpoints and their pools, the OpenAI client, structured outputs, prompt log-probs, LoRA, retries.
- `grammar`: JSON Schemas made into decoding grammars for vLLM's structured outputs.
- `merge`: a LoRA adapter merged into its base weights, to be served as a plain model.
- `target`: which model an evaluation asks (the policy, or the policy with a round's adapter).

The embedded model itself is materialised by `looptool.embedded`.
"""
