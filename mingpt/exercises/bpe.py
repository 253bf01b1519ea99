"""
Checking a student's BPE: one merge step, and encoding with a ranked list of merges.

The one idea: BPE encoding is defined by the *order* in which merges were learned, not by what is frequent in
the text being encoded. Merging by frequency gives plausible tokens and silently disagrees with the tokenizer's
training, so the checker carries a tiny merge table on which rank and frequency disagree. The merge step has one
trap of its own: in 'a a a' the pair (a, a) occurs twice but overlapping, and only the first can be merged.
The cases use ids of several digits (a merge done on a string of digits shows), merge tables whose insertion order,
numeric order and string order of ranks all differ from the rank order, and a step limit so that a loop that never
stops is reported instead of hanging the notebook.

    from mingpt.exercises import check_merge, check_bpe_encode
    check_merge(my_merge)          # my_merge(ids: list[int], pair: (int, int), new_id: int) -> new list
    check_bpe_encode(my_encode)    # my_encode(ids: list[int], merges: {(a, b): new_id}) -> list; lower id = earlier
"""

from __future__ import annotations

import sys
from collections import Counter

from mingpt.exercises.checking import CheckResult, Variant, fail, run
from mingpt.exercises.compare import check_cases
from mingpt.tokenizer import merge_pair

__all__ = ["check_merge", "check_bpe_encode", "reference_encode", "MERGE_MISTAKES", "ENCODE_MISTAKES"]

HINT = "walk the list left to right; on a match emit new_id and jump past both elements"
CRASH_HINT = "ids is a plain list of ints and pair a tuple (left, right): print them at the line shown"


class LoopNeverStops(RuntimeError):
    """Raised inside a student's function that ran more steps than any correct version needs."""


def step_limited(fn, limit: int = 20_000):
    """fn, stopped with LoopNeverStops after `limit` traced lines: an endless loop becomes a report, not a hang."""
    def limited(*args):
        count = 0

        def tracer(frame, event, arg):
            nonlocal count
            count += 1
            if count > limit:
                raise LoopNeverStops(f"still running after {limit} steps: the loop has no way to stop")
            return tracer

        previous = sys.gettrace()
        sys.settrace(tracer)
        try:
            return fn(*args)
        finally:
            sys.settrace(previous)
    return limited


def reference_encode(ids: list[int], merges: dict[tuple[int, int], int]) -> list[int]:
    """Repeatedly merge the adjacent pair with the lowest rank (the earliest learned), as mingpt.bpe does."""
    ids = list(ids)
    while len(ids) > 1:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = merge_pair(ids, pair[0], pair[1], merges[pair])
    return ids


# ------------------------------------------------------------------------------------------ merge step
def _scan(ids, pair, new_id, matches=lambda a, b, pair: (a, b) == tuple(pair), step=2, start_every=1, keep_last=True,
          emit=lambda left, new_id: [new_id]):
    """One left-to-right merge with knobs for the classic mistakes."""
    out, i, n = [], 0, len(ids)
    while i < n - (0 if keep_last else 1):
        if i + 1 < n and matches(ids[i], ids[i + 1], pair):
            out.extend(emit(ids[i], new_id))
            i += step
        else:
            out.extend(ids[i : i + start_every])
            i += start_every
    return out


def _merge_twice_overlapping(ids, pair, new_id):
    """Every position that starts the pair emits new_id; a position that ends one is dropped."""
    out = []
    for i in range(len(ids)):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)
        elif not (i > 0 and (ids[i - 1], ids[i]) == tuple(pair)):
            out.append(ids[i])
    return out


def _merge_right_to_left(ids, pair, new_id):
    return _scan(ids[::-1], pair[::-1], new_id)[::-1]


def _merge_in_a_string(ids, pair, new_id):
    text = " ".join(map(str, ids)).replace(f"{pair[0]} {pair[1]}", str(new_id))
    return [int(t) for t in text.split()]


MERGE_MISTAKES = [  # (name, f(ids, pair, new_id), explanation, hint)
    ("overlapping pairs merged twice", _merge_twice_overlapping,
     "After merging a pair at i and i+1, the scan must continue at i+2: the right half is already used.",
     "skip both elements of a merged pair"),
    ("right half of a merged pair kept", lambda ids, pair, n: _scan(ids, pair, n, step=1),
     "After emitting new_id for ids[i], ids[i+1] both, the scan must jump past both; yours looks at ids[i+1] again "
     "and copies it.", "i += 2 after a merge"),
    ("only the first occurrence merged",
     lambda ids, pair, n: next((ids[:i] + [n] + ids[i + 2:] for i in range(len(ids) - 1)
                                if (ids[i], ids[i + 1]) == tuple(pair)), list(ids)),
     "A merge replaces *every* (non-overlapping) occurrence of the pair, left to right.",
     "keep scanning after the first match"),
    ("last element dropped", lambda ids, pair, n: _scan(ids, pair, n, keep_last=False),
     "When the last element is not part of a merged pair it must still be copied to the output.",
     "what happens to ids[-1] when your loop stops at len(ids) - 1?"),
    ("nothing merged", lambda ids, pair, n: list(ids),
     "Your output is the input: no pair was ever recognised. A list never equals a tuple ([a, b] == (a, b) is False "
     "in Python), a common cause.", "compare (ids[i], ids[i + 1]) == pair, a tuple with a tuple"),
    ("only the pair's first element compared",
     lambda ids, pair, n: _scan(ids, pair, n, matches=lambda a, b, p: a == p[0]),
     "A pair matches when *both* elements do: ids[i] == pair[0] and ids[i + 1] == pair[1]; yours merges anything "
     "that starts with pair[0].", "compare the second element too"),
    ("only the pair's second element compared",
     lambda ids, pair, n: _scan(ids, pair, n, matches=lambda a, b, p: b == p[1]),
     "A pair matches when *both* elements do: ids[i] == pair[0] and ids[i + 1] == pair[1]; yours merges anything "
     "that ends with pair[1].", "compare the first element too"),
    ("pair matched in reverse order", lambda ids, pair, n: merge_pair(list(ids), pair[1], pair[0], n),
     "The pair (a, b) means 'a followed by b'; yours merges 'b followed by a'.",
     "ids[i] == pair[0] and ids[i + 1] == pair[1]"),
    ("pair matched in either order",
     lambda ids, pair, n: _scan(ids, pair, n, matches=lambda a, b, p: (a, b) in (tuple(p), tuple(p)[::-1])),
     "A pair is ordered: (a, b) merges 'a then b', never 'b then a'.", "compare the pair as an ordered tuple"),
    ("scanned right to left", _merge_right_to_left,
     "Overlaps are resolved from the left: in 'a a a' the first two merge.", "walk from i = 0 upwards"),
    ("merged in a string of the ids", _merge_in_a_string,
     "Joining ids into text and replacing 'a b' also matches inside longer numbers ('15 6' contains '5 6'): ids "
     "with several digits break it.", "work on the list of ints, pair by pair"),
    ("only pairs at even positions checked", lambda ids, pair, n: _scan(ids, pair, n, start_every=2),
     "A pair can start at any position; stepping by 2 only looks at pairs starting at 0, 2, 4, ...",
     "step by 1 when there is no match"),
    ("returned None (a missing return)", lambda ids, pair, n: None,
     "Your function returns nothing: the merged list is built but not returned.", "return the new list"),
    ("the new id written as a string", lambda ids, pair, n: [str(t) if t == n and t not in ids else t
                                                               for t in merge_pair(list(ids), pair[0], pair[1], n)],
     "ids are ints: str(new_id) never equals new_id, so later merges and the decoder miss it.", "append new_id"),
    ("the pair's left element kept beside the new id",
     lambda ids, pair, n: _scan(ids, pair, n, emit=lambda left, n: [left, n]),
     "A merged pair becomes one token, new_id; yours emits its left element too.", "append new_id alone"),
    ("returned a tuple, not a list", lambda ids, pair, n: tuple(merge_pair(list(ids), pair[0], pair[1], n)),
     "The merge returns a new list of ids (encode keeps working on lists).", "return a list"),
]

MERGE_CASES = [([5, 6, 5, 6, 7], (5, 6), 99), ([1, 1, 1], (1, 1), 256), ([1, 1, 1, 1], (1, 1), 256),
               ([2, 3, 4], (3, 4), 999), ([4, 2, 3], (4, 2), 257), ([7], (7, 7), 256), ([], (1, 2), 256),
               ([15, 6, 1, 56, 5, 6], (5, 6), 300), ([12, 3, 1, 23, 1, 23, 4], (1, 23), 1024),
               ([6, 5, 9, 5, 6], (5, 6), 301), ([3, 8, 3, 8, 8, 3], (8, 3), 4096)]


def check_merge(fn) -> CheckResult:
    """Check fn(ids, pair, new_id): every non-overlapping occurrence, left to right, replaced by new_id."""
    exercise = "BPE merge step"
    limited = step_limited(fn)
    for original, pair, new_id in MERGE_CASES:
        ids = list(original)  # a copy: a student who edits it in place must not change the checker's cases
        _, problem = run(exercise, f"your merge({ids}, {pair}, {new_id})", limited, ids, pair, new_id,
                         hint=CRASH_HINT)
        if problem is not None:
            break  # check_cases below reports it (with a diagnosis if a mistake explains it)
        if ids != original:
            return fail(exercise, "the input list was changed", "A merge step must return a new list and leave its "
                        "input alone (the caller may still need it).", f"ids = {original} became {ids}",
                        "build a new list instead of editing ids in place")
    problem = check_cases(exercise, limited, MERGE_CASES, lambda ids, pair, n: merge_pair(ids, pair[0], pair[1], n),
                          [Variant(*row) for row in MERGE_MISTAKES],
                          lambda ids, pair, n: f"merge({ids}, pair={pair}, new_id={n})", hint=HINT,
                          crash_hint=CRASH_HINT, prepare=lambda case: (list(case[0]), *case[1:]))
    if problem is not None:
        return problem
    return CheckResult(exercise, True, checked=["all occurrences merged", "overlaps handled", "ids of several digits",
                                                "input left alone"])


# ------------------------------------------------------------------------------------------ encode
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
        raise LoopNeverStops("the loop has no way to stop")
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


def _encode_with(ids, merges, merge=lambda i, p, n: merge_pair(i, p[0], p[1], n), new_id=lambda m, p: m[p], guard=2):
    """The reference loop with its merge step, the id it writes or its length guard replaced (at most len(ids)
    rounds: a broken merge that never shortens the list cannot explain anything)."""
    ids = list(ids)
    for _ in range(len(ids) + 1):
        pair = _lowest_rank(ids, merges) if len(ids) >= guard else None
        if pair is None:
            return ids
        ids = merge(ids, pair, new_id(merges, pair))
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

A, B, C, D = 97, 98, 99, 100
# Table 1: rank order and leftmost position disagree. Table 2: insertion order, numeric order of the pairs and string
# order of the ranks all differ from the rank order, and the ids have one to four digits.
MERGES_1 = {(A, B): 256, (B, C): 257, (C, D): 258, (256, 258): 259, (257, 257): 260}
MERGES_2 = {(300, 7): 2000, (7, 7): 301, (12, 5): 1500, (5, 12): 300, (40, 5): 302, (301, 301): 303, (3, 12): 1200,
            (12, 40): 304}
ENCODE_CASES = ([(ids, MERGES_1) for ids in ([A, B], [A, B, C, B, C], [B, C, B, C, A, B], [C, B, C, D, A, B],
                                             [A, B, C, D], [D, D], [], [A])]
                + [(ids, MERGES_2) for ids in ([5, 12, 5, 12, 7], [12, 5, 12], [40, 5, 12, 7, 7, 7], [7, 7, 7, 7],
                                               [5, 12, 7, 40, 5], [9, 9, 12, 5], [3, 12, 40])])


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
    problem = check_cases(exercise, limited, ENCODE_CASES, reference_encode, [Variant(*r) for r in ENCODE_MISTAKES],
                          lambda ids, m: f"merges (rank = new id) = {m}\nencode({ids})",
                          hint="repeat: find the mergeable adjacent pair with the lowest rank, merge it everywhere",
                          crash_hint=CRASH_HINT, prepare=lambda case: (list(case[0]), dict(case[1])))
    if problem is not None:
        return problem
    return CheckResult(exercise, True, checked=["merges applied by rank", "repeats until no pair is mergeable",
                                                "ranks of several digits"])
