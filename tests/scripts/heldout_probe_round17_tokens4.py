"""The held-out probe, round 17, tokens part 4: BPE's merge(ids, pair, new_id) -> a new list. See
heldout_probe_round17_tokens.py for the angle and the untuned counts."""

from __future__ import annotations

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


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


import heldout_probe_round17_tokens5  # noqa: E402,F401
