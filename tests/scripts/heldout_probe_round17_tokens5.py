"""The held-out probe, round 17, tokens part 5: BPE's encode(ids, merges) (merges: {(left, right): new_id}, a lower
new id learned earlier). See heldout_probe_round17_tokens.py for the angle and the counts."""

from __future__ import annotations

from collections import Counter

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


def _merge_ok(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


# ---------------------------------------------------------------- encode(ids, merges)


@mistake(ex.check_bpe_encode, r"order|rank|lowest|earliest|insertion|dict|new id")
def _e_dict_order(ids, merges):
    ids = list(ids)
    for pair, new_id in merges.items():  # the dict's order, not the rank
        ids = _merge_ok(ids, pair, new_id)
    return ids


@mistake(ex.check_bpe_encode, r"frequen|count|rank|lowest|earliest")
def _e_most_frequent(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        counts = Counter(p for p in zip(ids, ids[1:]) if p in merges)
        if not counts:
            break
        pair = counts.most_common(1)[0][0]  # training's rule, not encoding's
        ids = _merge_ok(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"highest|latest|lowest|earliest|rank|max")
def _e_highest_rank(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        candidates = [p for p in zip(ids, ids[1:]) if p in merges]
        if not candidates:
            break
        pair = max(candidates, key=lambda p: merges[p])
        ids = _merge_ok(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"once|repeat|loop|until|one merge|single|stop")
def _e_one_merge(ids, merges):
    ids = list(ids)
    if len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair in merges:
            ids = _merge_ok(ids, pair, merges[pair])  # no loop: one merge only
    return ids


@mistake(ex.check_bpe_encode, r"default|unknown|not in merges|stop|early|nothing|unchanged|missing")
def _e_get_default_zero(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, 0))  # unknown pairs rank first
        if pair not in merges:
            break
        ids = _merge_ok(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"leftmost|left|first|lowest|rank|earliest|position")
def _e_leftmost(ids, merges):
    ids = list(ids)
    while True:
        for i in range(len(ids) - 1):
            if (ids[i], ids[i + 1]) in merges:
                pair = (ids[i], ids[i + 1])
                ids = _merge_ok(ids, pair, merges[pair])
                break
        else:
            return ids


@mistake(ex.check_bpe_encode, r"two|2|length|last pair|stop|short")
def _e_len_gt_2(ids, merges):
    ids = list(ids)
    while len(ids) > 2:  # stops with two tokens that may still merge
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = _merge_ok(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"in place|mutat|input|modif|copy")
def _e_mutates(ids, merges):
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        i = 0
        while i < len(ids) - 1:
            if (ids[i], ids[i + 1]) == pair:
                ids[i:i + 2] = [merges[pair]]  # the caller's list
            i += 1
    return ids


@mistake(ex.check_bpe_encode, r"rank|new id|lowest|tuple|smallest pair|earliest|id order")
def _e_min_pair_tuple(ids, merges):
    ids = list(ids)
    while True:
        found = [p for p in zip(ids, ids[1:]) if p in merges]
        if not found:
            return ids
        pair = min(found)  # the smallest pair of ids, not the lowest rank
        ids = _merge_ok(ids, pair, merges[pair])


@mistake(ex.check_bpe_encode, r"short|single|one token|empty|length|exception|raise|fewer than two")  # widened
def _e_crash_short(ids, merges):
    ids = list(ids)
    while True:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))  # min() of nothing
        if pair not in merges:
            return ids
        ids = _merge_ok(ids, pair, merges[pair])


@mistake(ex.check_bpe_encode, r"rank|lowest|order|earliest|single pass|pass")
def _e_single_sweep(ids, merges):
    out, i = [], 0
    ids = list(ids)
    changed = True
    while changed:  # sweeps left to right merging whatever is known, ranks ignored
        changed, out, i = False, [], 0
        while i < len(ids):
            if i + 1 < len(ids) and (ids[i], ids[i + 1]) in merges:
                out.append(merges[(ids[i], ids[i + 1])])
                i += 2
                changed = True
            else:
                out.append(ids[i])
                i += 1
        ids = out
    return ids


@mistake(ex.check_bpe_encode, r"overlap|skip|merge|twice")
def _e_inline_merge_no_skip(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        out, i = [], 0
        while i < len(ids):
            if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                out.append(merges[pair])
            else:
                out.append(ids[i])
            i += 1
        ids = out
    return ids


@mistake(ex.check_bpe_encode, r"highest|latest|rank|once|repeat|loop|single|lowest|earliest")
def _e_double_highest_once(ids, merges):  # double slip: the highest rank, and one merge only
    ids = list(ids)
    known = [p for p in zip(ids, ids[1:]) if p in merges]
    if known:
        pair = max(known, key=merges.get)
        ids = _merge_ok(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"frequen|count|rank|lowest|two|2|length|stop")
def _e_double_frequent_len(ids, merges):  # double slip: most frequent, and stops at two tokens
    ids = list(ids)
    while len(ids) > 2:
        counts = Counter(zip(ids, ids[1:]))
        known = [p for p in counts if p in merges]
        if not known:
            break
        pair = max(known, key=lambda p: counts[p])
        ids = _merge_ok(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"value|key|new id|rank|lowest|pair")
def _e_rank_by_position_in_list(ids, merges):
    ids = list(ids)
    ranked = sorted(merges)  # sorts the pairs themselves, not by their new id
    while True:
        present = set(zip(ids, ids[1:]))
        for pair in ranked:
            if pair in present:
                ids = _merge_ok(ids, pair, merges[pair])
                break
        else:
            return ids


@valid(ex.check_bpe_encode)
def _e_ok_recursive(ids, merges):
    ids = list(ids)
    known = [p for p in zip(ids, ids[1:]) if p in merges]
    if not known:
        return ids
    best = min(known, key=merges.__getitem__)
    return _e_ok_recursive(_merge_ok(ids, best, merges[best]), merges)


@valid(ex.check_bpe_encode)
def _e_ok_first_occurrence_each_round(ids, merges):
    ids = list(ids)
    while True:
        best_i, best_rank = None, None
        for i in range(len(ids) - 1):
            r = merges.get((ids[i], ids[i + 1]))
            if r is not None and (best_rank is None or r < best_rank):
                best_i, best_rank = i, r
        if best_i is None:
            return ids
        ids[best_i:best_i + 2] = [best_rank]  # the leftmost occurrence; the loop finds the others


@valid(ex.check_bpe_encode)
def _e_ok_set_of_pairs(ids, merges):
    tokens = list(ids)
    while len(tokens) > 1:
        pairs = set(zip(tokens, tokens[1:])) & merges.keys()
        if not pairs:
            break
        pair = min(pairs, key=lambda p: merges[p])
        tokens = _merge_ok(tokens, pair, merges[pair])
    return tokens
