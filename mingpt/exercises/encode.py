"""
Checking a student's BPE encode: repeatedly merge the adjacent pair whose merge was learned earliest (the lowest
rank, here the smallest new id), until no adjacent pair is in the table (bpe.py checks the merge step itself).

The one idea: encoding is a loop with four parts (how the next pair is chosen, when the loop stops, the id written
for a merged pair, and the merge step), and most mistakes live in one of them. The table below lists whole
mistakes; besides it the checker rebuilds the loop with one or two parts replaced (compare.part_variants), so a
student who takes the highest rank *and* stops with two tokens left hears both. The cases use merge tables on
which rank order, leftmost position, frequency, insertion order and string order all disagree, so that each
choice of the next pair gives different tokens.

    from mingpt.exercises import check_bpe_encode
    check_bpe_encode(my_encode)    # my_encode(ids: list[int], merges: {(a, b): new_id}) -> list; lower id = earlier
"""

from __future__ import annotations

from collections import Counter

from mingpt.exercises.bpe import (CRASH_HINT, MERGE_MISTAKES, LoopNeverStops, never_stops, reference_encode,
                                  step_limited)
from mingpt.exercises.checking import CheckResult, Variant, fail, run
from mingpt.exercises.compare import Part, check_cases, part_variants
from mingpt.tokenizer import merge_pair

__all__ = ["check_bpe_encode", "ENCODE_MISTAKES", "ENCODE_PARTS"]


def _encode(ids, merges, choose, stop_when_single=True):
    """The encode loop with a pluggable choice of the pair to merge next (None: stop)."""
    ids = list(ids)
    while len(ids) > 1 or not stop_when_single:
        pair = choose(ids, merges)
        if pair is None:
            break
        ids = merge_pair(ids, pair[0], pair[1], merges[pair])
    return ids


def _mergeable(ids, merges):
    return [p for p in zip(ids, ids[1:]) if p in merges]


def _by_frequency(ids, merges):
    counts = Counter(_mergeable(ids, merges))
    return max(counts, key=lambda p: (counts[p], -merges[p])) if counts else None


def _never_stops(ids, merges):
    out = reference_encode(ids, merges)
    if len(out) > 1:
        raise never_stops()
    return out


def _no_length_guard(ids, merges):
    out = reference_encode(ids, merges)
    if len(out) < 2:  # the loop goes on with one token (or none) and takes min() of no pairs
        raise ValueError("min() arg is an empty sequence")
    return out


def _in_dict_order(ids, merges):
    ids = list(ids)
    for pair, new_id in merges.items():
        ids = merge_pair(ids, pair[0], pair[1], new_id)
    return ids


def _lowest_rank(ids, merges):
    return min(_mergeable(ids, merges), key=merges.get, default=None)


def _table_in_rank_order_stops(ids, merges):
    """The merge table walked in rank order, stopping at the first merge absent from the text (not skipping it)."""
    ids = list(ids)
    for pair in sorted(merges, key=merges.get):
        if pair not in set(zip(ids, ids[1:])):
            break
        ids = merge_pair(ids, pair[0], pair[1], merges[pair])
    return ids


def _input_pairs_only(ids, merges):
    """The merge table walked in rank order, applying only merges whose pair was in the *input*: the pairs present
    are computed once, before any merge, so a pair that a merge creates is never merged."""
    ids, present = list(ids), set(zip(ids, ids[1:]))
    for pair in sorted(merges, key=merges.get):
        if pair in present:
            ids = merge_pair(ids, pair[0], pair[1], merges[pair])
    return ids


def _first_pair_decides(ids, merges):
    """The lowest-ranked mergeable pair, but only while the list's *first* pair (ids[0], ids[1]) is a merge: a loop
    `while (ids[0], ids[1]) in merges` tests one pair for the stop and another for the choice."""
    return _lowest_rank(ids, merges) if len(ids) >= 2 and (ids[0], ids[1]) in merges else None


def _short_input_fails(ids, merges):
    """The reference, but the first min() over the pairs comes before any length check: an input of fewer than two
    ids raises (min() of no pairs), while a list that shrinks to one id inside the loop is handled."""
    if len(ids) < 2:
        min(zip(ids, ids[1:]))  # raises ValueError, in this Python's own words
    return reference_encode(ids, merges)


def _no_stop_check(ids, merges):
    """The reference loop without its stop: when the best pair is not in the table, merges[pair] raises KeyError
    (the pair min() picked among the unknown ones: the first)."""
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        ids = merge_pair(ids, pair[0], pair[1], merges[pair])
    return ids


def _reversed_lookup(ids, merges):
    """Pairs looked up as (right, left): (a, b) in the text merges when (b, a) is in the table, with (b, a)'s id."""
    return _encode_with(ids, merges, new_id=lambda m, p: m[p[::-1]], choose=lambda i, m: min(
        (p for p in zip(i, i[1:]) if p[::-1] in m), key=lambda p: m[p[::-1]], default=None))


def _one_merge(ids, merges):
    pair = _lowest_rank(ids, merges)
    return list(ids) if pair is None else merge_pair(list(ids), pair[0], pair[1], merges[pair])


def _unknown_ranked_first(ids, merges):
    ids = list(ids)
    while len(ids) > 1:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, 0))
        if pair not in merges:
            break
        ids = merge_pair(ids, pair[0], pair[1], merges[pair])
    return ids


def _min_without_default(ids, merges):
    """min over the pairs with merges.get as key: None for an unknown pair, which cannot be compared."""
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=merges.get)
        ids = merge_pair(ids, pair[0], pair[1], merges[pair])
    return ids


def _encode_with(ids, merges, merge=lambda i, p, n: merge_pair(i, p[0], p[1], n), new_id=lambda m, p: m[p], guard=2,
                 choose=_lowest_rank, rounds=None):
    """The reference loop with its merge step, the id it writes, its length guard or its choice of the next pair
    replaced (at most len(ids) rounds: a broken merge that never shortens the list cannot explain anything)."""
    ids = list(ids)
    for _ in range(len(ids) + 1 if rounds is None else rounds):
        pair = choose(ids, merges) if len(ids) >= guard else None
        if pair is None:
            return ids
        ids = merge(ids, pair, new_id(merges, pair))
    if rounds is not None:  # a loop that stops after `rounds` merges (one merge only, without a loop)
        return ids
    raise LoopNeverStops("no shorter after len(ids) merges")


ENCODE_MISTAKES = [  # (name, f(ids, merges), explanation, hint)
    ("the merged token's id is the rank + 1 (off by one)",
     lambda i, m: _encode_with(i, m, new_id=lambda m, p: m[p] + 1),
     "The id written for a merged pair is merges[pair] itself; yours adds 1, so later merges never find the pair.",
     "new_id = merges[pair]"),
    ("stops with two tokens left (length guard off by one)", lambda i, m: _encode_with(i, m, guard=3),
     "Two tokens are still one pair that may merge; only fewer than two end the loop.", "while len(ids) >= 2"),
    ("unknown pairs ranked None (min with merges.get)", _min_without_default,
     "merges.get(pair) is None for a pair that was never learned, and None cannot be compared with a rank, so "
     "min fails as soon as one such pair is present (and nothing tells the loop to stop when none is mergeable).",
     "key=lambda p: merges.get(p, float('inf')), and stop when the best pair is not in merges"),
    ("merging by frequency instead of rank", lambda ids, m: _encode(ids, m, _by_frequency),
     "BPE applies the merge that was learned *earliest* (lowest rank, here the smallest new id) among the pairs "
     "present, however often another pair occurs in this text.", "pick the pair whose merge has the lowest rank"),
    ("merging by frequency instead of rank",
     lambda ids, m: _encode(ids, m, lambda i, m: (lambda c: max(c, key=c.get) if c else None)(
         Counter(_mergeable(i, m)))),  # ties: the pair seen first, as Counter + max(key=counts.get) do
     "BPE applies the merge that was learned *earliest* (lowest rank, here the smallest new id) among the pairs "
     "present, however often another pair occurs in this text.", "pick the pair whose merge has the lowest rank"),
    ("merging the latest-learned pair first",
     lambda ids, m: _encode(ids, m, lambda i, m: max(_mergeable(i, m), key=m.get, default=None)),
     "The earliest-learned merge (the lowest rank) goes first; yours takes the highest.", "min, not max"),
    ("merging the leftmost pair instead of the lowest rank",
     lambda ids, m: _encode(ids, m, lambda i, m: next(iter(_mergeable(i, m)), None)),
     "The next merge is not the first mergeable pair from the left but the one learned earliest.",
     "look at every adjacent pair, then choose by rank"),
    ("merges applied in the dict's order, not by rank", _in_dict_order,
     "A merge table's rank is its new id (lower = learned earlier); the order the dict happens to list its pairs "
     "in is not the rank.", "sort by rank, or pick the lowest-ranked pair present at each step"),
    ("merges applied from the latest learned to the earliest",
     lambda ids, m: _in_dict_order(ids, dict(sorted(m.items(), key=lambda kv: -kv[1]))),
     "The earliest-learned merge (the lowest rank) goes first: later merges build on the tokens earlier ones make.",
     "sort the merges by rank, lowest first"),
    ("the smallest pair chosen, not the lowest rank",
     lambda ids, m: _encode(ids, m, lambda i, m: min(_mergeable(i, m), default=None)),
     "min over the pairs themselves compares the ids ((5, 12) < (7, 7)); the choice is by the *rank* merges[pair].",
     "min(..., key=lambda p: merges.get(p, float('inf')))"),
    ("ranks compared as strings",
     lambda ids, m: _encode(ids, m, lambda i, m: min(_mergeable(i, m), key=lambda p: str(m[p]), default=None)),
     "As text, '1500' sorts before '300'; ranks are numbers.", "compare the ints themselves"),
    ("unknown pairs ranked first", _unknown_ranked_first,
     "merges.get(pair, 0) gives pairs that are not in the table the best rank, so the loop stops as soon as any "
     "unknown pair is present.", "rank unknown pairs last: merges.get(pair, float('inf'))"),
    ("the merge table walked in rank order, stopping at the first merge the text lacks",
     _table_in_rank_order_stops,
     "Walking the whole table by rank is fine, but a merge whose pair is not in this text is skipped, not the end: "
     "later merges may still apply (and one that is absent now may appear after a later merge, so the pair to "
     "merge is best chosen among the text's own pairs).",
     "continue past an absent merge, or pick the lowest-ranked pair present at each step"),
    ("the pairs present computed once, before any merge: pairs that merges create are never merged",
     _input_pairs_only, "Walking the table in rank order is fine, but which pairs the text holds must be looked at "
     "again after each merge: a merge makes new pairs (256 beside 99 after merging (97, 98)), and those can be in "
     "the table too.", "recompute zip(ids, ids[1:]) after every merge"),
    ("stops as soon as the first pair (ids[0], ids[1]) is not a merge, though later pairs still are",
     lambda ids, m: _encode(ids, m, _first_pair_decides),
     "The loop must go on while *any* adjacent pair is in the table; yours tests only the pair at the start of the "
     "list, so a text whose first two tokens never merge is returned untouched, and encoding ends whenever a merge "
     "leaves an unmergeable pair in front.", "stop when the lowest-ranked pair is not in merges, whatever its place"),
    ("fails on an input of fewer than two ids (min() of no pairs before any length check)", _short_input_fails,
     "An empty list, or a single id (a one-byte chunk of text), has no pair: encoding returns it as it is. Your "
     "loop takes min() over the pairs before checking that there are any.", "while len(ids) >= 2: ..."),
    ("no stop when no pair is mergeable: merges[pair] of a pair not in the table (KeyError)", _no_stop_check,
     "Encoding ends when the lowest-ranked adjacent pair is not in the table at all; yours goes on and looks it up, "
     "so every text that does not merge down to one token raises KeyError.",
     "if pair not in merges: break, before merges[pair]"),
    ("pairs looked up reversed (merges[(right, left)])", _reversed_lookup,
     "A pair (a, b) is 'a followed by b': merges[(ids[i], ids[i + 1])]. Yours looks up (ids[i + 1], ids[i]), so it "
     "merges the pairs learned in the other order.", "zip(ids, ids[1:]), the left id first"),
    ("only one merge applied", lambda ids, m: _one_merge(ids, m),
     "Encoding repeats the merge step until no adjacent pair is in the table: a merged token can form a new pair.",
     "put the step in a loop that stops when no pair can merge"),
    ("returned a tuple, not a list", lambda ids, m: tuple(reference_encode(ids, m)),
     "encode returns a list of ids (callers append to it and compare it with lists).", "return a list"),
    ("the loop never stops", _never_stops,
     "When no adjacent pair is in the merge table, encoding is done; your loop has no way out then.",
     "break when the best pair is not in merges"),
    ("fails when fewer than two tokens are left", _no_length_guard,
     "An empty list or a single token has no pair to merge: encoding is done (min() of no pairs raises).",
     "while len(ids) >= 2"),
]

ENCODE_MISTAKES += [  # encode's own merge step with one of the merge step's mistakes
    (f"the merge step inside encode: {name}", lambda i, m, f=f: _encode_with(i, m, merge=f), why,
     f"check your merge with check_merge; {hint}") for name, f, why, hint in MERGE_MISTAKES]



def _every_pair_in_one_pass(order):
    """Each round merges every mergeable pair present (in the given order), instead of one lowest-ranked pair."""
    def encode(ids, merges):
        ids = list(ids)
        for _ in range(len(ids) + 1):
            present = _mergeable(ids, merges)
            if not present:
                return ids
            for pair in sorted(set(present), key=lambda p: order(ids, merges, p)):
                ids = merge_pair(ids, pair[0], pair[1], merges[pair])
        return ids
    return encode


def _one_sweep(ids, merges):
    """Each round sweeps left to right and merges whatever adjacent pair is in the table, whatever its rank."""
    ids = list(ids)
    for _ in range(len(ids) + 1):
        out, i = [], 0
        while i < len(ids):
            pair = tuple(ids[i:i + 2])
            out.append(merges[pair] if pair in merges else ids[i])
            i += 2 if pair in merges else 1
        if out == ids:
            return ids
        ids = out
    return ids


ENCODE_MISTAKES += [
    ("every mergeable pair merged in one pass (not the lowest-ranked pair, one at a time)", _one_sweep,
     "Each step merges *one* pair, the lowest-ranked present, and then looks again; yours merges every pair in the "
     "table as it sweeps from left to right, whatever its rank.", "one merge per step, then recompute the pairs"),
    ("every mergeable pair merged in one pass (not the lowest-ranked pair, one at a time)",
     _every_pair_in_one_pass(lambda ids, m, p: m[p]), "Each step merges *one* pair, the lowest-ranked present, "
     "and then looks again: a merge can create a pair of lower rank than the others present, which must go first.",
     "one merge per step, then recompute the pairs"),
    ("every mergeable pair merged in one pass (not the lowest-ranked pair, one at a time)",
     _every_pair_in_one_pass(lambda ids, m, p: (ids.index(p[0]), m[p])), "Each step merges *one* pair, the "
     "lowest-ranked present, and then looks again; yours merges all the pairs present, left to right.",
     "one merge per step, then recompute the pairs"),
]


def _without(which):
    """The lowest-ranked mergeable pair, with the table's first (which=0) or last (-1) merge left out: merges sliced
    [1:] or [:-1], range(1, len(merges)) or range(len(merges) - 1)."""
    def choose(ids, merges):
        left_out = sorted(merges.values())[which] if merges else None
        return min((p for p in _mergeable(ids, merges) if merges[p] != left_out), key=merges.get, default=None)
    return choose


SKIPPED = [(which, f"the merge learned {word} never applied (the table sliced {cut}, or a range one short)",
            f"Every merge of the table can apply, the {word} learned one included; yours never merges its pair "
            f"(merges sorted by rank and sliced {cut}, or a loop over range(len(merges) - 1)).",
            "use every merge of the table") for which, word, cut in ((-1, "last", "[:-1]"), (0, "first", "[1:]"))]
ENCODE_MISTAKES += [(name, lambda i, m, w=w: _encode(i, m, _without(w)), why, hint) for w, name, why, hint in SKIPPED]

# One mistake per part of the loop (kind: the part): alone they are also in the table above; their use is in pairs.
ENCODE_PARTS = [
    *[Part("choose", _without(w), name, why, hint) for w, name, why, hint in SKIPPED],
    Part("choose", lambda i, m: max(_mergeable(i, m), key=m.get, default=None), "merging the latest-learned pair "
         "first", "The earliest-learned merge (the lowest rank) goes first; yours takes the highest.", "min, not max"),
    Part("choose", lambda i, m: next(iter(_mergeable(i, m)), None), "merging the leftmost pair instead of the lowest "
         "rank", "The next merge is the one learned earliest, not the first mergeable pair from the left.",
         "look at every adjacent pair, then choose by rank"),
    Part("choose", lambda i, m: next(reversed(_mergeable(i, m)), None), "merging the rightmost pair instead of the "
         "lowest rank", "The next merge is the one learned earliest, not the last mergeable pair from the left.",
         "look at every adjacent pair, then choose by rank"),
    Part("choose", lambda i, m: min(_mergeable(i, m), default=None), "the smallest pair chosen, not the lowest rank",
         "min over the pairs compares the ids; the choice is by the *rank* merges[pair].",
         "min(..., key=lambda p: merges.get(p, float('inf')))"),
    Part("choose", lambda i, m: (lambda p: p if p in m else None)(min(zip(i, i[1:]), key=m.get)), "unknown pairs "
         "ranked None (min with merges.get, no default)", "merges.get(pair) is None for a pair that was never "
         "learned, and None cannot be compared with a rank: min raises TypeError as soon as such a pair sits beside "
         "another.", "key=lambda p: merges.get(p, float('inf'))"),
    Part("choose", _by_frequency, "merging by frequency instead of rank", "BPE applies the merge learned earliest "
         "among the pairs present, however often another pair occurs.",
         "pick the pair whose merge has the lowest rank"),
    Part("choose", lambda i, m: (lambda c: max(c, key=c.get) if c else None)(Counter(_mergeable(i, m))),
         "merging by frequency instead of rank", "BPE applies the merge learned earliest among the pairs present, "
         "however often another pair occurs.", "pick the pair whose merge has the lowest rank"),  # ties: seen first
    Part("choose", lambda i, m: min(_mergeable(i, m), key=list(m).index, default=None), "merging by the dict's "
         "order (the pair's position in merges), not by rank", "The rank of a merge is its new id (lower = learned "
         "earlier); the position where the dict happens to list the pair is not the rank.",
         "min(..., key=lambda p: merges.get(p, float('inf')))"),
    Part("rounds", 1, "only one merge applied", "Encoding repeats the merge step until no adjacent pair is in the "
         "table: a merged token can form a new pair.", "put the step in a loop that stops when no pair can merge"),
    Part("guard", 3, "stops with two tokens left (length guard off by one)", "Two tokens are still one pair that may "
         "merge; only fewer than two end the loop.", "while len(ids) >= 2"),
    Part("new_id", lambda m, p: m[p] + 1, "the merged token's id is the rank + 1 (off by one)", "The id written for a "
         "merged pair is merges[pair] itself.", "new_id = merges[pair]"),
    Part("new_id", lambda m, p: m.get(p[::-1], m[p]), "the id of the reversed pair written (merges[pair[::-1]])",
         "The id written for (a, b) is merges[(a, b)]; yours looks up (b, a) first, which is another token when "
         "both orders were learned.", "new_id = merges[pair], the pair as it stands"),
    Part("new_id", lambda m, p: 256 + sorted(m.values()).index(m[p]), "the merged token's id counted from 256 (256 + "
         "the rank's position), not merges[pair]", "The merge table already holds each merged token's id: "
         "merges[pair]. Numbering the merges 256, 257, ... in rank order gives other ids whenever the table's ids "
         "are not exactly those.", "new_id = merges[pair]"),
    Part("new_id", lambda m, p: 256 + list(m).index(p), "the merged token's id counted from 256 in the table's "
         "order (256 + the pair's position in merges), not merges[pair]", "The merge table already holds each merged "
         "token's id: merges[pair]. Numbering its pairs 256, 257, ... in the order the dict lists them gives other "
         "ids whenever the table's ids are not exactly those.", "new_id = merges[pair]"),
] + [Part("merge", f, f"the merge step inside encode: {name}", why, f"check your merge with check_merge; {hint}")
     for name, f, why, hint in MERGE_MISTAKES]
ENCODE_VARIANTS = [Variant(*row) for row in ENCODE_MISTAKES] + part_variants(
    lambda **kw: lambda ids, merges: _encode_with(ids, merges, **kw), ENCODE_PARTS)

A, B, C, D = 97, 98, 99, 100
# Table 1: rank order and leftmost position disagree. Table 2: insertion order, numeric order of the pairs and string
# order of the ranks all differ from the rank order, and the ids have one to four digits.
MERGES_1 = {(A, B): 256, (B, C): 257, (C, D): 258, (256, 258): 259, (257, 257): 260}
MERGES_2 = {(300, 7): 2000, (7, 7): 301, (12, 5): 1500, (5, 12): 300, (40, 5): 302, (301, 301): 303, (3, 12): 1200,
            (12, 40): 304}
# Table 3: a merge makes a pair ranked below one that was already present ((256, C) after (A, B), before (C, D)), so
# merging every pair present in one pass differs from one lowest-ranked pair at a time.
MERGES_3 = {(A, B): 256, (256, C): 257, (C, D): 258}
ENCODE_CASES = ([(ids, MERGES_1) for ids in ([A, B], [A, B, C, B, C], [B, C, B, C, A, B], [C, B, C, D, A, B],
                                             [A, B, C, D], [D, D], [], [A])]
                + [(ids, MERGES_2) for ids in ([5, 12, 5, 12, 7], [12, 5, 12], [40, 5, 12, 7, 7, 7], [7, 7, 7, 7],
                                               [5, 12, 7, 40, 5], [9, 9, 12, 5], [3, 12, 40],
                                               [17, 7, 7],  # "17 7 7" holds "7 7" twice: a string merge shows
                                               [3, 12, 5, 40])]  # (12, 40) in the table, but two apart: not a pair
                + [([A, B, C, D], MERGES_3), ([C, D, A, B, C], MERGES_3)])


def check_bpe_encode(fn) -> CheckResult:
    """Check fn(ids, merges) against BPE's rule: repeatedly merge the lowest-ranked adjacent pair."""
    exercise = "BPE encode"
    limited = step_limited(fn)
    for ids, merges in ENCODE_CASES:
        copy = list(ids)
        _, problem = run(exercise, f"your encode({ids}, merges)", limited, copy, dict(merges), hint=CRASH_HINT)
        if problem is None and copy != ids:
            return fail(exercise, "the input list was changed", "encode must leave the caller's list alone.",
                        f"ids = {ids} became {copy}", "work on ids = list(ids)")
    problem = check_cases(exercise, limited, ENCODE_CASES, reference_encode, ENCODE_VARIANTS,
                          lambda ids, m: f"merges (rank = new id) = {m}\nencode({ids})",
                          hint="repeat: find the mergeable adjacent pair with the lowest rank, merge it everywhere",
                          crash_hint=CRASH_HINT, prepare=lambda case: (list(case[0]), dict(case[1])))
    if problem is not None:
        return problem
    return CheckResult(exercise, True, checked=["merges applied by rank", "repeats until no pair is mergeable",
                                                "ranks of several digits"])
