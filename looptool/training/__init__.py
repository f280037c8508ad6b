"""Training: chat/tool templates, dataset building, the tool-call reward, GRPO and SFT.

Will hold GRPO with TRL + PEFT (LoRA, or QLoRA through bitsandbytes), the SFT warm start for a
policy that cannot yet call tools, and greedy capability probing (GCP). Each training run is a
subprocess so that accelerator memory is returned when it ends.
"""
