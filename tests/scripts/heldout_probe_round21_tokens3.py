"""The held-out probe, round 21, tokens part 3: merge and BPE encoding (cousins, partial slips, combinations, valid)."""

from __future__ import annotations

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


def _ref_merge(ids, pair, new_id):
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
@mistake(ex.check_merge, r"first|only one|once|every")
def merge_first_only(ids, pair, new_id):
    ids = list(ids)
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2:]
    return ids


@mistake(ex.check_merge, r"last|only one|once|every")
def merge_last_only(ids, pair, new_id):  # cousin of "first only": the last occurrence only
    ids = list(ids)
    for i in range(len(ids) - 2, -1, -1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2:]
    return ids


@mistake(ex.check_merge, r"right.to.left|revers|direction|from the right|backward")
def merge_right_to_left(ids, pair, new_id):  # scans from the end: [1, 1, 1] -> [1, X]
    out, i = [], len(ids) - 1
    while i >= 0:
        if i >= 1 and (ids[i - 1], ids[i]) == pair:
            out.append(new_id)
            i -= 2
        else:
            out.append(ids[i])
            i -= 1
    return out[::-1]


@mistake(ex.check_merge, r"skip|drop|i \+= ?3|step|three|lost|missing")
def merge_step3(ids, pair, new_id):  # after a merge, i += 3: the token after the pair is lost
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 3
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"last|end|drop|final|trailing")
def merge_drops_last(ids, pair, new_id):  # loop to len - 1: an unmatched last token is dropped
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"revers|order|symm|either|swapped|\(b, ?a\)")
def merge_either_order(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) in (pair, pair[::-1]):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"in.place|mutat|new list|copy|input")
def merge_in_place(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            ids[i:i + 2] = [new_id]
        i += 1
    return ids


@mistake(ex.check_merge, r"even|stride|align|odd|position")
def merge_even_positions_only(ids, pair, new_id):  # steps by 2 always: pairs starting at odd positions are missed
    out = []
    for i in range(0, len(ids), 2):
        chunk = ids[i:i + 2]
        out.extend([new_id] if tuple(chunk) == pair else chunk)
    return out


@mistake(ex.check_merge, r"second|pair\[1\]|first (id|element|token)|half|only the first|one element")
def merge_first_element_only(ids, pair, new_id):  # matches on ids[i] == pair[0] alone
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"new.?id|off.by|\+ ?1|id")
def merge_new_id_plus1(ids, pair, new_id):
    return _ref_merge(ids, pair, new_id + 1)


@mistake(ex.check_merge, r"keep|kept|insert|remov|both")  # widened: "kept"
def merge_keeps_second(ids, pair, new_id):  # replaces the first of the pair, keeps the second
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out += [new_id, ids[i + 1]]
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"string|substring|digit|text|replace")
def merge_via_string(ids, pair, new_id):  # str.replace on a space-joined string: "1 2" also matches inside "11 2"
    s = " ".join(map(str, ids)).replace(f"{pair[0]} {pair[1]}", str(new_id))
    return [int(t) for t in s.split()] if s else []


@mistake(ex.check_merge, r"(new.?id|\+ ?1).*(last|end|drop)|(last|end|drop).*(new.?id|\+ ?1)")
def merge_plus1_drops_last(ids, pair, new_id):  # combination: new_id + 1 and the last token dropped
    return merge_drops_last(ids, pair, new_id + 1)


@valid(ex.check_merge)  # looked like a mistake; equal: a new_id outside the pair never forms the pair again
def merge_repeat_until_none(ids, pair, new_id):  # repeats while the pair occurs
    ids = list(ids)
    while True:
        out = _ref_merge(ids, pair, new_id)
        if out == ids:
            return out
        ids = out


@valid(ex.check_merge)
def merge_valid_for_skip(ids, pair, new_id):
    out, skip = [], False
    for i, t in enumerate(ids):
        if skip:
            skip = False
            continue
        if i + 1 < len(ids) and t == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            skip = True
        else:
            out.append(t)
    return out


@valid(ex.check_merge)
def merge_valid_recursive(ids, pair, new_id):
    ids = list(ids)
    if len(ids) < 2:
        return ids
    if (ids[0], ids[1]) == pair:
        return [new_id] + merge_valid_recursive(ids[2:], pair, new_id)
    return [ids[0]] + merge_valid_recursive(ids[1:], pair, new_id)


@valid(ex.check_merge)
def merge_valid_index_bookkeeping(ids, pair, new_id):  # finds positions first, then rebuilds
    starts, i = [], 0
    while i < len(ids) - 1:
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:
            starts.append(i)
            i += 2
        else:
            i += 1
    out, prev = [], 0
    for s in starts:
        out += list(ids[prev:s]) + [new_id]
        prev = s + 2
    return out + list(ids[prev:])


# ------------------------------------------------------------------------------------------ BPE encode
@mistake(ex.check_bpe_encode, r"highest|latest|max|rank|last learned")
def bpe_highest_rank(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        cands = [p for p in zip(ids, ids[1:]) if p in merges]
        if not cands:
            break
        pair = max(cands, key=merges.get)
        ids = _ref_merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"sum|pair.*id|key|rank|smallest pair|lowest id")
def bpe_min_by_pair_ids(ids, merges):  # picks the mergeable pair with the smallest ids, not the lowest rank
    ids = list(ids)
    while len(ids) >= 2:
        cands = [p for p in zip(ids, ids[1:]) if p in merges]
        if not cands:
            break
        pair = min(cands)
        ids = _ref_merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"once|one merge|repeat|loop|single|stop")
def bpe_one_merge(ids, merges):
    ids = list(ids)
    cands = [p for p in zip(ids, ids[1:]) if p in merges]
    if cands:
        pair = min(cands, key=merges.get)
        ids = _ref_merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"two|length|stop|last|early|> ?2")
def bpe_stops_at_two(ids, merges):  # while len(ids) > 2: a final two-token merge is never made
    ids = list(ids)
    while len(ids) > 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = _ref_merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"frequen|count|common")
def bpe_most_frequent(ids, merges):
    from collections import Counter
    ids = list(ids)
    while len(ids) >= 2:
        counts = Counter(p for p in zip(ids, ids[1:]) if p in merges)
        if not counts:
            break
        pair = max(counts, key=lambda p: (counts[p], -merges[p]))
        ids = _ref_merge(ids, pair, merges[pair])
    return ids


@valid(ex.check_bpe_encode)  # looked like a mistake; equal: the loop finds the same lowest-ranked pair again next
def bpe_first_merge_first_occurrence(ids, merges):  # the first merge replaces only its first occurrence
    ids = list(ids)
    first = True
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        if first:
            i = next(j for j in range(len(ids) - 1) if (ids[j], ids[j + 1]) == pair)
            ids = ids[:i] + [merges[pair]] + ids[i + 2:]
            first = False
        else:
            ids = _ref_merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"default|unknown|missing|stop|early|get\(|0")
def bpe_get_default_zero(ids, merges):  # merges.get(p, 0): an unknown pair ranks first, the loop stops at once
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, 0))
        if pair not in merges:
            break
        ids = _ref_merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"left|first|position|rank|earliest|lowest")
def bpe_leftmost_mergeable(ids, merges):  # the leftmost mergeable pair, whatever its rank
    ids = list(ids)
    while True:
        pair = next((p for p in zip(ids, ids[1:]) if p in merges), None)
        if pair is None:
            return ids
        ids = _ref_merge(ids, pair, merges[pair])


@mistake(ex.check_bpe_encode, r"last|skip|missing|newest|final merge")
def bpe_skips_last_merge(ids, merges):  # list(merges)[:-1]: the merge learned last is never used
    usable = dict(sorted(merges.items(), key=lambda kv: kv[1])[:-1])
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: usable.get(p, float("inf")))
        if pair not in usable:
            break
        ids = _ref_merge(ids, pair, usable[pair])
    return ids


@mistake(ex.check_bpe_encode, r"adjacent|gap|skip|non.adjacent|ids\[2:\]|neighbo")
def bpe_gap_pairs(ids, merges):  # zip(ids, ids[2:]): looks at tokens two apart for the rank
    ids = list(ids)
    while len(ids) >= 2:
        cands = [(merges[(a, b)], i) for i, (a, b) in enumerate(zip(ids, ids[1:])) if (a, b) in merges]
        gap = [merges.get(p, float("inf")) for p in zip(ids, ids[2:])]
        if not cands:
            break
        best = min(cands)
        if gap and min(gap) < best[0]:
            i = gap.index(min(gap))
            if (ids[i], ids[i + 1]) in merges:
                best = (merges[(ids[i], ids[i + 1])], i)
        pair = (ids[best[1]], ids[best[1] + 1])
        ids = _ref_merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"overlap|merge")
def bpe_overlapping_merge(ids, merges):  # its own merge steps by 1 after a match: [a, a, a] -> [X, X]
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        out, i = [], 0
        while i < len(ids):
            if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                out.append(merges[pair])
                i += 1 if i + 2 < len(ids) and ids[i + 2] == pair[1] else 2
            else:
                out.append(ids[i])
                i += 1
        ids = out
    return ids


@mistake(ex.check_bpe_encode, r"(highest|max|latest).*(once|single|one)|(once|single|one).*(highest|max|latest)")
def bpe_highest_once(ids, merges):  # combination: the highest rank, and one merge only
    ids = list(ids)
    cands = [p for p in zip(ids, ids[1:]) if p in merges]
    if cands:
        pair = max(cands, key=merges.get)
        ids = _ref_merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"in.place|mutat|input|copy")
def bpe_mutates_input(ids, merges):
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids[:] = _ref_merge(ids, pair, merges[pair])
    return ids


@valid(ex.check_bpe_encode)
def bpe_valid_rank_order_single_pass(ids, merges):  # each merge once, in rank order: a later merge never creates an
    ids = list(ids)  # earlier-ranked pair (a pair holding id r was learned after r)
    for pair, new_id in sorted(merges.items(), key=lambda kv: kv[1]):
        ids = _ref_merge(ids, pair, new_id)
    return ids


@valid(ex.check_bpe_encode)
def bpe_valid_recursive(ids, merges):
    ids = list(ids)
    ranked = [(merges[p], p) for p in zip(ids, ids[1:]) if p in merges]
    if not ranked:
        return ids
    _, pair = min(ranked)
    return bpe_valid_recursive(_ref_merge(ids, pair, merges[pair]), merges)


@valid(ex.check_bpe_encode)
def bpe_valid_len_sentinel(ids, merges):  # len(merges) + 256 as the "not a merge" rank, a bounded for loop
    ids = list(ids)
    big = max(merges.values(), default=0) + 1
    for _ in range(len(merges)):
        ranks = [merges.get(p, big) for p in zip(ids, ids[1:])]
        if not ranks or min(ranks) == big:
            break
        i = ranks.index(min(ranks))
        pair = (ids[i], ids[i + 1])
        ids = _ref_merge(ids, pair, merges[pair])
    return ids
