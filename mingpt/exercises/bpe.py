"""
Checking a student's BPE: one merge step here, and encoding with a ranked list of merges (encode.py).

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

from mingpt.exercises.checking import CheckResult, Variant, fail, run
from mingpt.exercises.compare import check_cases
from mingpt.exercises.compose import knob, pairs
from mingpt.tokenizer import merge_pair

__all__ = ["check_merge", "reference_encode", "MERGE_MISTAKES"]

HINT = "walk the list left to right; on a match emit new_id and jump past both elements"
CRASH_HINT = "ids is a plain list of ints and pair a tuple (left, right): print them at the line shown"


class LoopNeverStops(RuntimeError):
    """Raised inside a student's function that ran more steps than any correct version needs."""

    # what the exception itself means, for checking.crashed: (the mistake's name, why, the fix)
    diagnosis = ("the loop never stops", "Your function ran far more steps than any correct version needs on this "
                 "input, so the checker stopped it: some pass of the loop neither moves on nor ends it.",
                 "every pass of the loop must move on (i += 1 after a copied id, i += 2 after a merge) or end it "
                 "(break when no pair is left to merge)")


STEP_LIMIT = 20_000  # traced lines: far more than any correct merge or encode of the checkers' cases needs


def never_stops(limit: int = STEP_LIMIT) -> LoopNeverStops:
    """The report of a loop stopped after `limit` steps (a rebuilt endless loop raises the same one)."""
    return LoopNeverStops(f"still running after {limit} steps: the loop has no way to stop")


def step_limited(fn, limit: int = STEP_LIMIT):
    """fn, stopped with LoopNeverStops after `limit` traced lines: an endless loop becomes a report, not a hang."""
    def limited(*args):
        count = 0

        def tracer(frame, event, arg):
            nonlocal count
            count += 1
            if count > limit:
                raise never_stops(limit)
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
          emit=lambda left, new_id: [new_id], reach=1, copy=None):
    """One left-to-right merge with knobs for the classic mistakes (reach=2: a pair must end before the last id;
    copy: how many ids an unmatched step copies, start_every by default, 1 with start_every=2 skips every other)."""
    out, i, n = [], 0, len(ids)
    while i < n - (0 if keep_last else 1):
        if i + reach < n and matches(ids[i], ids[i + 1], pair):
            out.extend(emit(ids[i], new_id))
            i += step
        else:
            out.extend(ids[i : i + (start_every if copy is None else copy)])
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


def _merge_last_appended(ids, pair, new_id):
    """A for loop over zip(ids, ids[1:]) with a skip flag, then ids[-1] appended after the loop whether or not the
    last pair was merged: the right merge, with the last id repeated when the list ends with the pair."""
    out = _scan(ids, pair, new_id)
    ends_merged = len(ids) >= 2 and (ids[-2], ids[-1]) == tuple(pair) and out[-1:] == [new_id] and \
        _scan(ids[:-2], pair, new_id) + [new_id] == out
    return out + [ids[-1]] if ends_merged else out


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
    ("a pair at the very end never merged (the match test stops one position early)",
     lambda ids, pair, n: _scan(ids, pair, n, reach=2),
     "A pair can end at the last element: the match test must allow i + 1 == len(ids) - 1. Yours (i + 2 < len(ids), "
     "or range(len(ids) - 2)) never looks at the last pair.", "test i + 1 < len(ids) (or i < len(ids) - 1)"),
    ("returned a tuple, not a list", lambda ids, pair, n: tuple(merge_pair(list(ids), pair[0], pair[1], n)),
     "The merge returns a new list of ids (encode keeps working on lists).", "return a list"),
    ("the last id appended again after a merged final pair", _merge_last_appended,
     "When the list ends with the pair, its last id is already inside new_id; yours appends ids[-1] after the loop "
     "anyway (right only when the last pair was not merged).", "append ids[-1] only when it was not merged (or "
     "walk with an index and i += 2 after a merge)"),
    ("both elements compared with pair[0]",
     lambda ids, pair, n: _scan(ids, pair, n, matches=lambda a, b, p: a == p[0] and b == p[0]),
     "An index slip: ids[i + 1] must equal pair[1], the pair's *second* element; yours compares it with pair[0], "
     "so only pairs like (a, a) merge.", "ids[i] == pair[0] and ids[i + 1] == pair[1]"),
    ("both elements compared with pair[1]",
     lambda ids, pair, n: _scan(ids, pair, n, matches=lambda a, b, p: a == p[1] and b == p[1]),
     "An index slip: ids[i] must equal pair[0], the pair's *first* element; yours compares it with pair[1].",
     "ids[i] == pair[0] and ids[i + 1] == pair[1]"),
    ("merged as bytes (bytes(ids).replace): ids of 256 or more do not fit in a byte",
     lambda ids, pair, n: list(bytes(ids).replace(bytes(pair), bytes([n]))),
     "bytes(...) holds values 0 to 255 only: fine for the raw bytes, but every merged token's id is 256 or more, so "
     "bytes([new_id]) (or bytes(ids) once ids holds a merged token) raises ValueError.",
     "work on the list of ints, pair by pair"),
    ("fails on an empty list (the output started from ids[0])",
     lambda ids, pair, n: merge_pair(list(ids), pair[0], pair[1], n) if ids else [][0],
     "Right on every list with an element, but an empty ids (an empty chunk of text) has no ids[0]: start from an "
     "empty output (or return [] early).", "out = [] before the loop, or `if not ids: return []`"),
]

# The table's scan mistakes as knobs of _scan, so that two of them at once (the right half kept *and* the last element
# dropped) are named together (compose.pairs); tried only after every single mistake.
def _merge_reads_past_end(ids, pair, new_id, whole_pair=False):
    """The reference scan without its bound: at the last position, ids[i + 1] is read past the end (IndexError)
    when ids[i] is the pair's left half (whole_pair: at every last position, the pair compared as a tuple)."""
    out, i = [], 0
    while i < len(ids):
        if ((ids[i], ids[i + 1]) == tuple(pair)) if whole_pair else (ids[i] == pair[0] and ids[i + 1] == pair[1]):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


PAST_END = ("The last element has no right neighbour: the scan reads ids[i + 1] past the end of the list (an "
            "IndexError whenever the list ends with the pair's left half).", "test i < len(ids) - 1 before ids[i + 1]")
MERGE_MISTAKES += [("reads ids[i + 1] past the end of the list", _merge_reads_past_end, *PAST_END),
                   ("reads ids[i + 1] past the end of the list",
                    lambda ids, pair, n: _merge_reads_past_end(ids, pair, n, whole_pair=True), *PAST_END)]


def _merge_every_start(ids, pair, new_id):
    """A vectorised merge (NumPy, or a mask over zip(ids, ids[1:])): every position that starts the pair becomes
    new_id and the position after each start is deleted, so in [1, 1, 1] both overlapping starts merge into one."""
    starts = {i for i in range(len(ids) - 1) if (ids[i], ids[i + 1]) == tuple(pair)}
    return [new_id if i in starts else t for i, t in enumerate(ids) if i - 1 not in starts]


MERGE_MISTAKES += [
    ("the pair itself written, not new_id", lambda ids, pair, n: _scan(ids, pair, n, emit=lambda left, _: [pair]),
     "A merged pair becomes one token whose id is new_id; yours puts the pair (a tuple) in the list, so the output "
     "is no longer a list of ints.", "out.append(new_id)"),
    ("overlapping pairs merged (every start of the pair replaced, the id after each start deleted)",
     _merge_every_start, "A vectorised match marks every position where the pair starts, overlapping ones too: in "
     "[1, 1, 1] both starts are marked, and deleting the id after each start swallows the third. Overlaps need the "
     "left-to-right scan: after a merge at i, the next match can start at i + 2 only.",
     "walk the list left to right, i += 2 after a merge"),
    ("a list of one id returned empty (no pair to merge, but its id stays)",
     lambda ids, pair, n: [] if len(ids) < 2 else merge_pair(list(ids), pair[0], pair[1], n),
     "A list shorter than two holds no pair, so nothing merges, but its one id is still part of the text: return it "
     "unchanged, not [].", "if len(ids) < 2: return list(ids)"),
    *[(f"merged into new_id {d:+d}, not new_id", lambda ids, pair, n, d=d: merge_pair(list(ids), pair[0], pair[1],
                                                                                    n + d),
       f"Every pair is found and merged in the right places, but the id written is new_id {d:+d}: the caller chose "
       "new_id (the next free id), so the merge writes exactly it.", "out.append(new_id)") for d in (1, -1)],
    ("the id after an unmatched one skipped (i += 2 on every step, not only after a merge)",
     lambda ids, pair, n: _scan(ids, pair, n, start_every=2, copy=1),
     "After copying an id that starts no pair, the scan must move on by 1; yours moves by 2 on every step, so the "
     "id after each copied one is lost and pairs starting there are never seen.",
     "i += 2 after a merge, i += 1 after a copied id"),
]


def _merge_in_a_padded_string(ids, pair, new_id):
    """The string merge made safe from digit overlaps by a delimiter at both ends of each id (" 5 6 " matched as a
    whole): str.replace then consumes the delimiter after a match, so the next pair cannot start right there."""
    text = " " + " ".join(map(str, ids)) + " "
    return [int(t) for t in text.replace(f" {pair[0]} {pair[1]} ", f" {new_id} ").split()]


MERGE_MISTAKES += [
    ("merged in a delimited string: of two back-to-back pairs the second is missed", _merge_in_a_padded_string,
     "Padding each id with a delimiter (',5,6,') keeps '15,6' from matching, but str.replace consumes the delimiter "
     "after a match: in ',5,6,5,6,' the second pair has lost its leading ',' and is not merged.",
     "work on the list of ints, pair by pair"),
]

def _last_only(ids, pair, new_id):
    """Only the last occurrence merged (a search from the right, then one replacement)."""
    at = [i for i in range(len(ids) - 1) if (ids[i], ids[i + 1]) == tuple(pair)]
    return list(ids) if not at else list(ids[:at[-1]]) + [new_id] + list(ids[at[-1] + 2:])


MERGE_MISTAKES += [  # cousins of the rows above: the other end, another step, the other half of the pair
    ("only the last occurrence merged", _last_only, "A merge replaces *every* (non-overlapping) occurrence of the "
     "pair, left to right; yours replaces the last one alone (a search from the right, or a loop that keeps only "
     "its last match).", "replace every occurrence as the scan finds it"),
    ("the id after a merged pair skipped (i += 3 after a merge)", lambda ids, pair, n: _scan(ids, pair, n, step=3),
     "After a merge at i and i + 1 the scan goes on at i + 2; yours jumps to i + 3, so the id right after every "
     "merged pair is lost (and a pair starting there is never merged).", "i += 2 after a merge"),
    ("the pair's right element kept beside the new id",
     lambda ids, pair, n: _scan(ids, pair, n, emit=lambda left, n: [n, pair[1]]),
     "A merged pair becomes one token, new_id; yours emits new_id and then the pair's right element too (only the "
     "left one was replaced).", "append new_id alone, and skip both elements"),
]
MERGE_PAIRS = pairs(lambda ids, pair, n, **kw: _scan(ids, pair, n, **kw), [
    knob(lambda ids, pair, n, **kw: _scan(ids, pair, n, **kw), row[0], kw, row[2], row[3])
    for row, kw in zip([MERGE_MISTAKES[i] for i in (1, 3, 5, 6, 8, 11, 14, 7, 15)],
                       [dict(step=1), dict(keep_last=False), dict(matches=lambda a, b, p: a == p[0]),
                        dict(matches=lambda a, b, p: b == p[1]),
                        dict(matches=lambda a, b, p: (a, b) in (tuple(p), tuple(p)[::-1])), dict(start_every=2),
                        dict(emit=lambda left, n: [left, n]), dict(matches=lambda a, b, p: (b, a) == tuple(p)),
                        dict(reach=2)])] + [  # the id written off by one, with any scan slip above
    knob(lambda ids, pair, n, **kw: _scan(ids, pair, n, **kw), f"merged into new_id {d:+d}, not new_id",
         dict(emit=lambda left, n, d=d: [n + d]), f"Every pair is found, but the id written is new_id {d:+d}.",
         "out.append(new_id)") for d in (1, -1)] + [
    knob(lambda ids, pair, n, **kw: _scan(ids, pair, n, **kw), MERGE_MISTAKES[-2][0], dict(step=3),
         MERGE_MISTAKES[-2][2], MERGE_MISTAKES[-2][3])])

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
                          [Variant(*row) for row in MERGE_MISTAKES] + MERGE_PAIRS,
                          lambda ids, pair, n: f"merge({ids}, pair={pair}, new_id={n})", hint=HINT,
                          crash_hint=CRASH_HINT, prepare=lambda case: (list(case[0]), *case[1:]))
    if problem is not None:
        return problem
    return CheckResult(exercise, True, checked=["all occurrences merged", "overlaps handled", "ids of several digits",
                                                "input left alone"])


# ------------------------------------------------------------------------------------------ encode
