"""The held-out probe, round 16, tokens part 3: BPE's merge and encode (see heldout_probe_round16_tokens.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from heldout_probe_models import mistake, valid

import mingpt.exercises as ex


# ------------------------------------------------------------------------------------------ merge
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


@mistake(ex.check_merge, r"overlap|i \+= ?2|skip|twice|consum"
         r"|right half")  # widened: "right half of a merged pair kept", i += 2 in its hint
def merge_step_one(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 1  # the right half of the pair is read again
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"last (element|id|token)|drop|range|off by one|missing|end")
def merge_range_minus_one(ids, pair, new_id):
    out, skip = [], False
    for i in range(len(ids) - 1):  # the last id is never appended unless merged
        if skip:
            skip = False
            continue
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            skip = True
        else:
            out.append(ids[i])
    return out


@mistake(ex.check_merge, r"left (half|element|id)|only the first|right (half|element|id)|second|pair\[1\]"
         r"|first element")  # widened: "only the pair's first element compared" is the cause
def merge_checks_left_only(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0]:  # only the left id compared
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"in.place|modif|input|mutat|new list|changed")
def merge_in_place(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            ids[i:i + 2] = [new_id]  # edits the caller's list
        i += 1
    return ids


@mistake(ex.check_merge, r"first|only one|every|all occurrences|once")
def merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2:]  # stops after the first occurrence
    return list(ids)


@mistake(ex.check_merge, r"never|no (merge|change)|unchanged|tuple|list|compar|nothing")
def merge_list_vs_tuple(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if ids[i:i + 2] == pair:  # a list never equals a tuple
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"revers|order|swap")
def merge_pair_reversed(ids, pair, new_id):
    return _merge(ids, (pair[1], pair[0]), new_id)


@mistake(ex.check_merge, r"right.to.left|left.to.right|direction|revers|scan|overlap")
def merge_right_to_left(ids, pair, new_id):
    out, i = [], len(ids) - 1
    while i >= 0:  # scanning from the end: in [1, 1, 1] the right pair is merged
        if i >= 1 and (ids[i - 1], ids[i]) == pair:
            out.append(new_id)
            i -= 2
        else:
            out.append(ids[i])
            i -= 1
    return out[::-1]


@mistake(ex.check_merge, r"substring|string|digit|partial|boundar|text")
def merge_by_string_replace(ids, pair, new_id):
    text = " ".join(map(str, ids)).replace(f"{pair[0]} {pair[1]}", str(new_id))  # "11 1" contains "1 1"
    return [int(t) for t in text.split()]


@mistake(ex.check_merge, r"type|tuple|list")
def merge_returns_tuple(ids, pair, new_id):
    return tuple(_merge(ids, pair, new_id))


@mistake(ex.check_merge, r"pair|tuple|new.?id|new id|type")
def merge_appends_pair(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(pair)  # the pair, not its new id
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"end|last|boundary|off by one|final")
def merge_misses_pair_at_end(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i < len(ids) - 2 and (ids[i], ids[i + 1]) == pair:  # - 2: a pair in the last two places is missed
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"overlap|twice|consum|skip")
def merge_numpy_mask(ids, pair, new_id):
    a = np.array(ids, dtype=np.int64)
    if len(a) < 2:
        return list(ids)
    starts = np.where((a[:-1] == pair[0]) & (a[1:] == pair[1]))[0]  # every start, overlapping ones too
    a[starts] = new_id
    return np.delete(a, starts + 1).tolist()


@mistake(ex.check_merge, r"single|one (element|id)|short|empty|length|edge")
def merge_short_returns_empty(ids, pair, new_id):
    if len(ids) < 2:
        return []  # a single id has no pair, but it is still there
    return _merge(ids, pair, new_id)


@mistake(ex.check_merge, r"new.?id|new id|wrong id|id")
def merge_off_by_one_new_id(ids, pair, new_id):
    return _merge(ids, pair, new_id + 1)  # "the next id after new_id"


@valid(ex.check_merge)
def merge_copy_then_pop(ids, pair, new_id):
    ids = list(ids)
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            ids[i] = new_id
            ids.pop(i + 1)
        i += 1
    return ids


@valid(ex.check_merge)
def merge_recursive(ids, pair, new_id):
    if len(ids) < 2:
        return list(ids)
    if (ids[0], ids[1]) == pair:
        return [new_id] + merge_recursive(ids[2:], pair, new_id)
    return [ids[0]] + merge_recursive(ids[1:], pair, new_id)


@valid(ex.check_merge)
def merge_with_iterator(ids, pair, new_id):
    out, it = [], iter(ids)
    prev = next(it, None)
    if prev is None:
        return out
    for cur in it:
        if prev is not None and (prev, cur) == pair:
            out.append(new_id)
            prev = None
        else:
            if prev is not None:
                out.append(prev)
            prev = cur
    if prev is not None:
        out.append(prev)
    return out


# ------------------------------------------------------------------------------------------ encode
@mistake(ex.check_bpe_encode, r"frequen|count|most common|rank|lowest|earliest")
def encode_most_frequent(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        counts = Counter(p for p in zip(ids, ids[1:]) if p in merges)
        if not counts:
            break
        pair = counts.most_common(1)[0][0]  # training's rule, not the merges' order
        ids = _merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"highest|latest|max|last learned|lowest|rank|earliest")
def encode_highest_rank(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        present = [p for p in zip(ids, ids[1:]) if p in merges]
        if not present:
            break
        pair = max(present, key=lambda p: merges[p])
        ids = _merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"once|one merge|single|stop|repeat|until|more merges|not finished")
def encode_one_merge(ids, merges):
    ids = list(ids)
    if len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair in merges:
            ids = _merge(ids, pair, merges[pair])  # an if where a while was needed
    return ids


@mistake(ex.check_bpe_encode, r"stop|no (more )?pair|not in merges|KeyError|loop")  # "|exception" removed: it
# matched the fallback "your code raised an exception", counted named in the untuned commit by mistake
def encode_no_stop(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        ids = _merge(ids, pair, merges[pair])  # no check that the pair is a merge at all
    return ids


@mistake(ex.check_bpe_encode, r"rank|lowest|smallest pair|lexico|order|earliest")
def encode_smallest_pair_value(ids, merges):
    ids = list(ids)
    while True:
        present = [p for p in zip(ids, ids[1:]) if p in merges]
        if not present:
            return ids
        pair = min(present)  # the smallest ids, not the earliest merge
        ids = _merge(ids, pair, merges[pair])


@mistake(ex.check_bpe_encode, r"overlap|twice|consum|merge")
def encode_overlapping_merge(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = merge_step_one(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"two|last pair|length|stop|short|end|final")
def encode_stops_at_two(ids, merges):
    ids = list(ids)
    while len(ids) > 2:  # a final pair is never merged
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = _merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"single|empty|short|one (byte|id)|length|edge")
def encode_crashes_on_short(ids, merges):
    ids = list(ids)
    while True:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))  # min() of nothing: ValueError
        if pair not in merges:
            return ids
        ids = _merge(ids, pair, merges[pair])
        if len(ids) < 2:
            return ids


@mistake(ex.check_bpe_encode, r"in.place|modif|input|mutat|changed")
def encode_in_place(ids, merges):
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids[:] = _merge(ids, pair, merges[pair])  # slice assignment: the caller's list is rewritten
    return ids


@mistake(ex.check_bpe_encode, r"rank|new id|order|insertion|lowest|earliest")
def encode_insertion_order_rank(ids, merges):
    ranks = {p: r for r, p in enumerate(merges)}  # the dict's order taken as the order learned
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, float("inf")))
        if pair not in ranks:
            break
        ids = _merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"revers|order|swap")
def encode_pair_reversed(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids[1:], ids), key=lambda p: merges.get(p, float("inf")))  # (right, left)
        if pair not in merges:
            break
        i = list(zip(ids[1:], ids)).index(pair)
        ids = ids[:i] + [merges[pair]] + ids[i + 2:]
    return ids


@mistake(ex.check_bpe_encode, r"leftmost|first pair|left.to.right|rank|lowest|earliest|position")
def encode_leftmost_known_pair(ids, merges):
    ids = list(ids)
    while True:
        pair = next((p for p in zip(ids, ids[1:]) if p in merges), None)  # the first one found, any rank
        if pair is None:
            return ids
        ids = _merge(ids, pair, merges[pair])


@mistake(ex.check_bpe_encode, r"stop|early|break|continue|skip|absent")
def encode_break_instead_of_continue(ids, merges):
    ids = list(ids)
    for pair, new_id in sorted(merges.items(), key=lambda item: item[1]):
        if pair not in set(zip(ids, ids[1:])):
            break  # stops at the first merge this text does not use
        ids = _merge(ids, pair, new_id)
    return ids


@mistake(ex.check_bpe_encode, r"stale|new pairs|recomput|created|once|more merges")
def encode_pairs_computed_once(ids, merges):
    ids = list(ids)
    pairs = set(zip(ids, ids[1:]))  # never recomputed: pairs made by a merge are missed
    for pair, new_id in sorted(merges.items(), key=lambda item: item[1]):
        if pair in pairs:
            ids = _merge(ids, pair, new_id)
    return ids


@mistake(ex.check_bpe_encode, r"type|tuple|list|tensor|array")
def encode_returns_array(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = _merge(ids, pair, merges[pair])
    return np.array(ids)  # numpy habit: an array, not a list


@valid(ex.check_bpe_encode)
def encode_replay_in_rank_order(ids, merges):
    ids = list(ids)
    for pair, new_id in sorted(merges.items(), key=lambda item: item[1]):  # a merge's parts are always older
        ids = _merge(ids, pair, new_id)
    return ids


@valid(ex.check_bpe_encode)
def encode_one_occurrence_at_a_time(ids, merges):
    ids = list(ids)
    while True:
        best = None
        for i in range(len(ids) - 1):
            rank = merges.get((ids[i], ids[i + 1]))
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, i)
        if best is None:
            return ids
        rank, i = best
        ids = ids[:i] + [rank] + ids[i + 2:]  # the leftmost occurrence; the next pass finds the others


@valid(ex.check_bpe_encode)
def encode_recursive(ids, merges):
    ids = list(ids)
    ranked = [p for p in zip(ids, ids[1:]) if p in merges]
    if not ranked:
        return ids
    pair = min(ranked, key=merges.__getitem__)
    return encode_recursive(_merge(ids, pair, merges[pair]), merges)
