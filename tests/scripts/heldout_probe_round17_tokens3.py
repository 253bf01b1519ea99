"""The held-out probe, round 17, tokens part 3: BPE's merge(ids, pair, new_id) and encode(ids, merges) (merges:
{(left, right): new_id}, a lower new id learned earlier). See heldout_probe_round17_tokens.py for the angle and the
untuned counts."""

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


# ---------------------------------------------------------------- merge(ids, pair, new_id)


@mistake(ex.check_merge, r"overlap|skip|twice|both|second|advance|right half.*kept")  # widened: right half kept
def _m_no_skip(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
        else:
            out.append(ids[i])
        i += 1  # one step even after a merge: the pair's right token is seen again
    return out


@mistake(ex.check_merge, r"last|final|end|drop|lost|missing|short")
def _m_drops_last(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out  # the last token is lost when it was not merged


@mistake(ex.check_merge, r"in place|mutat|input|new list|modif|copy")
def _m_in_place(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:
            ids[i] = new_id
            del ids[i + 1]
        i += 1
    return ids


@mistake(ex.check_merge, r"both|second|right|only the first|pair\[1\]|either|first element")  # widened
def _m_first_token_only(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if ids[i] == pair[0] and i + 1 < len(ids):  # the right token never checked
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"order|revers|either order|swap|unordered|set")
def _m_unordered(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and {ids[i], ids[i + 1]} == set(pair):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"first|every|all|once|only one|occurrence")
def _m_first_occurrence_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2:]
    return list(ids)


@mistake(ex.check_merge, r"left to right|right to left|right|direction|overlap|revers")
def _m_right_to_left(ids, pair, new_id):
    out, i = [], len(ids) - 1
    while i >= 0:
        if i - 1 >= 0 and (ids[i - 1], ids[i]) == pair:
            out.append(new_id)
            i -= 2
        else:
            out.append(ids[i])
            i -= 1
    return out[::-1]


@mistake(ex.check_merge, r"digit|string|substring|partial|prefix|text")
def _m_string_replace(ids, pair, new_id):
    s = " ".join(map(str, ids))
    s = s.replace(f"{pair[0]} {pair[1]}", str(new_id))  # also matches inside longer numbers
    return [int(t) for t in s.split()]


@mistake(ex.check_merge, r"last|end|index|bounds|range|exception|raise")
def _m_index_error(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:  # ids[i + 1] past the end
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"skip|second|both|kept|overlap|right token|twice")
def _m_for_loop_i_plus(ids, pair, new_id):
    out = []
    for i in range(len(ids)):
        if i < len(ids) - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 1  # no effect on a for loop: the right token is appended next
        else:
            out.append(ids[i])
    return out


@mistake(ex.check_merge, r"tuple|list|never|no merge|nothing|unchanged|type")
def _m_list_vs_tuple(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if ids[i:i + 2] == pair:  # a list never equals a tuple
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"last|end|duplicat|extra|twice|append")
def _m_always_appends_last(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    out.append(ids[-1]) if ids else None  # appended even when it was merged
    return out


@mistake(ex.check_merge, r"return|None|in place|mutat|input list was changed")  # widened: mutation named
def _m_returns_none(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            ids[i:i + 2] = [new_id]
        i += 1


@mistake(ex.check_merge, r"overlap|skip|last|end|drop|twice")
def _m_double_no_skip_drop_last(ids, pair, new_id):  # double slip
    out = []
    for i in range(len(ids) - 1):
        out.append(new_id if (ids[i], ids[i + 1]) == pair else ids[i])
    return out


@mistake(ex.check_merge, r"in place|mutat|input|overlap|skip")
def _m_double_in_place_no_skip(ids, pair, new_id):  # double slip: mutates the input, right token kept
    for i in range(len(ids) - 1):
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:
            ids[i] = new_id
    return ids


@mistake(ex.check_merge, r"skip|every|step|advance|2")
def _m_always_step_two(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
        else:
            out.append(ids[i])
        i += 2  # steps two even when nothing merged
    return out


@valid(ex.check_merge)
def _m_ok_for_skip_flag(ids, pair, new_id):
    out, skip = [], False
    for a, b in zip(ids, list(ids[1:]) + [None]):
        if skip:
            skip = False
            continue
        if (a, b) == tuple(pair):
            out.append(new_id)
            skip = True
        else:
            out.append(a)
    return out


@valid(ex.check_merge)
def _m_ok_recursive(ids, pair, new_id):
    if len(ids) < 2:
        return list(ids)
    if ids[0] == pair[0] and ids[1] == pair[1]:
        return [new_id] + _m_ok_recursive(ids[2:], pair, new_id)
    return [ids[0]] + _m_ok_recursive(ids[1:], pair, new_id)


@valid(ex.check_merge)
def _m_ok_copy_in_place(ids, pair, new_id):
    ids = list(ids)
    i = 0
    while i < len(ids) - 1:
        if ids[i:i + 2] == list(pair):
            ids[i:i + 2] = [new_id]
        i += 1
    return ids


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
