"""
After pretraining: adapting a trained GPT to a task or to preferences. One idea per file:

    lora.py   LoRA: frozen weights plus a trained low-rank correction; merge/unmerge; PEFT's adapter format
    dpo.py    Direct Preference Optimization: the loss from the paper, with a frozen reference model

This room stands above the core (it uses the model and the Trainer), beside data/, exercises/ and cli/.
"""
