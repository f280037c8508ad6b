"""Taking the results out of a workspace, for tools that do not know LoopTool.

    data.py          the samples as a Hugging Face dataset, parquet or OpenAI-style chat JSONL
    model.py         a round's LoRA adapter, or the base with it merged, with a model card
    chat_template.py the chat template that prompts an exported model as training did
    dialogues.py     the seed dialogues with their agent traces as JSONL
    samples.py       the samples for the command line: a filtered table, one sample in full
    files.py         writing an export directory whole or not at all

Every export goes to a directory that is written beside its target and renamed into place, so a
killed export leaves the old directory or none, never half of one.
"""
