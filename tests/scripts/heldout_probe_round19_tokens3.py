"""The held-out probe, round 19, tokens part 3: merge and bpe_encode rows (see heldout_probe_round19_tokens.py)."""

from __future__ import annotations

from collections import deque

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


# ------------------------------------------------------------------------------------------ merge
@mistake(ex.check_merge, r"list|tuple|type|nothing|compar")
def merge_r19_slice_vs_tuple(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if ids[i:i + 2] == pair:  # a list never equals a tuple: nothing merges
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"list|tuple|type|nothing|compar")
def merge_r19_bracket_vs_tuple(ids, pair, new_id):
    out, skip = [], False
    for j, t in enumerate(ids):
        if skip:
            skip = False
            continue
        if j + 1 < len(ids) and [t, ids[j + 1]] == pair:
            out.append(new_id)
            skip = True
        else:
            out.append(t)
    return out


@mistake(ex.check_merge, r"overlap|twice|skip|advance|consum|right half")  # widened: a fair name
def merge_r19_no_skip(ids, pair, new_id):
    out, j = [], 0
    while j < len(ids):
        if j + 1 < len(ids) and (ids[j], ids[j + 1]) == tuple(pair):
            out.append(new_id)
        else:
            out.append(ids[j])
        j += 1  # the right half of a merged pair is read again
    return out


@mistake(ex.check_merge, r"right|reverse|direction|left to right")
def merge_r19_right_to_left(ids, pair, new_id):
    out, j = [], len(ids) - 1
    while j >= 0:
        if j >= 1 and (ids[j - 1], ids[j]) == tuple(pair):
            out.append(new_id)
            j -= 2
        else:
            out.append(ids[j])
            j -= 1
    return out[::-1]


@mistake(ex.check_merge, r"first|once|only one|every|all")
def merge_r19_first_only(ids, pair, new_id):
    ids = list(ids)
    for j in range(len(ids) - 1):
        if ids[j] == pair[0] and ids[j + 1] == pair[1]:
            return ids[:j] + [new_id] + ids[j + 2:]
    return ids


@mistake(ex.check_merge, r"last|drop|end|trailing|final")
def merge_r19_drops_tail(ids, pair, new_id):
    out, j = [], 0
    while j < len(ids) - 1:
        if (ids[j], ids[j + 1]) == pair:
            out.append(new_id)
            j += 2
        else:
            out.append(ids[j])
            j += 1
    return out  # the last id is lost when it is not part of a merge


@mistake(ex.check_merge, r"digit|string|str|substring|prefix|text")
def merge_r19_string_replace(ids, pair, new_id):
    text = ",".join(str(t) for t in ids)
    text = text.replace(f"{pair[0]},{pair[1]}", str(new_id))  # "1,2" also matches inside "11,23"
    return [int(t) for t in text.split(",")] if text else []


@mistake(ex.check_merge, r"adjacent|consecutive|delimit|string|overlap|every|separator|str")
def merge_r19_padded_string(ids, pair, new_id):
    text = "," + ",".join(map(str, ids)) + ","
    text = text.replace(f",{pair[0]},{pair[1]},", f",{new_id},")  # shares a comma: back-to-back pairs missed
    return [int(t) for t in text.strip(",").split(",") if t]


@mistake(ex.check_merge, r"mutat|in.place|input|copy|new list")
def merge_r19_in_place(ids, pair, new_id):
    j = 0
    while j < len(ids) - 1:
        if (ids[j], ids[j + 1]) == pair:
            ids[j:j + 2] = [new_id]  # edits the caller's list
        j += 1
    return ids


@mistake(ex.check_merge, r"index|bound|end|last|range")
def merge_r19_no_bounds(ids, pair, new_id):
    out, j = [], 0
    while j < len(ids):
        if ids[j] == pair[0] and ids[j + 1] == pair[1]:  # IndexError when the last id equals pair[0]
            out.append(new_id)
            j += 2
        else:
            out.append(ids[j])
            j += 1
    return out


@valid(ex.check_merge)
def merge_r19_valid_deque(ids, pair, new_id):
    rest, out = deque(ids), []
    while rest:
        t = rest.popleft()
        if rest and t == pair[0] and rest[0] == pair[1]:
            rest.popleft()
            out.append(new_id)
        else:
            out.append(t)
    return out


@valid(ex.check_merge)
def merge_r19_valid_recursive(ids, pair, new_id):
    ids = list(ids)
    if len(ids) < 2:
        return ids
    if (ids[0], ids[1]) == tuple(pair):
        return [new_id] + merge_r19_valid_recursive(ids[2:], pair, new_id)
    return [ids[0]] + merge_r19_valid_recursive(ids[1:], pair, new_id)


@valid(ex.check_merge)
def merge_r19_valid_list_pair(ids, pair, new_id):
    a, b = pair
    out, j = [], 0
    while j < len(ids):
        if ids[j:j + 2] == [a, b]:  # compares list with list: fine
            out.append(new_id)
            j += 2
        else:
            out.append(ids[j])
            j += 1
    return out


# ------------------------------------------------------------------------------------------ bpe_encode
def _merge(ids, pair, new_id):
    out, j = [], 0
    while j < len(ids):
        if j + 1 < len(ids) and ids[j] == pair[0] and ids[j + 1] == pair[1]:
            out.append(new_id)
            j += 2
        else:
            out.append(ids[j])
            j += 1
    return out


@mistake(ex.check_bpe_encode, r"leftmost|first|position|rank|lowest|earliest")
def enc_r19_leftmost(ids, merges):
    ids = list(ids)
    while True:
        for a, b in zip(ids, ids[1:]):
            if (a, b) in merges:
                ids = _merge(ids, (a, b), merges[(a, b)])
                break
        else:
            return ids


@mistake(ex.check_bpe_encode, r"highest|max|latest|last|rank|lowest|earliest")
def enc_r19_max_rank(ids, merges):
    ids = list(ids)
    while len(ids) > 1:
        known = [p for p in zip(ids, ids[1:]) if p in merges]
        if not known:
            break
        best = max(known, key=merges.__getitem__)
        ids = _merge(ids, best, merges[best])
    return ids


@mistake(ex.check_bpe_encode, r"order|sort|dict|insertion|rank|lowest|earliest")
def enc_r19_dict_order(ids, merges):
    ids = list(ids)
    for pair, new_id in merges.items():  # insertion order, trusting it to be rank order
        ids = _merge(ids, pair, new_id)
    return ids


@valid(ex.check_bpe_encode)
def enc_r19_valid_sorted_pass(ids, merges):
    ids = list(ids)
    for pair, new_id in sorted(merges.items(), key=lambda kv: kv[1]):  # a merge only creates later-ranked pairs
        ids = _merge(ids, pair, new_id)
    return ids


@mistake(ex.check_bpe_encode, r"once|single|one|stop|loop|repeat")
def enc_r19_one_step(ids, merges):
    ids = list(ids)
    cands = [p for p in zip(ids, ids[1:]) if p in merges]
    if cands:
        p = min(cands, key=lambda q: merges[q])
        ids = _merge(ids, p, merges[p])
    return ids


@mistake(ex.check_bpe_encode, r"stop|length|two|2|off.by.one|final|last")
def enc_r19_stops_at_two(ids, merges):
    ids = list(ids)
    while len(ids) > 2:  # a last pair of two ids is never merged
        p = min(zip(ids, ids[1:]), key=lambda q: merges.get(q, float("inf")))
        if p not in merges:
            break
        ids = _merge(ids, p, merges[p])
    return ids


@mistake(ex.check_bpe_encode, r"stop|KeyError|missing|not in|loop|condition")
def enc_r19_no_stop(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        p = min(zip(ids, ids[1:]), key=lambda q: merges.get(q, 10**9))
        ids = _merge(ids, p, merges[p])  # KeyError once no pair is mergeable
    return ids


@mistake(ex.check_bpe_encode, r"None|TypeError|missing|not in|unknown")
def enc_r19_get_none(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        p = min(zip(ids, ids[1:]), key=merges.get)  # None for unknown pairs: cannot be compared
        if p not in merges:
            break
        ids = _merge(ids, p, merges[p])
    return ids


@mistake(ex.check_bpe_encode, r"digit|string|str|substring|prefix|text")
def enc_r19_string_ids(ids, merges):
    text = " ".join(map(str, ids))
    for (a, b), new_id in sorted(merges.items(), key=lambda kv: kv[1]):
        text = text.replace(f"{a} {b}", str(new_id))  # "1 2" also matches inside "11 23"
    return [int(t) for t in text.split()]


@mistake(ex.check_bpe_encode, r"overlap|merge|twice|skip")
def enc_r19_overlapping_merge(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        p = min(zip(ids, ids[1:]), key=lambda q: merges.get(q, float("inf")))
        if p not in merges:
            break
        out, j = [], 0
        while j < len(ids):
            if j + 1 < len(ids) and (ids[j], ids[j + 1]) == p:
                out.append(merges[p])  # should also skip the right half
            else:
                out.append(ids[j])
            j += 1
        if out == ids:
            break
        ids = out
    return ids


@mistake(ex.check_bpe_encode, r"mutat|in.place|input|copy")
def enc_r19_mutates(ids, merges):
    while len(ids) >= 2:
        p = min(zip(ids, ids[1:]), key=lambda q: merges.get(q, float("inf")))
        if p not in merges:
            break
        ids[:] = _merge(ids, p, merges[p])  # rewrites the caller's list
    return ids


@mistake(ex.check_bpe_encode, r"key|value|id|new id|rank|lowest|pair")
def enc_r19_min_of_pair(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        cands = [p for p in zip(ids, ids[1:]) if p in merges]
        if not cands:
            break
        p = min(cands)  # the smallest pair of ids, not the lowest rank
        ids = _merge(ids, p, merges[p])
    return ids


@valid(ex.check_bpe_encode)
def enc_r19_valid_heapless_scan(ids, merges):
    ids = list(ids)
    while True:
        best, where = None, None
        for j in range(len(ids) - 1):
            r = merges.get((ids[j], ids[j + 1]))
            if r is not None and (best is None or r < best):
                best, where = r, (ids[j], ids[j + 1])
        if best is None:
            return ids
        ids = _merge(ids, where, best)


@valid(ex.check_bpe_encode)
def enc_r19_valid_bounded_loop(ids, merges):
    ids = list(ids)
    for _ in range(len(ids)):  # each merge shortens ids: len(ids) rounds always suffice
        ranked = sorted((merges[p], p) for p in set(zip(ids, ids[1:])) if p in merges)
        if not ranked:
            break
        rank, p = ranked[0]
        ids = _merge(ids, p, rank)
    return ids


@valid(ex.check_bpe_encode)
def enc_r19_valid_one_occurrence_at_a_time(ids, merges):
    ids = list(ids)
    while True:
        spots = [(merges[(a, b)], j) for j, (a, b) in enumerate(zip(ids, ids[1:])) if (a, b) in merges]
        if not spots:
            return ids
        rank, j = min(spots)  # the leftmost occurrence of the lowest rank; the others follow in later rounds
        ids[j:j + 2] = [rank]
