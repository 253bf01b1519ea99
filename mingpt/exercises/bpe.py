"""
Checking a student's BPE: one merge step, and encoding with a ranked list of merges.

The one idea: BPE encoding is defined by the *order* in which merges were learned, not by what is frequent in
the text being encoded. Merging by frequency gives plausible tokens and silently disagrees with the tokenizer's
training, so the checker carries a tiny merge table on which rank and frequency disagree. The merge step has one
trap of its own: in 'a a a' the pair (a, a) occurs twice but overlapping, and only the first can be merged.

    from mingpt.exercises import check_merge, check_bpe_encode
    check_merge(my_merge)          # my_merge(ids: list[int], pair: (int, int), new_id: int) -> new list
    check_bpe_encode(my_encode)    # my_encode(ids: list[int], merges: {(a, b): new_id}) -> list; lower id = earlier
"""

from __future__ import annotations

from collections import Counter

from mingpt.exercises.checking import CheckResult, Variant, fail, run
from mingpt.tokenizer import merge_pair

__all__ = ["check_merge", "check_bpe_encode", "reference_encode"]


def reference_encode(ids: list[int], merges: dict[tuple[int, int], int]) -> list[int]:
    """Repeatedly merge the adjacent pair with the lowest rank (the earliest learned), as mingpt.bpe does."""
    ids = list(ids)
    while len(ids) > 1:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = merge_pair(ids, pair[0], pair[1], merges[pair])
    return ids


def _merge_overlapping(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 1  # the mistake: the right half of the pair is looked at again
        else:
            out.append(ids[i])
            i += 1
    return out


def _merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2 :]
    return list(ids)


def _merge_drop_last(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


MERGE_VARIANTS = [
    Variant("overlapping pairs merged twice", _merge_overlapping,
            "After merging a pair at i and i+1, the scan must continue at i+2: the right half is already used.",
            "skip both elements of a merged pair"),
    Variant("only the first occurrence merged", _merge_first_only,
            "A merge replaces *every* (non-overlapping) occurrence of the pair, left to right.",
            "keep scanning after the first match"),
    Variant("last element dropped", _merge_drop_last,
            "When the last element is not part of a merged pair it must still be copied to the output.",
            "what happens to ids[-1] when your loop stops at len(ids) - 1?"),
]


def check_merge(fn) -> CheckResult:
    """Check fn(ids, pair, new_id): every non-overlapping occurrence, left to right, replaced by new_id."""
    exercise = "BPE merge step"
    cases = [([5, 6, 5, 6, 7], (5, 6), 99), ([1, 1, 1], (1, 1), 99), ([1, 1, 1, 1], (1, 1), 99),
             ([2, 3, 4], (3, 4), 99), ([4, 2, 3], (4, 2), 99), ([7], (7, 7), 99), ([], (1, 2), 99)]
    outputs = []
    for ids, pair, new_id in cases:
        original = list(ids)
        out, problem = run(exercise, f"your merge({ids}, {pair}, {new_id})", fn, ids, pair, new_id)
        if problem is not None:
            return problem
        if ids != original:
            return fail(exercise, "the input list was changed", "A merge step must return a new list and leave its "
                        "input alone (the caller may still need it).", f"ids = {original} became {ids}",
                        "build a new list instead of editing ids in place")
        outputs.append(out)
    wrong = [(case, out) for case, out in zip(cases, outputs) if out != merge_pair(case[0], *case[1], case[2])]
    if wrong:
        (ids, pair, new_id), out = wrong[0]
        expected = merge_pair(ids, pair[0], pair[1], new_id)
        example = f"merge({ids}, pair={pair}, new_id={new_id})\nyours    {out}\nexpected {expected}"
        overlap = [out for (case_ids, _, _), out in zip(cases, outputs) if case_ids == [1, 1, 1]][0]
        if isinstance(overlap, list) and overlap.count(99) == 2:  # a property, whatever the loop looks like
            example = f"merge([1, 1, 1], pair=(1, 1), new_id=99)\nyours    {overlap}\nexpected [99, 1]"
            return fail(exercise, MERGE_VARIANTS[0].property, MERGE_VARIANTS[0].explanation, example,
                        MERGE_VARIANTS[0].hint)
        for variant in MERGE_VARIANTS:  # the mistake that explains *every* output
            if all(variant.compute(*case) == got for case, got in zip(cases, outputs)):
                return fail(exercise, variant.property, variant.explanation, example, variant.hint)
        return fail(exercise, "wrong merge", "Expected every non-overlapping occurrence of the pair, left to right, "
                    "replaced by new_id.", example,
                    hint="walk the list left to right; on a match emit new_id and jump past both elements")
    return CheckResult(exercise, True, checked=["all occurrences merged", "overlaps handled", "input left alone"])


def _encode_by_frequency(ids, merges):
    ids = list(ids)
    while len(ids) > 1:
        counts = Counter(p for p in zip(ids, ids[1:]) if p in merges)
        if not counts:
            break
        pair = max(counts, key=lambda p: (counts[p], -merges[p]))
        ids = merge_pair(ids, pair[0], pair[1], merges[pair])
    return ids


def _encode_highest_rank(ids, merges):
    ids = list(ids)
    while len(ids) > 1:
        candidates = [p for p in zip(ids, ids[1:]) if p in merges]
        if not candidates:
            break
        pair = max(candidates, key=merges.get)
        ids = merge_pair(ids, pair[0], pair[1], merges[pair])
    return ids


def _encode_left_to_right(ids, merges):
    ids = list(ids)
    while True:
        for i, pair in enumerate(zip(ids, ids[1:])):
            if pair in merges:
                ids = merge_pair(ids, pair[0], pair[1], merges[pair])
                break
        else:
            return ids


ENCODE_VARIANTS = [
    Variant("merging by frequency instead of rank", _encode_by_frequency,
            "BPE applies the merge that was learned *earliest* (lowest rank, here the smallest new id) among the "
            "pairs present, however often another pair occurs in this text.",
            "pick the pair whose merge has the lowest rank"),
    Variant("merging the latest-learned pair first", _encode_highest_rank,
            "The earliest-learned merge (the lowest rank) goes first; yours takes the highest.", "min, not max"),
    Variant("merging the leftmost pair instead of the lowest rank", _encode_left_to_right,
            "The next merge is not the first mergeable pair from the left but the one learned earliest.",
            "look at every adjacent pair, then choose by rank"),
]


def check_bpe_encode(fn) -> CheckResult:
    """Check fn(ids, merges) against BPE's rule: repeatedly merge the lowest-ranked adjacent pair."""
    exercise = "BPE encode"
    a, b, c, d = 97, 98, 99, 100  # 'a' 'b' 'c' 'd'
    merges = {(a, b): 256, (b, c): 257, (c, d): 258, (256, 258): 259, (257, 257): 260}
    cases = [[a, b], [a, b, c, b, c], [b, c, b, c, a, b], [c, b, c, d, a, b], [a, b, c, d], [d, d], [], [a]]
    outputs = []
    for ids in cases:
        out, problem = run(exercise, f"your encode({ids}, merges)", fn, list(ids), dict(merges))
        if problem is not None:
            return problem
        outputs.append(out)
    wrong = [(ids, out) for ids, out in zip(cases, outputs) if out != reference_encode(ids, merges)]
    if wrong:
        ids, out = wrong[0]
        example = (f"merges (rank = new id): {merges}\nencode({ids})\nyours    {out}\n"
                   f"expected {reference_encode(ids, merges)}")
        for variant in ENCODE_VARIANTS:  # the mistake that explains *every* output
            if all(variant.compute(case, merges) == got for case, got in zip(cases, outputs)):
                return fail(exercise, variant.property, variant.explanation, example, variant.hint)
        return fail(exercise, "wrong tokens", "Expected the lowest-ranked adjacent pair merged until none is left.",
                    example, hint="repeat: find the mergeable adjacent pair with the lowest rank, merge it everywhere")
    return CheckResult(exercise, True, checked=["merges applied by rank", "repeats until no pair is mergeable"])
