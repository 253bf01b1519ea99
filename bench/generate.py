"""
Greedy generation speed of a gpt2-size model (124M parameters, random weights), side by side in one run:
mingpt with the KV cache (fp32 and bf16), without it, Hugging Face transformers' `generate` on an equal model (fp32
and bf16), and the weight-read floor in each dtype; then batches of 1, 4 and 16 prompts of different lengths
(left-padded, with an attention mask) in both libraries.

    python bench/generate.py [--new-tokens 100] [--prompt-tokens 16] [--repeats 3] [--batch-dtype auto]
    python bench/generate.py --size tiny --new-tokens 8 --repeats 1     # a smoke test of the script itself

bf16 is fast only where the CPU multiplies bf16 in hardware (AMX or AVX-512-BF16); the header says whether this one
does. Decoding at batch 1 reads every weight once per token, so bf16 (half the bytes) approaches 2x fp32.
"""

import argparse
import copy
import time

import torch
import torch.nn.functional as F

from mingpt.generation import left_pad
from mingpt.io.pretrained import config_from_hf, load_hf_state_dict
from mingpt.model import GPT
from mingpt.training.precision import cpu_has_native_bf16, inference_dtype
from mingpt.utils import cpu_name

SIZES = {"gpt2": {}, "tiny": dict(n_layer=2, n_head=2, n_embd=64, vocab_size=1000, bos_token_id=0, eos_token_id=0)}


def best_time(fn, repeats):
    fn()  # warm-up: allocations, kernel selection
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def floor(model, n):
    """
    The floor for cached decoding: with batch 1 every step is one matrix-vector product per weight matrix, so each
    token reads every weight from memory once. Timing just those products, n times, shows how close a decode loop
    can get on this machine's memory bandwidth, in the model's dtype.
    """
    products = [(torch.ones(1, 1, m.in_features, dtype=m.weight.dtype), m.weight, m.bias)
                for m in model.modules() if isinstance(m, torch.nn.Linear)]

    @torch.no_grad()
    def weights_only():
        for _ in range(n):
            for x, weight, bias in products:
                F.linear(x, weight, bias)

    return weights_only


def hf_generate(hf, idx, attention_mask, n):
    with torch.no_grad():
        return hf.generate(idx, attention_mask=attention_mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                           pad_token_id=0)


def same_prefix(a, b):
    """How many leading tokens two 1-D sequences share."""
    unequal = (a != b).nonzero()
    return int(unequal[0]) if len(unequal) else len(a)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--new-tokens", type=int, default=100)
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", default="gpt2", choices=SIZES)
    parser.add_argument("--batch-dtype", default="auto", choices=("auto", "fp32", "bf16"),
                        help="dtype of the batched comparison (auto: bf16 on CPUs with native bf16, else fp32)")
    args = parser.parse_args()

    import transformers

    torch.manual_seed(0)
    hf_config = transformers.GPT2Config(**SIZES[args.size])  # gpt2 small: 12 layers, 12 heads, 768 dims, 50257 vocab
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    model = GPT(config_from_hf(hf_config.to_dict()))
    load_hf_state_dict(model, hf.state_dict())  # the very same weights
    model.eval()
    hf_bf16 = copy.deepcopy(hf).to(torch.bfloat16)
    model_bf16 = copy.deepcopy(model).to(torch.bfloat16)
    prompt = torch.randint(0, hf_config.vocab_size, (1, args.prompt_tokens))
    ones = torch.ones_like(prompt)
    n = args.new_tokens

    outputs = {}

    def ours(key, m, use_cache=True):
        return lambda: outputs.__setitem__(key, m.generate(prompt, n, use_cache=use_cache))

    def theirs(key, m):
        return lambda: outputs.__setitem__(key, hf_generate(m, prompt, ones, n))

    rows = [
        ("floor: fp32 weight reads alone", best_time(floor(model, n), args.repeats)),
        ("floor: bf16 weight reads alone", best_time(floor(model_bf16, n), args.repeats)),
        ("mingpt fp32, KV cache", best_time(ours("fp32", model), args.repeats)),
        ("mingpt bf16, KV cache", best_time(ours("bf16", model_bf16), args.repeats)),
        ("mingpt fp32, no cache", best_time(ours("fp32 uncached", model, False), max(1, args.repeats - 2))),
        (f"transformers {transformers.__version__} fp32", best_time(theirs("hf fp32", hf), args.repeats)),
        (f"transformers {transformers.__version__} bf16", best_time(theirs("hf bf16", hf_bf16), args.repeats)),
    ]
    seconds = dict(rows)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_name()}, "
          f"native bf16 (AMX or AVX-512-BF16): {cpu_has_native_bf16()}")
    print(f"{args.size} random weights, {args.prompt_tokens}-token prompt, {n} new tokens, greedy; best of "
          f"{args.repeats}")
    print(f"{'batch 1':<34}{'seconds':>9}{'tokens/s':>10}{'vs fp32 cached':>16}")
    cached = seconds["mingpt fp32, KV cache"]
    for label, s in rows:
        print(f"{label:<34}{s:>9.2f}{n / s:>10.1f}{cached / s:>15.2f}x")
    bf16 = seconds["mingpt bf16, KV cache"]
    hf_labels = [label for label, _ in rows if label.startswith("transformers")]
    print(f"mingpt bf16 cached: {seconds[hf_labels[0]] / bf16:.2f}x transformers fp32, "
          f"{seconds[hf_labels[1]] / bf16:.2f}x transformers bf16, "
          f"{seconds['floor: bf16 weight reads alone'] / bf16:.0%} of the bf16 floor's speed")
    fp32_same = all(torch.equal(outputs["fp32"], outputs[k]) for k in ("fp32 uncached", "hf fp32"))
    print(f"fp32: identical tokens (mingpt cached, uncached, transformers): {fp32_same}; "
          f"bf16 agrees with fp32 for the first {same_prefix(outputs['bf16'][0, -n:], outputs['fp32'][0, -n:])} "
          f"of {n} tokens, transformers bf16 for {same_prefix(outputs['hf bf16'][0, -n:], outputs['fp32'][0, -n:])} "
          f"(where fewer: with random weights the top-2 logits are often close, and bf16 rounding flips an argmax)")

    # Batches of prompts of different lengths: left padding + attention mask in both libraries.
    dtype = inference_dtype(args.batch_dtype, "cpu")
    ours_b, theirs_b = (model_bf16, hf_bf16) if dtype is torch.bfloat16 else (model, hf)
    print(f"\nbatched, {dtype}, prompts of {args.prompt_tokens // 2}..{args.prompt_tokens} tokens, {n} new tokens each")
    print(f"{'batch':<7}{'mingpt tokens/s':>17}{'transformers':>14}{'ratio':>8}{'  identical tokens'}")
    if dtype is not torch.float32:  # each library rounds in its own order; the fp32 tests compare exactly
        print("(in bf16 the two libraries' tokens may differ by rounding; in fp32 they are identical: "
              "tests/test_batched_generation.py)")
    g = torch.Generator().manual_seed(1)
    for batch in (1, 4, 16):
        lengths = torch.randint(args.prompt_tokens // 2, args.prompt_tokens + 1, (batch,), generator=g)
        prompts = [torch.randint(0, hf_config.vocab_size, (int(L),), generator=g).tolist() for L in lengths]
        idx, mask = left_pad(prompts)
        out = {}
        t_ours = best_time(lambda: out.__setitem__("ours", ours_b.generate(idx, n, attention_mask=mask)),
                           args.repeats)
        t_theirs = best_time(lambda: out.__setitem__("theirs", hf_generate(theirs_b, idx, mask, n)), args.repeats)
        print(f"{batch:<7}{batch * n / t_ours:>17.1f}{batch * n / t_theirs:>14.1f}{t_theirs / t_ours:>7.2f}x"
              f"  {torch.equal(out['ours'], out['theirs'])}", flush=True)


if __name__ == "__main__":
    main()
