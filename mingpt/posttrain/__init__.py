"""
After pretraining: adapting a trained GPT to a task, to a conversation format or to preferences. One idea per file:

    chat.py   the chat format: special tokens for roles and end of turn, grown embeddings, generation that stops
    sft.py    supervised fine-tuning on conversations, the loss masked to the assistant's tokens
    lora.py   LoRA: frozen weights plus a trained low-rank correction; merge/unmerge; PEFT's adapter format
    dpo.py    Direct Preference Optimization: the loss from the paper, with a frozen reference model
    rl.py     a small reinforcement-learning loop: sampled answers, checked rewards, group advantages (GRPO-style)

This room stands above the core (it uses the model and the Trainer), beside data/, exercises/ and cli/.
"""
