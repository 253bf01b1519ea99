"""
The parts of language models after GPT-2 (a room below the core): each chosen by a config switch (mingpt/config.py)
and built into the same GPT (model.py), so a student can swap one part at a time and watch what changes.

    parts.py        the switchboard: which class stands at each place of GPT for a given config
    rotary.py       rotary position embeddings (RoPE): theta, partial rotation (Pythia), Llama 3's scaling
    norms.py        RMSNorm, with and without a learned gain
    mlps.py         exact-GELU, ReLU² and SwiGLU MLPs of any width
    attention.py    grouped-query attention, QK-norm, q/k/v biases and rotary, mixed into GPT-2's attention
    blocks.py       the parallel block of GPT-NeoX: x + attn(ln_1(x)) + mlp(ln_2(x))

Nothing here imports the model: model.py hands its own CausalSelfAttention and Block to `parts.choose_parts`.
"""
