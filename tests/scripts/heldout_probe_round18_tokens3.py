"""The held-out probe, round 18, tokens part 3: one BPE merge and BPE encoding (see heldout_probe_round18_tokens.py)."""

from __future__ import annotations

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


def _merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


# ------------------------------------------------------------------------------------------ merge
@mistake(ex.check_merge, r"overlap")
def merge_r18_overlapping(ids, pair, new_id):  # every position that starts the pair, overlaps included
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            if i + 2 < len(ids) and (ids[i + 1], ids[i + 2]) == pair:
                i += 1  # "the second one starts a pair too"
                continue
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"right|left|direction|end|revers")
def merge_r18_right_to_left(ids, pair, new_id):  # [1, 1, 1] -> [1, X]: looks like an off-by-one shift
    out, i = [], len(ids) - 1
    while i >= 0:
        if i >= 1 and (ids[i - 1], ids[i]) == pair:
            out.append(new_id)
            i -= 2
        else:
            out.append(ids[i])
            i -= 1
    return out[::-1]


@mistake(ex.check_merge, r"last|end|drop|lost|missing")
def merge_r18_drops_last(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"first|only|all|every|once")
def merge_r18_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2:]
    return list(ids)


@mistake(ex.check_merge, r"in.?place|mutat|copy|new list|modif|changed")  # widened: "the input list was changed"
def merge_r18_in_place(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            ids[i:i + 2] = [new_id]
        i += 1
    return ids


@mistake(ex.check_merge, r"revers|order|swap|direction")
def merge_r18_reversed_pair(ids, pair, new_id):
    return _merge(ids, (pair[1], pair[0]), new_id)


@mistake(ex.check_merge, r"order|revers|set|either|direction")
def merge_r18_unordered(ids, pair, new_id):  # sets compare equal in either order
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and {ids[i], ids[i + 1]} == set(pair) and len(set(pair)) == len({ids[i], ids[i + 1]}):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"empty|short|crash|index")
def merge_r18_empty_crash(ids, pair, new_id):  # seeds the output with ids[0]: IndexError on []
    out = [ids[0]]
    for x in ids[1:]:
        if (out[-1], x) == pair and (len(out) < 2 or out[-1] != new_id):
            out[-1] = new_id
        else:
            out.append(x)
    return out


@mistake(ex.check_merge, r"last|end|duplicat|twice|extra")
def merge_r18_appends_last_always(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out + ids[-1:]  # the last id is appended even when it was merged


@mistake(ex.check_merge, r"string|substring|digit|boundar|text|str")
def merge_r18_string_replace(ids, pair, new_id):  # "11 2".replace("1 2", ...) matches across a digit boundary
    text = " ".join(map(str, ids)).replace(f"{pair[0]} {pair[1]}", str(new_id))
    return [int(t) for t in text.split()]


@mistake(ex.check_merge, r"skip|overlap|second|advance|one|right half")  # widened: "right half of a merged pair kept"
def merge_r18_no_skip(ids, pair, new_id):  # i += 1 after a merge: the pair's second id is kept as well
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
        else:
            out.append(ids[i])
        i += 1
    return out


@mistake(ex.check_merge, r"first.*element|first id|one id|both|pair|left")
def merge_r18_left_only(ids, pair, new_id):  # checks only the left id
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@valid(ex.check_merge)
def merge_r18_valid_repeat_first(ids, pair, new_id):  # find the next occurrence after the last merge, again and again
    ids, start = list(ids), 0
    while True:
        hit = next((i for i in range(start, len(ids) - 1) if (ids[i], ids[i + 1]) == pair), None)
        if hit is None:
            return ids
        ids[hit:hit + 2] = [new_id]
        start = hit + 1


@valid(ex.check_merge)
def merge_r18_valid_iterator(ids, pair, new_id):
    out, it = [], iter(ids)
    prev = next(it, None)
    if prev is None:
        return out
    for x in it:
        if prev is not None and (prev, x) == pair:
            out.append(new_id)
            prev = None
        else:
            if prev is not None:
                out.append(prev)
            prev = x
    if prev is not None:
        out.append(prev)
    return out


# ------------------------------------------------------------------------------------------ bpe_encode
@mistake(ex.check_bpe_encode, r"frequen|count|rank|common|lowest")
def bpe_r18_most_frequent(ids, merges):  # training's rule (most frequent pair) at encoding time
    from collections import Counter
    ids = list(ids)
    while len(ids) >= 2:
        counts = Counter(p for p in zip(ids, ids[1:]) if p in merges)
        if not counts:
            break
        pair = max(counts, key=lambda p: (counts[p], -merges[p]))
        ids = _merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"order|rank|sort|insertion|dict")
def bpe_r18_dict_order(ids, merges):  # each merge once, in the dict's order: right only if it is sorted by rank
    ids = list(ids)
    for pair, new_id in merges.items():
        ids = _merge(ids, pair, new_id)
    return ids


@mistake(ex.check_bpe_encode, r"highest|max|rank|latest|lowest")
def bpe_r18_highest_rank(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        cands = [p for p in zip(ids, ids[1:]) if p in merges]
        if not cands:
            break
        pair = max(cands, key=merges.get)
        ids = _merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"once|repeat|loop|single|one merge|until")
def bpe_r18_one_merge(ids, merges):
    ids = list(ids)
    if len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair in merges:
            ids = _merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"length|two|short|end|last pair|2")
def bpe_r18_stops_at_two(ids, merges):  # > 2 instead of >= 2: two tokens that form a merge are left alone
    ids = list(ids)
    while len(ids) > 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = _merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"default|missing|inf|stop|early|unknown")  # widened: "unknown pairs ranked first"
def bpe_r18_default_zero(ids, merges):  # merges.get(p, 0): any pair that is not a merge wins the min and stops
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, 0))
        if pair not in merges:
            break
        ids = _merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"overlap")
def bpe_r18_overlapping_merge(ids, merges):  # the encoder's own merge replaces overlapping occurrences
    from heldout_probe_round18_tokens3 import merge_r18_overlapping
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = merge_r18_overlapping(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"rank|smallest|id|key|lexic")
def bpe_r18_min_without_key(ids, merges):  # min of the pairs themselves: the smallest ids, not the earliest merge
    ids = list(ids)
    while len(ids) >= 2:
        cands = [p for p in zip(ids, ids[1:]) if p in merges]
        if not cands:
            break
        pair = min(cands)
        ids = _merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"empty|single|one|length|crash|short|fewer")  # widened: "fewer than two tokens"
def bpe_r18_crash_on_one_token(ids, merges):  # min() of no pairs: ValueError once everything merged into one
    ids = list(ids)
    while True:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            return ids
        ids = _merge(ids, pair, merges[pair])


@mistake(ex.check_bpe_encode, r"left|first|rank|position|greedy")
def bpe_r18_leftmost_mergeable(ids, merges):  # the leftmost pair that is a merge, whatever its rank
    ids = list(ids)
    while True:
        pair = next((p for p in zip(ids, ids[1:]) if p in merges), None)
        if pair is None:
            return ids
        ids = _merge(ids, pair, merges[pair])


@mistake(ex.check_bpe_encode, r"stale|new|recompute|once|nested|again")
def bpe_r18_stale_pairs(ids, merges):  # the pairs of the input only: merges that use a merged token never happen
    ids = list(ids)
    for pair in sorted(set(zip(ids, ids[1:])) & merges.keys(), key=merges.get):
        ids = _merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"mutat|in.?place|copy|input|modif")
def bpe_r18_mutates_input(ids, merges):
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids[:] = _merge(ids, pair, merges[pair])
    return ids


@valid(ex.check_bpe_encode)
def bpe_r18_valid_sorted_passes(ids, merges):  # each merge once, in rank order: the same as the loop (minbpe)
    ids = list(ids)
    for pair, new_id in sorted(merges.items(), key=lambda kv: kv[1]):
        ids = _merge(ids, pair, new_id)
    return ids


@valid(ex.check_bpe_encode)
def bpe_r18_valid_first_occurrence(ids, merges):  # merges one occurrence of the best pair per iteration
    ids = list(ids)
    while len(ids) >= 2:
        best = min(range(len(ids) - 1), key=lambda i: (merges.get((ids[i], ids[i + 1]), float("inf")), i))
        pair = (ids[best], ids[best + 1])
        if pair not in merges:
            return ids
        ids = ids[:best] + [merges[pair]] + ids[best + 2:]
    return ids


@valid(ex.check_bpe_encode)
def bpe_r18_valid_recursive(ids, merges):
    ids = list(ids)
    ranked = [(merges[p], p) for p in zip(ids, ids[1:]) if p in merges]
    if not ranked:
        return ids
    rank, pair = min(ranked)
    return bpe_r18_valid_recursive(_merge(ids, pair, rank), merges)
