"""Training: dataset building, the tool-call reward, GRPO and the SFT warm start.

GRPO with TRL + PEFT (LoRA, or QLoRA through bitsandbytes) and the SFT warm start for a policy that
cannot yet call tools. Each training run is a subprocess so that accelerator memory is returned
when it ends. The policy's prompt rendering is `looptool.policy`; probing, assembling a round's
data and the loop around them are `looptool.loop`.
"""
