"""Tool specs and their simulation.

Will hold: API synthesis from semantic trees (domain -> capability -> function intent) and
constraint trees (types, enums, ranges, required/optional, nesting); importers for OpenAI tools
JSON, BFCL function docs and MCP tool lists; argument validation against JSON Schema; and the
LLM-backed tool-execution simulator, which checks arguments against the spec and never runs code.
"""
