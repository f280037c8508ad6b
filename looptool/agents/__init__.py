"""One module per agent role: planner, user, assistant, tool, judge, expander.

Each agent will be a prompt template file, a pydantic output schema and one small function that
calls its role's model through `looptool.serving`. Agents know prompts, not graphs: no
orchestration lives here.
"""
