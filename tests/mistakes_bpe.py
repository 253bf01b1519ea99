"""
Student-style BPE merge steps and encoders: (checker, buggy function, expected name) rows, valid alternatives,
and unnamed mistakes that must be reported as not recognised.
"""

from __future__ import annotations

from mingpt.exercises import check_bpe_encode, check_merge


def merge_ok(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def merge_overlapping(ids, pair, new_id):
    out = []
    for i in range(len(ids)):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)
        elif not (i > 0 and (ids[i - 1], ids[i]) == tuple(pair)):
            out.append(ids[i])
    return out


def merge_keeps_right_half(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
        else:
            out.append(ids[i])
        i += 1
    return out


def merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:
            return ids[:i] + [new_id] + ids[i + 2:]
    return ids[:]


def merge_drops_last(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def merge_list_vs_tuple(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if ids[i : i + 2] == pair:  # a list never equals a tuple
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def merge_either_order(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and {ids[i], ids[i + 1]} == set(pair) and ids[i] != ids[i + 1] or \
                i + 1 < len(ids) and ids[i] == ids[i + 1] == pair[0] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def merge_from_the_right(ids, pair, new_id):
    out, i = [], len(ids) - 1
    while i >= 0:
        if i > 0 and (ids[i - 1], ids[i]) == pair:
            out.insert(0, new_id)
            i -= 2
        else:
            out.insert(0, ids[i])
            i -= 1
    return out


def merge_via_string(ids, pair, new_id):
    text = " ".join(str(t) for t in ids)
    text = text.replace(f"{pair[0]} {pair[1]}", str(new_id))
    return [int(t) for t in text.split()]


def merge_even_positions(ids, pair, new_id):
    out = []
    for i in range(0, len(ids), 2):
        if tuple(ids[i : i + 2]) == pair:
            out.append(new_id)
        else:
            out.extend(ids[i : i + 2])
    return out


def merge_tuple(ids, pair, new_id):
    return tuple(merge_ok(ids, pair, new_id))


def merge_in_place(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == tuple(pair):
            ids[i : i + 2] = [new_id]
        i += 1
    return ids


MERGE_MISTAKES = [
    (check_merge, merge_overlapping, "overlapping pairs merged twice"),
    (check_merge, merge_keeps_right_half, "right half of a merged pair kept"),
    (check_merge, merge_first_only, "only the first occurrence merged"),
    (check_merge, merge_drops_last, "last element dropped"),
    (check_merge, merge_list_vs_tuple, "nothing merged"),
    (check_merge, merge_either_order, "pair matched in either order"),
    (check_merge, merge_from_the_right, "scanned right to left"),
    (check_merge, merge_via_string, "merged in a string of the ids"),
    (check_merge, merge_even_positions, "only pairs at even positions checked"),
    (check_merge, merge_tuple, "returned a tuple, not a list"),
    (check_merge, merge_in_place, "the input list was changed"),
    # an UNNAMED example until round 16: now rebuilt exactly (bpe.py's new_id +-1 rows)
    (check_merge, lambda ids, pair, new_id: merge_ok(ids, pair, new_id + 1), "merged into new_id +1, not new_id"),
]


def merge_by_zip(ids, pair, new_id):  # valid: an iterator with a skip flag
    out, skip = [], False
    for a, b in zip(ids, ids[1:] + [None]):
        if skip:
            skip = False
        elif (a, b) == pair:
            out.append(new_id)
            skip = True
        else:
            out.append(a)
    return out


MERGE_VALID = [(check_merge, merge_ok), (check_merge, merge_by_zip)]


# ------------------------------------------------------------------------------------------ encode
def encode_ok(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = merge_ok(ids, pair, merges[pair])
    return ids


def encode_sorted_merges(ids, merges):  # valid: each merge once, in rank order
    ids = list(ids)
    for pair, new_id in sorted(merges.items(), key=lambda item: item[1]):
        ids = merge_ok(ids, pair, new_id)
    return ids


def encoder(choose, new_id=lambda merges, pair: merges[pair], guard=2, merge=None):
    def encode(ids, merges):
        ids = list(ids)
        while len(ids) >= guard:
            candidates = [p for p in zip(ids, ids[1:]) if p in merges]
            if not candidates:
                break
            pair = choose(candidates, merges)
            ids = (merge or merge_ok)(ids, pair, new_id(merges, pair))
        return ids
    return encode


def encode_every_pair_per_pass(ids, merges):  # each round merges all the mergeable pairs present, lowest rank first
    ids = list(ids)
    while True:
        present = sorted({p for p in zip(ids, ids[1:]) if p in merges}, key=merges.get)
        if not present:
            return ids
        for pair in present:
            ids = merge_ok(ids, pair, merges[pair])


def encode_by_frequency(ids, merges):
    while True:
        counts = {}
        for p in zip(ids, ids[1:]):
            if p in merges:
                counts[p] = counts.get(p, 0) + 1
        if not counts:
            return ids
        best = max(counts, key=lambda p: (counts[p], -merges[p]))
        ids = merge_ok(ids, best, merges[best])


def encode_dict_order(ids, merges):
    for pair, new_id in merges.items():
        ids = merge_ok(ids, pair, new_id)
    return ids


def encode_latest_first(ids, merges):
    for pair in sorted(merges, key=merges.get, reverse=True):
        ids = merge_ok(ids, pair, merges[pair])
    return ids


def encode_get_zero(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, 0))
        if pair not in merges:
            break
        ids = merge_ok(ids, pair, merges[pair])
    return ids


def encode_once(ids, merges):
    pairs = [p for p in zip(ids, ids[1:]) if p in merges]
    if not pairs:
        return list(ids)
    pair = min(pairs, key=lambda p: merges[p])
    return merge_ok(ids, pair, merges[pair])


def encode_without_stop(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair in merges:
            ids = merge_ok(ids, pair, merges[pair])
    return ids


def encode_no_guard(ids, merges):
    ids = list(ids)
    while True:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            return ids
        ids = merge_ok(ids, pair, merges[pair])


def encode_in_place(ids, merges):
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids[:] = merge_ok(ids, pair, merges[pair])
    return ids


ENCODE_MISTAKES = [
    (check_bpe_encode, encode_by_frequency, "merging by frequency instead of rank"),
    (check_bpe_encode, encoder(lambda c, m: max(c, key=lambda p: m[p])), "merging the latest-learned pair first"),
    (check_bpe_encode, encoder(lambda c, m: c[0]), "merging the leftmost pair instead of the lowest rank"),
    (check_bpe_encode, encode_dict_order, "merges applied in the dict's order, not by rank"),
    (check_bpe_encode, encode_latest_first, "merges applied from the latest learned to the earliest"),
    (check_bpe_encode, encoder(lambda c, m: min(c)), "the smallest pair chosen, not the lowest rank"),
    (check_bpe_encode, encoder(lambda c, m: min(c, key=lambda p: str(m[p]))), "ranks compared as strings"),
    (check_bpe_encode, encode_get_zero, "unknown pairs ranked first"),
    (check_bpe_encode, encode_once, "only one merge applied"),
    (check_bpe_encode, encode_without_stop, "the loop never stops"),
    (check_bpe_encode, encode_no_guard, "fails when fewer than two tokens are left"),
    (check_bpe_encode, encode_in_place, "the input list was changed"),
    (check_bpe_encode, encoder(lambda c, m: sorted(c, key=m.get)[0], new_id=lambda m, p: m.get(p[::-1], m[p])),
     "the id of the reversed pair written (merges[pair[::-1]])"),
    (check_bpe_encode, encoder(lambda c, m: min(c, key=m.get), new_id=lambda m, p: 256 + sorted(m.values()).index(
        m[p])), "the merged token's id counted from 256 (256 + the rank's position), not merges[pair]"),
    (check_bpe_encode, encode_every_pair_per_pass, "every mergeable pair merged in one pass (not the lowest-ranked "
                                                   "pair, one at a time)"),
    # two mistakes at once, in two parts of the loop (compare.part_variants)
    (check_bpe_encode, encoder(lambda c, m: max(c, key=m.get), guard=3),
     "two mistakes: merging the latest-learned pair first; and stops with two tokens left (length guard off by one)"),
    (check_bpe_encode, encoder(lambda c, m: c[0], merge=merge_drops_last), "two mistakes: merging the leftmost pair "
     "instead of the lowest rank; and the merge step inside encode: last element dropped"),
]

ENCODE_VALID = [(check_bpe_encode, encode_ok), (check_bpe_encode, encode_sorted_merges),
                (check_bpe_encode, encoder(lambda c, m: min(c, key=m.get)))]

UNNAMED = [(check_merge, lambda ids, pair, new_id: merge_ok(ids, pair, new_id)[::-1]),
           (check_bpe_encode, lambda ids, merges: encode_ok(ids, merges)[::-1])]

MISTAKES = MERGE_MISTAKES + ENCODE_MISTAKES
VALID = MERGE_VALID + ENCODE_VALID
