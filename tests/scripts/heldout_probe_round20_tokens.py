"""The held-out probe, round 20, tokens part: convention transplants (nanoGPT, HF generation's logits warpers and
DynamicCache, Llama's static cache, Karpathy's top_k_top_p_filtering gist, minbpe, OpenAI's encoder.py, tiktoken's
rank loop). Greedy and sampling here; the KV cache in _tokens2, merge and BPE encode in _tokens3.

Untuned (written before reading the checkers; mistakes / caught / named / misnamed, valid passed / valid, crashes),
named by judgment after five commented regex widenings (62 named by the regexes as first written):
  check_greedy          14 / 14 / 14 / 0,  5 / 5, 0
  check_sampling_probs  15 / 14 / 13 / 0,  6 / 6, 0   (a -1e4 fill passed; HF's ascending top-p against p not named)
  check_kv_cache        17 / 17 / 16 / 0,  5 / 5, 0   (Llama's (B, T, nh, hs) layout returned: not named, T == nh)
  check_merge           12 / 12 / 12 / 0,  4 / 4, 0
  check_bpe_encode      12 / 12 / 12 / 0,  4 / 4, 0
  total                 70 / 69 / 67 (96 %) / 0, 24 / 24, 0 crashes
Tuned: 70 / 70 / 70 / 0, 24 / 24, 0 crashes. sampling_edges.py tries very negative logits (a finite fill such as
-1e4 then outranks every kept logit: named); sampling_arguments.py (the argument mistakes, split out of sampling.py)
gained top-p with 1 - p (HF's ascending sort compared with top_p); kvcache_mistakes.py names keys and values returned
in a (B, T, nh, hs) buffer's layout (time and heads swapped).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round20_modern  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 20


# ------------------------------------------------------------------------------------------ greedy
@mistake(ex.check_greedy, r"flat|dim|axis|shape|row")
def greedy_r20_argmax_no_dim(logits):  # argmax over the flattened (B, V): one index into B*V
    return logits.argmax()


@mistake(ex.check_greedy, r"dim|axis|batch|row|shape")
def greedy_r20_dim0(logits):  # TransformerLens-style 1-D habit: argmax over dim 0 (the batch)
    return torch.argmax(logits, dim=0)


@mistake(ex.check_greedy, r"shape|keepdim|\(B, 1\)|squeeze")
def greedy_r20_nanogpt_topk_keeps_k_axis(logits):  # nanoGPT's topk(k=1) gives (B, 1): never squeezed
    _, idx_next = torch.topk(logits, k=1, dim=-1)
    return idx_next


@mistake(ex.check_greedy, r"values|logit|not.*(id|index)|max value|float")
def greedy_r20_topk_values(logits):  # .values where .indices was meant
    return torch.topk(logits, 1, dim=-1).values.squeeze(-1)


@mistake(ex.check_greedy, r"values|logit|not.*(id|index)|max value|float")
def greedy_r20_max_tuple_first(logits):  # torch.max returns (values, indices): [0] is the values
    return logits.max(-1)[0]


@mistake(ex.check_greedy, r"argmin|smallest|least|lowest|min")
def greedy_r20_sorted_ascending(logits):  # sort ascending then take the first: the least likely token
    return logits.sort(dim=-1).indices[:, 0]


@mistake(ex.check_greedy, r"argmin|smallest|least|lowest|min")
def greedy_r20_argmin_loss_habit(logits):  # 'lower is better' habit from losses/energies
    return logits.argmin(dim=-1)


@mistake(ex.check_greedy, r"float|integer|dtype|type")
def greedy_r20_float_ids(logits):  # float ids (a named mistake by the course's contract)
    return F.softmax(logits, dim=-1).argmax(dim=-1).float()


@mistake(ex.check_greedy, r"sampl|random|multinomial|determin")
def greedy_r20_hf_do_sample(logits):  # HF generate(do_sample=True) pasted: samples instead of argmax
    return torch.multinomial(F.softmax(logits, dim=-1), 1).squeeze(-1)


@mistake(ex.check_greedy, r"dim|axis|batch|shape|transpos")
def greedy_r20_transposed_vocab_first(logits):  # thinks logits are (V, B) (column-major habit): argmax over batch
    return logits.T.argmax(dim=-1)


@mistake(ex.check_greedy, r"one.hot|shape|\(B, V\)")
def greedy_r20_one_hot(logits):  # returns one-hot rows (a 'scores' tensor) instead of ids
    return F.one_hot(logits.argmax(dim=-1), logits.size(-1))


@mistake(ex.check_greedy, r"softmax|dim|axis|batch")
def greedy_r20_softmax_over_batch(logits):  # softmax over dim 0 (the batch) then argmax over the vocabulary
    return F.softmax(logits, dim=0).argmax(dim=-1)


@mistake(ex.check_greedy, r"off.by.one|\+ ?1|shift|one-based|1-based")
def greedy_r20_one_based(logits):  # 1-based ids (Lua torch / MATLAB habit)
    return logits.argmax(dim=-1) + 1


@mistake(ex.check_greedy, r"list|tensor|type")
def greedy_r20_tolist(logits):  # HF tokenizer.decode habit: ids as a Python list
    return logits.argmax(dim=-1).tolist()


@valid(ex.check_greedy)
def greedy_r20_valid_int32(logits):
    return logits.argmax(dim=-1).to(torch.int32)


@valid(ex.check_greedy)
def greedy_r20_valid_max_indices(logits):
    return torch.max(logits, dim=-1).indices


@valid(ex.check_greedy)
def greedy_r20_valid_nanogpt_topk_squeezed(logits):
    _, idx_next = torch.topk(logits, k=1, dim=-1)
    return idx_next.squeeze(-1)


@valid(ex.check_greedy)
def greedy_r20_valid_temperature_softmax(logits):  # monotone transforms keep the argmax
    return F.log_softmax(logits / 0.7, dim=-1).argmax(dim=-1)


@valid(ex.check_greedy)
def greedy_r20_valid_numpy(logits):  # numpy's argmax also takes the first of ties
    return torch.from_numpy(logits.detach().cpu().numpy().argmax(axis=-1)).to(logits.device)


# ------------------------------------------------------------------------------------------ sampling
def _topk(logits, k, fill=float("-inf"), extra=0, le=False):
    kth = torch.topk(logits, k + extra, dim=-1).values[:, -1:]
    return logits.masked_fill(logits <= kth if le else logits < kth, fill)


def _topp(logits, p, fill=float("-inf"), rule="above_ge"):
    """Karpathy's / HF's top-p written several ways; rule names which one."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    cum = probs.cumsum(dim=-1)
    if rule == "above_ge":  # the contract: a token goes when the tokens above it reach p
        remove = cum - probs >= p
    elif rule == "gist":  # Karpathy's gist: cum > p, shifted right by one, first kept
        remove = cum > p
        remove[..., 1:] = remove[..., :-1].clone()
        remove[..., 0] = False
    elif rule == "no_shift":  # the gist without the shift: drops the token that crosses p
        remove = cum > p
    else:
        raise ValueError(rule)
    return logits.masked_fill(remove.scatter(-1, order, remove), fill)


def sampling(scale="div", k_fill=float("-inf"), p_fill=float("-inf"), k_extra=0, k_le=False, p_rule="above_ge",
             order="kp", final="softmax", t_first=True):
    def sampling_probs(logits, temperature=1.0, top_k=None, top_p=None):
        if t_first:
            logits = logits / temperature if scale == "div" else logits * temperature
        steps = [("k", top_k), ("p", top_p)] if order == "kp" else [("p", top_p), ("k", top_k)]
        for name, arg in steps:
            if arg is None:
                continue
            if name == "k":
                logits = _topk(logits, arg, k_fill, k_extra, k_le)
            else:
                logits = _topp(logits, arg, p_fill, p_rule)
        if not t_first:
            logits = logits / temperature
        if final == "log":
            return F.log_softmax(logits, dim=-1)
        if final == "dim0":
            return F.softmax(logits, dim=0)
        return F.softmax(logits, dim=-1)
    return sampling_probs


mistake(ex.check_sampling_probs, r"multipl|divid|temperature")(sampling(scale="mul"))
mistake(ex.check_sampling_probs, r"-inf|fill|zero|0|leak|mask")(sampling(k_fill=0.0))  # masked to logit 0
mistake(ex.check_sampling_probs, r"-inf|fill|zero|0|leak|mask")(sampling(p_fill=0.0))
# TransformerLens' IGNORE = -1e5 / HF's old -1e4 as the removed logit: leaks when logits are large (low temperature)
mistake(ex.check_sampling_probs, r"-inf|fill|leak|mask|1e4|finite")(sampling(k_fill=-1e4, p_fill=-1e4))
mistake(ex.check_sampling_probs, r"k ?\+ ?1|off.by.one|keeps? (one )?(too )?many|more than k|top.?k")(
    sampling(k_extra=1))
mistake(ex.check_sampling_probs, r"k ?- ?1|off.by.one|<=|fewer|k-th|top.?k")(sampling(k_le=True))
mistake(ex.check_sampling_probs, r"cross|include|shift|top.?p|nucleus")(sampling(p_rule="no_shift"))
mistake(ex.check_sampling_probs, r"log")(sampling(final="log"))  # TRL/HF logprobs returned
mistake(ex.check_sampling_probs, r"dim|axis|batch")(sampling(final="dim0"))
mistake(ex.check_sampling_probs, r"order|before|top.?p.*top.?k|renormal")(sampling(order="pk"))
mistake(ex.check_sampling_probs, r"temperature|order|after|before")(sampling(t_first=False))  # filter, then divide
mistake(ex.check_sampling_probs, r"multipl|divid|temperature|-inf|fill|zero|leak")(
    sampling(scale="mul", k_fill=0.0))  # double slip


# Karpathy's gist: cum > p (strict) -- differs from the contract only where the mass above equals p exactly
@mistake(ex.check_sampling_probs, r"strict|>=|equal|reach|boundary|exactly|top.?p")
def sampling_r20_gist_strict(logits, temperature=1.0, top_k=None, top_p=None):
    return sampling(p_rule="gist")(logits, temperature, top_k, top_p)


@mistake(ex.check_sampling_probs, r"renormal|sum|normali|softmax last")
def sampling_r20_zero_probs_no_renorm(logits, temperature=1.0, top_k=None, top_p=None):
    # filters in probability space (zeroing) and forgets to renormalise
    probs = F.softmax(logits / temperature, dim=-1)
    if top_k is not None:
        kth = torch.topk(probs, top_k, dim=-1).values[:, -1:]
        probs = probs.masked_fill(probs < kth, 0.0)
    if top_p is not None:
        sp, order = probs.sort(dim=-1, descending=True)
        above = sp.cumsum(-1) - sp
        remove = above >= top_p
        probs = probs.masked_fill(remove.scatter(-1, order, remove), 0.0)
    return probs


@mistake(ex.check_sampling_probs, r"1 ?- ?p|complement|top.?p|nucleus|tail")
def sampling_r20_hf_ascending_wrong_threshold(logits, temperature=1.0, top_k=None, top_p=None):
    # HF's TopPLogitsWarper (ascending sort) but compared with top_p instead of 1 - top_p
    logits = logits / temperature
    if top_k is not None:
        logits = _topk(logits, top_k)
    if top_p is not None:
        sorted_logits, order = logits.sort(dim=-1, descending=False)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cum <= top_p
        remove[..., -1:] = False
        logits = logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
    return F.softmax(logits, dim=-1)


valid(ex.check_sampling_probs)(sampling())


@valid(ex.check_sampling_probs)
def sampling_r20_valid_hf_warpers(logits, temperature=1.0, top_k=None, top_p=None):
    # HF's TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper (ascending, cum <= 1 - p, keep >= 1)
    scores = logits / temperature
    if top_k is not None:
        top_k = min(top_k, scores.size(-1))
        remove = scores < torch.topk(scores, top_k)[0][..., -1, None]
        scores = scores.masked_fill(remove, -float("inf"))
    if top_p is not None:
        sorted_logits, sorted_indices = torch.sort(scores, descending=False)
        cumulative_probs = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        sorted_indices_to_remove = cumulative_probs <= (1 - top_p)
        sorted_indices_to_remove[..., -1:] = 0
        remove = sorted_indices_to_remove.scatter(1, sorted_indices, sorted_indices_to_remove)
        scores = scores.masked_fill(remove, -float("inf"))
    return F.softmax(scores, dim=-1)


@valid(ex.check_sampling_probs)
def sampling_r20_valid_nanogpt_inplace_after_div(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature  # a new tensor: the in-place fill below leaves the caller's logits alone
    if top_k is not None:
        v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
        logits[logits < v[:, [-1]]] = -float("Inf")
    if top_p is not None:
        logits = _topp(logits, top_p)
    return F.softmax(logits, dim=-1)


@valid(ex.check_sampling_probs)
def sampling_r20_valid_power_of_probs(logits, temperature=1.0, top_k=None, top_p=None):
    # softmax(l)^(1/T), renormalised, is softmax(l / T); filtering in probability space, renormalised
    probs = F.softmax(logits.double(), dim=-1) ** (1.0 / temperature)
    probs = probs / probs.sum(-1, keepdim=True)
    if top_k is not None:
        kth = torch.topk(probs, top_k, dim=-1).values[:, -1:]
        probs = probs.masked_fill(probs < kth, 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    if top_p is not None:
        sp, order = probs.sort(dim=-1, descending=True)
        remove = sp.cumsum(-1) - sp >= top_p
        probs = probs.masked_fill(remove.scatter(-1, order, remove), 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs.to(logits.dtype)


@valid(ex.check_sampling_probs)
def sampling_r20_valid_finfo_min(logits, temperature=1.0, top_k=None, top_p=None):
    # HF masks with torch.finfo(dtype).min rather than -inf: exp underflows to exactly 0 all the same
    return sampling(k_fill=torch.finfo(torch.float32).min, p_fill=torch.finfo(torch.float32).min)(
        logits, temperature, top_k, top_p)


@valid(ex.check_sampling_probs)
def sampling_r20_valid_numpy(logits, temperature=1.0, top_k=None, top_p=None):
    x = logits.detach().cpu().double().numpy() / temperature
    if top_k is not None:
        kth = -np.sort(-x, axis=-1)[:, top_k - 1:top_k]
        x = np.where(x < kth, -np.inf, x)
    if top_p is not None:
        order = np.argsort(-x, axis=-1, kind="stable")
        sx = np.take_along_axis(x, order, -1)
        p = np.exp(sx - sx.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        drop = (np.cumsum(p, -1) - p) >= top_p
        mask = np.zeros_like(drop)
        np.put_along_axis(mask, order, drop, -1)
        x = np.where(mask, -np.inf, x)
    e = np.exp(x - x.max(-1, keepdims=True))
    return torch.from_numpy(e / e.sum(-1, keepdims=True)).to(logits.dtype)


import heldout_probe_round20_tokens2  # noqa: E402,F401  (this part's next rows, registered after these)
