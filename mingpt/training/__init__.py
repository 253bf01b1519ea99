"""
What makes the training loop safe and fast (a room below the core): the Trainer (mingpt/trainer.py) is the recipe,
and calls these parts by name.

    checks.py      the checks of the trainer's settings, and the NaN/inf guard before each optimizer step
    optimizer.py   AdamW and the one weight-decay rule (Linear weights decay; biases, norms, embeddings not)
    schedule.py    the learning-rate schedule (warmup, cosine) and keeping its horizon on resume
    batching.py    which examples each step trains on (StepSampler), the DataLoader path, the batch_iterator protocol
    callbacks.py   built-in callbacks: progress logging, a loss-curve plot, a time limit
    checkpoint.py  atomic save, safe load, RNG state, reading trainer.resume
    resume.py      continuing a run exactly: every state a checkpoint holds put back, the schedule kept
    distributed.py several processes under torchrun: process group, DDP wrapping, all-reduce helpers
    precision.py   mixed precision: what fp32 / bf16 / fp16 / auto mean on each device
    mfu.py         model FLOPs utilisation: GPUs' peak FLOP/s and the ratio
    evaluation.py  eval_loss over a shard's windows (also a Trainer callback); evaluation_due, the one schedule

Nothing here imports the model or the Trainer: they serve any nn.Module whose forward(x, y) returns (output, loss).
"""
