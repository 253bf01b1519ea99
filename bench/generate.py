"""
Greedy generation speed of a gpt2-size model (124M parameters, random weights): 100 new tokens from a 16-token
prompt, with the KV cache, without it, and Hugging Face transformers' `generate` on an equal model, in one run.

    python bench/generate.py [--new-tokens 100] [--prompt-tokens 16] [--repeats 3]
"""

import argparse
import time

import torch
import torch.nn.functional as F

from mingpt.model import GPT
from mingpt.pretrained import config_from_hf, load_hf_state_dict


def best_time(fn, repeats):
    fn()  # warm-up: allocations, kernel selection
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--new-tokens", type=int, default=100)
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import transformers

    torch.manual_seed(0)
    hf_config = transformers.GPT2Config()  # gpt2 small: 12 layers, 12 heads, 768 dims, 50257 vocab
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    model = GPT(config_from_hf(hf_config.to_dict()))
    load_hf_state_dict(model, hf.state_dict())  # the very same weights
    model.eval()
    prompt = torch.randint(0, hf_config.vocab_size, (1, args.prompt_tokens))
    n = args.new_tokens

    outputs = {}

    def ours(use_cache):
        outputs[use_cache] = model.generate(prompt, n, use_cache=use_cache)

    def theirs():
        with torch.no_grad():
            outputs["hf"] = hf.generate(
                prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n, min_new_tokens=n,
                do_sample=False, pad_token_id=0,
            )

    # The floor for cached decoding: with batch 1 every step is one matrix-vector product per weight matrix, so each
    # token reads all ~500 MB of float32 weights from memory once. Timing just those products, n times, shows how
    # close a decode loop can get on this machine's memory bandwidth.
    products = [(torch.ones(1, 1, m.in_features), m.weight, m.bias)  # (input, weight, bias) of each Linear
                for m in model.modules() if isinstance(m, torch.nn.Linear)]

    @torch.no_grad()
    def weights_only():
        for _ in range(n):
            for x, weight, bias in products:
                F.linear(x, weight, bias)

    rows = [
        ("floor: the weight reads alone", best_time(weights_only, args.repeats)),
        ("mingpt, KV cache", best_time(lambda: ours(True), args.repeats)),
        ("mingpt, no cache", best_time(lambda: ours(False), max(1, args.repeats - 2))),
        (f"transformers {transformers.__version__} generate", best_time(theirs, args.repeats)),
    ]
    same = torch.equal(outputs[True], outputs[False]) and torch.equal(outputs[True], outputs["hf"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; gpt2-124M random weights, "
          f"{args.prompt_tokens}-token prompt, {n} new tokens, greedy; best of {args.repeats}")
    print(f"{'':<34}{'seconds':>9}{'tokens/s':>10}{'vs cached':>11}")
    cached = rows[1][1]
    for label, seconds in rows:
        print(f"{label:<34}{seconds:>9.2f}{n / seconds:>10.1f}{cached / seconds:>10.2f}x")
    print(f"identical tokens across all three: {same}")


if __name__ == "__main__":
    main()
