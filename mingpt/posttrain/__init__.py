"""
After pretraining: what a class does next with a GPT. Chat fine-tuning (chat), supervised fine-tuning on
conversations (sft) and a small reinforcement-learning loop with checked rewards (rl).
"""
