"""The held-out probe, round 14, tokens part, third file: BPE encode (imported at the end of
heldout_probe_round14_tokens2.py, so its rows come last). See heldout_probe_round14_tokens.py's docstring."""

from __future__ import annotations

import torch

import mingpt.exercises as ex

from heldout_probe_models import mistake, valid

E = ex.check_bpe_encode
RANK = r"lowest|rank|earliest|min|smallest|first learned|order|priority"


def merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def merge_overlapping(ids, pair, new_id):  # the student's own merge, with i += 1 after a hit
    # (fixed after the untuned count: the first version stepped i twice after a hit, so it was a right merge)
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
        else:
            out.append(ids[i])
        i += 1
    return out


def encoder(pick="min", default=float("inf"), stop_len=2, merge_fn=merge, out="list", copy=True, new_id="value"):
    """The notebook's loop with knobs."""
    def encode(ids, merges):
        ids = list(ids) if copy else ids
        while len(ids) >= stop_len:
            pairs = list(zip(ids, ids[1:]))
            if pick == "min":
                pair = min(pairs, key=lambda p: merges.get(p, default))
            elif pick == "max":
                pair = max(pairs, key=lambda p: merges.get(p, float("-inf")))
            elif pick == "lexicographic":  # the smallest pair, not the lowest-ranked
                candidates = [p for p in pairs if p in merges]
                pair = min(candidates) if candidates else pairs[0]
            elif pick == "frequent":  # training's rule: the most frequent mergeable pair
                candidates = [p for p in pairs if p in merges]
                pair = max(candidates, key=pairs.count) if candidates else pairs[0]
            if pair not in merges:
                break
            nid = merges[pair] if new_id == "value" else 256 + list(merges).index(pair)
            if copy:
                ids = merge_fn(ids, pair, nid)
            else:
                ids[:] = merge_fn(ids, pair, nid)
        if out == "tuple":
            return tuple(ids)
        if out == "tensor":
            return torch.tensor(ids)
        return ids
    return encode


mistake(E, RANK + r"|max|highest|latest")(encoder(pick="max"))
# (regex widened after the untuned count: the checker's name was fair)
mistake(E, r"default|\b0\b|zero|not in merges|unmergeable|missing|get\(|inf|stop|unknown")(encoder(default=0))
mistake(E, r"len|length|last pair|two tokens|2\b|> ?2|stop|short")(encoder(stop_len=3))
mistake(E, RANK + r"|lexicograph|pair value|sorted pair|id order")(encoder(pick="lexicographic"))
mistake(E, RANK + r"|frequen|count|most common|training")(encoder(pick="frequent"))
mistake(E, r"overlap|skip|merge\b|i ?\+= ?2|twice")(encoder(merge_fn=merge_overlapping))
mistake(E, r"tuple|list|type")(encoder(out="tuple"))
mistake(E, r"tensor|list|type")(encoder(out="tensor"))
mistake(E, r"in.?place|mutat|input|caller|modif|copy")(encoder(copy=False))
mistake(E, r"new.?id|256|id\b|value|index|numbering|merges\[pair\]|position in")(encoder(new_id="position"))


def encode_dict_order(ids, merges):
    """The assistant's one-liner loop: every merge applied once, in the dict's insertion order."""
    ids = list(ids)
    for pair, idx in merges.items():
        ids = merge(ids, pair, idx)
    return ids


mistake(E, RANK + r"|dict|insertion|sort")(encode_dict_order)


def encode_none_rank(ids, merges):
    """merges.get(p) with no default: None cannot be compared with an int once a pair is not in merges."""
    ids = list(ids)
    while len(ids) >= 2:
        pairs = [p for p in zip(ids, ids[1:])]
        pair = min(pairs, key=lambda p: merges.get(p))
        if pair not in merges:
            break
        ids = merge(ids, pair, merges[pair])
    return ids


mistake(E, r"None|get|default|inf|not in merges|missing|compar")(encode_none_rank)


def encode_one_pass(ids, merges):
    """One scan left to right merging whatever mergeable pair comes first, repeated: position order, not rank."""
    ids = list(ids)
    changed = True
    while changed:
        changed = False
        for i in range(len(ids) - 1):
            pair = (ids[i], ids[i + 1])
            if pair in merges:
                ids = merge(ids, pair, merges[pair])
                changed = True
                break
    return ids


mistake(E, RANK + r"|position|leftmost|first (pair|found)|scan")(encode_one_pass)


def encode_sorted_rules(ids, merges):
    """Valid: every rule applied once in rank order (a rank can never reappear once the later ones exist)."""
    ids = list(ids)
    for pair, idx in sorted(merges.items(), key=lambda item: item[1]):
        ids = merge(ids, pair, idx)
    return ids


def encode_first_occurrence(ids, merges):
    """Valid: only the leftmost occurrence of the lowest-ranked pair merged per step; the next step picks it again."""
    ids = list(ids)
    while True:
        ranked = [(merges[p], i) for i, p in enumerate(zip(ids, ids[1:])) if p in merges]
        if not ranked:
            return ids
        rank, i = min(ranked)
        ids[i:i + 2] = [rank]


def encode_bounded(ids, merges):
    """Valid: at most len(merges) steps (each rule fires at most once), pairs taken from a set."""
    ids = list(ids)
    for _ in range(len(merges)):
        pairs = set(zip(ids, ids[1:])) & merges.keys()
        if not pairs:
            break
        pair = min(pairs, key=merges.__getitem__)
        ids = merge(ids, pair, merges[pair])
    return ids


valid(E)(encode_sorted_rules)
valid(E)(encode_first_occurrence)
valid(E)(encode_bounded)
