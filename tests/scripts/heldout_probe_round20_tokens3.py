"""The held-out probe, round 20, tokens part 3: merge and BPE encode (minbpe, OpenAI's encoder.py, tiktoken's
rank loop, HF tokenizers' habits, string tricks). Imported at the end of heldout_probe_round20_tokens2.py."""

from __future__ import annotations

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


# ------------------------------------------------------------------------------------------ merge
@mistake(ex.check_merge, r"overlap|skip|twice|both|\[1, 1, 1\]")
def merge_r20_no_skip(ids, pair, new_id):  # every matching position replaced, the pair's second id never skipped
    out = []
    for i, a in enumerate(ids):
        if i + 1 < len(ids) and (a, ids[i + 1]) == pair:
            out.append(new_id)
        elif i > 0 and (ids[i - 1], a) == pair:
            continue
        else:
            out.append(a)
    return out


@mistake(ex.check_merge, r"right|left|direction|revers|scan")
def merge_r20_right_to_left(ids, pair, new_id):  # scans from the end: [1, 1, 1] -> [1, X]
    out, i = [], len(ids) - 1
    while i >= 0:
        if i >= 1 and (ids[i - 1], ids[i]) == pair:
            out.append(new_id)
            i -= 2
        else:
            out.append(ids[i])
            i -= 1
    return out[::-1]


@mistake(ex.check_merge, r"first|only one|once|every|all")
def merge_r20_first_only(ids, pair, new_id):  # str.replace(..., 1) habit: the first occurrence only
    ids = list(ids)
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2:]
    return ids


@mistake(ex.check_merge, r"in.place|mutat|new list|input|copy")
def merge_r20_in_place(ids, pair, new_id):  # tiktoken-ish in-place splice on the caller's list
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            ids[i:i + 2] = [new_id]
        i += 1
    return ids


@mistake(ex.check_merge, r"string|substring|digit|text|join|replace")
def merge_r20_string_replace(ids, pair, new_id):  # ids as text: '1 1' also matches inside '11 1' or '1 12'
    s = " ".join(map(str, ids))
    s = s.replace(f"{pair[0]} {pair[1]}", str(new_id))
    return [int(t) for t in s.split()]


@mistake(ex.check_merge, r"last|final|end|drop|trailing")
def merge_r20_drops_last(ids, pair, new_id):  # loop to len - 1 and the lone last id never appended
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"order|revers|\(b, ?a\)|either|unordered|set")
def merge_r20_unordered_pair(ids, pair, new_id):  # set comparison: (b, a) merged too
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and {ids[i], ids[i + 1]} == set(pair):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"order|either|member|in pair|\(a, ?a\)|\(b, ?b\)|unordered")
def merge_r20_membership(ids, pair, new_id):  # `a in pair and b in pair`: (b, a), (a, a), (b, b) merged too
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] in pair and ids[i + 1] in pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"second|skip|keeps?|both|leftover|i \+= ?1|right half")  # widened: "right half ... kept"
def merge_r20_keeps_second(ids, pair, new_id):  # the first id replaced, the second kept (i += 1)
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
        else:
            out.append(ids[i])
        i += 1
    return out


@mistake(ex.check_merge, r"zip|overlap|last|skip|pairs|right half")  # widened: the same function as keeps_second
def merge_r20_zip_comprehension(ids, pair, new_id):  # one output per adjacent pair: overlaps and the end wrong
    return [new_id if (a, b) == pair else a for a, b in zip(ids, ids[1:])] + ids[-1:]


@mistake(ex.check_merge, r"never|no (merge|occurrence)|tuple|list|unchanged|nothing")
def merge_r20_list_vs_tuple(ids, pair, new_id):  # [a, b] == (a, b) is False: nothing is ever merged
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i:i + 2] == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"overlap|skip|right|left|\[1, 1, 1\]|revers")  # double: right-to-left, no skip
def merge_r20_reverse_no_skip(ids, pair, new_id):
    out, i = [], len(ids) - 1
    while i >= 0:
        if i >= 1 and (ids[i - 1], ids[i]) == pair:
            out.append(new_id)
        elif i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            pass
        else:
            out.append(ids[i])
        i -= 1
    return out[::-1]


@valid(ex.check_merge)
def merge_r20_valid_minbpe(ids, pair, idx):
    newids, i = [], 0
    while i < len(ids):
        if ids[i] == pair[0] and i < len(ids) - 1 and ids[i + 1] == pair[1]:
            newids.append(idx)
            i += 2
        else:
            newids.append(ids[i])
            i += 1
    return newids


@valid(ex.check_merge)
def merge_r20_valid_splice_on_copy(ids, pair, new_id):
    ids, i = list(ids), 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            ids[i:i + 2] = [new_id]
        i += 1
    return ids


@valid(ex.check_merge)
def merge_r20_valid_openai_index(ids, pair, new_id):  # OpenAI's encoder.py inner loop
    first, second = pair
    new_word, i = [], 0
    while i < len(ids):
        try:
            j = ids.index(first, i)
        except ValueError:
            new_word.extend(ids[i:])
            break
        new_word.extend(ids[i:j])
        i = j
        if ids[i] == first and i < len(ids) - 1 and ids[i + 1] == second:
            new_word.append(new_id)
            i += 2
        else:
            new_word.append(ids[i])
            i += 1
    return new_word


@valid(ex.check_merge)
def merge_r20_valid_iterator(ids, pair, new_id):
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


# ------------------------------------------------------------------------------------------ BPE encode
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


@mistake(ex.check_bpe_encode, r"order|insertion|rank|lowest|earliest|dict")
def encode_r20_dict_order(ids, merges):  # applies the merges in the dict's insertion order, not by new id
    ids = list(ids)
    for pair, new_id in merges.items():
        ids = _merge(ids, pair, new_id)
    return ids


@mistake(ex.check_bpe_encode, r"frequen|count|most common|rank|lowest")
def encode_r20_most_frequent(ids, merges):  # the training rule transplanted: merge the most frequent known pair
    ids = list(ids)
    while len(ids) >= 2:
        counts = {}
        for p in zip(ids, ids[1:]):
            if p in merges:
                counts[p] = counts.get(p, 0) + 1
        if not counts:
            break
        pair = max(counts, key=counts.get)
        ids = _merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"highest|max|latest|lowest|rank")
def encode_r20_highest_rank(ids, merges):  # SentencePiece 'highest score' habit: max new id first
    ids = list(ids)
    while len(ids) >= 2:
        known = [p for p in zip(ids, ids[1:]) if p in merges]
        if not known:
            break
        pair = max(known, key=merges.get)
        ids = _merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"stop|early|missing|default|not in merges|get\(|inf|unknown")
def encode_r20_get_default_zero(ids, merges):  # merges.get(p, 0): unknown pairs rank first and end the loop
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, 0))
        if pair not in merges:
            break
        ids = _merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"once|repeat|loop|single|one (merge|pass|step)|until")
def encode_r20_single_merge(ids, merges):  # one merge step, no loop
    ids = list(ids)
    if len(ids) < 2:
        return ids
    pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
    return _merge(ids, pair, merges[pair]) if pair in merges else ids


@mistake(ex.check_bpe_encode, r"left|first|lowest|rank|position|earliest")
def encode_r20_leftmost_known(ids, merges):  # merges the leftmost known pair, whatever its rank
    ids = list(ids)
    while True:
        for i in range(len(ids) - 1):
            p = (ids[i], ids[i + 1])
            if p in merges:
                ids = ids[:i] + [merges[p]] + ids[i + 2:]
                break
        else:
            return ids


@mistake(ex.check_bpe_encode, r"smallest pair|pair.*(value|ids)|lexicographic|rank|lowest new id|tie")
def encode_r20_min_pair_itself(ids, merges):  # the training tie-break transplanted: the smallest pair of ids
    ids = list(ids)
    while len(ids) >= 2:
        known = [p for p in zip(ids, ids[1:]) if p in merges]
        if not known:
            break
        pair = min(known)
        ids = _merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"last pair|two|length|> ?2|stop|final")
def encode_r20_stops_at_two(ids, merges):  # `while len(ids) > 2`: a last pair of two tokens never merged
    ids = list(ids)
    while len(ids) > 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = _merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"empty|short|single|length|one id|min\(\)|raise|ValueError|fewer than two")  # widened
def encode_r20_min_of_empty(ids, merges):  # min() over no pairs: ValueError for 0 or 1 ids
    ids = list(ids)
    while True:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            return ids
        ids = _merge(ids, pair, merges[pair])


@mistake(ex.check_bpe_encode, r"overlap|skip|merge")
def encode_r20_overlap_merge(ids, merges):  # correct ranks, inline merge that does not skip the pair's second id
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        out = []
        for i, a in enumerate(ids):
            if i + 1 < len(ids) and (a, ids[i + 1]) == pair:
                out.append(merges[pair])
            elif i > 0 and (ids[i - 1], a) == pair:
                continue
            else:
                out.append(a)
        ids = out
    return ids


@mistake(ex.check_bpe_encode, r"in.place|mutat|input|copy|caller")
def encode_r20_mutates_input(ids, merges):  # tiktoken-like splicing on the caller's list
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        i = 0
        while i < len(ids) - 1:
            if (ids[i], ids[i + 1]) == pair:
                ids[i:i + 2] = [merges[pair]]
            i += 1
    return ids


@mistake(ex.check_bpe_encode, r"highest|max|latest|lowest|rank|once|repeat")  # double: max rank, one step only
def encode_r20_highest_once(ids, merges):
    known = [p for p in zip(ids, ids[1:]) if p in merges]
    return _merge(list(ids), max(known, key=merges.get), merges[max(known, key=merges.get)]) if known else list(ids)


@valid(ex.check_bpe_encode)
def encode_r20_valid_openai_encoder(ids, merges):  # OpenAI's encoder.py bpe(): bigram = min by rank, inf default
    word = tuple(ids)
    pairs = set(zip(word, word[1:]))
    while pairs:
        bigram = min(pairs, key=lambda pair: merges.get(pair, float("inf")))
        if bigram not in merges:
            break
        word = tuple(_merge(list(word), bigram, merges[bigram]))
        if len(word) == 1:
            break
        pairs = set(zip(word, word[1:]))
    return list(word)


@valid(ex.check_bpe_encode)
def encode_r20_valid_tiktoken_loop(ids, merges):  # one adjacent pair at a time: the leftmost of the lowest rank
    parts = list(ids)
    while True:
        best, best_i = None, None
        for i in range(len(parts) - 1):
            r = merges.get((parts[i], parts[i + 1]))
            if r is not None and (best is None or r < best):
                best, best_i = r, i
        if best is None:
            return parts
        parts[best_i:best_i + 2] = [best]


@valid(ex.check_bpe_encode)
def encode_r20_valid_ranks_list(ids, merges):  # ranks as an inverted dict: new id -> pair, scanned lowest first
    by_rank = {new_id: pair for pair, new_id in merges.items()}
    ids = list(ids)
    while len(ids) >= 2:
        present = set(zip(ids, ids[1:]))
        ranks = [merges[p] for p in present if p in merges]
        if not ranks:
            break
        r = min(ranks)
        ids = _merge(ids, by_rank[r], r)
    return ids


@valid(ex.check_bpe_encode)
def encode_r20_valid_minbpe(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        stats = {}
        for pair in zip(ids, ids[1:]):
            stats[pair] = stats.get(pair, 0) + 1
        pair = min(stats, key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = _merge(ids, pair, merges[pair])
    return ids
