"""
The KV cache checker's mistakes confined to part of the cache (kvcache.py runs them after its table): one layer, one
head, or a few positions.

The one idea: a table row is named only when it explains *every* call to update, so a slip in one layer (only layer 0
cached, the last layer never appending) explains no call of the other layers, and would go unnamed, or worse, be
named by a row that fits each call on its own for a different reason (every call's keys are "the newest positions"
when one layer keeps all and another only the new one; a sliding window keeps one fixed number). So: a row is named
for the layers it explains when every other layer is right ("..., in layer 1 only"); and when no row explains the
wrong layers, the checker still says where the mistake is, as facts that hold on every call: which layers, which
heads, or which positions are missing from what update returns (returned once, then lost from the store).
"""

from __future__ import annotations

import torch

from mingpt.exercises.checking import CheckResult, fail
from mingpt.exercises.kvcache_mistakes import _cat, close

__all__ = ["explains", "confined_problem", "WINDOW"]

WINDOW = "only the most recent positions kept (a sliding window)"


def explains(name, holds, calls) -> bool:
    """Whether the table row (name, holds) explains every (returned, snapshot) call. A sliding window must keep one
    fixed number W of positions: min(len, W) on every call (a per-call fit could mix a whole store and a new one)."""
    if not all(_holds(holds, returned, h) for returned, h in calls):
        return False
    if name == WINDOW:
        kept = [(returned[0].shape[2], len(h)) for returned, h in calls]
        cut = {n for n, total in kept if n < total}
        return len(cut) == 1 and all(n == min(total, next(iter(cut))) for n, total in kept)
    return True


def _holds(predicate, returned, snapshot) -> bool:
    try:
        return bool(predicate(returned[0], returned[1], snapshot))
    except Exception:
        return False


def _right(returned, h) -> bool:
    return close(returned[0], _cat(h.k)) and close(returned[1], _cat(h.v))


def confined_problem(exercise, seen, mistakes, example) -> CheckResult | None:
    """A failed result for a mistake confined to some layers, heads or positions (see the module's docstring); None
    when the wrong calls are not confined in any of these ways."""
    layers = sorted({h.layer for _, h in seen})
    wrong = [n for n in layers if not all(_right(r, h) for r, h in seen if h.layer == n)]
    fine = [n for n in layers if n not in wrong]
    where = f"in layer {_listed(wrong)} only (layer {_listed(fine)} right)"
    if wrong and fine:
        calls = [(r, h) for r, h in seen if h.layer in wrong]
        for name, holds, explanation, hint in mistakes:
            if explains(name, holds, calls):
                return fail(exercise, f"{name}, {where}", f"Layer {_listed(fine)} is right; in layer "
                            f"{_listed(wrong)}: {explanation} (Something in your update treats the layers "
                            "differently: a test on the layer index, a store shared or made for one layer only?)",
                            example, f"{hint}, for every layer alike")
    missing = _missing_positions(seen)
    if missing:
        return fail(exercise, f"position{'s' * (len(missing) > 1)} {_listed(missing)} missing from what later "
                    "calls return (not kept in the store)", "Every call's keys and values are the right ones, in "
                    f"order, except that position {_listed(missing)} is left out once later positions arrive: it "
                    "was returned (or given) but never stored, or overwritten, on the call that brought it.",
                    example, "store every call's k and v before returning them: self.keys[layer] = torch.cat(...)")
    if wrong and fine:
        return fail(exercise, f"keys or values wrong {where}", f"Layer {_listed(fine)} is right on every call; "
                    f"layer {_listed(wrong)} differs in a way no mistake the checker knows explains.", example,
                    "treat every layer alike: one store per layer index, the same code for all")
    heads = _wrong_heads(seen)
    if heads:
        return fail(exercise, f"keys or values wrong in head {_listed(heads)} only (the other heads right)",
                    f"Every head but {_listed(heads)} gets the right keys and values on every call: something in "
                    "update indexes or writes one head apart (a slice over dim 1, an index such as [:, -1]).",
                    example, "store and return k and v whole: (B, nh, T, hs), every head alike")
    return None


def _listed(items) -> str:
    return ", ".join(str(i) for i in items)


def _missing_positions(seen) -> list[int]:
    """The positions (along time) that, on every wrong call, are all that is missing from the right keys and values
    (returned K = the right ones with those positions removed), when the wrong calls are all explained so."""
    union, any_wrong = set(), False
    for (K, V), h in seen:
        if _right((K, V), h):
            continue
        any_wrong = True
        full_k, full_v = _cat(h.k), _cat(h.v)
        if not (K.dim() == 4 and K.shape == V.shape and K.shape[:2] + K.shape[3:] == full_k.shape[:2]
                + full_k.shape[3:] and K.shape[2] < full_k.shape[2]):
            return []
        kept, j = [], 0
        for t in range(full_k.shape[2]):  # greedy alignment: the returned positions, in order, among the right ones
            if j < K.shape[2] and close(K[:, :, j], full_k[:, :, t]) and close(V[:, :, j], full_v[:, :, t]):
                kept.append(t)
                j += 1
        if j != K.shape[2]:
            return []
        union |= set(range(full_k.shape[2])) - set(kept)
    if not any_wrong or len(union) > 2:  # a few positions lost, not a window or a forgotten history
        return []
    return sorted(union)


def _wrong_heads(seen) -> list[int]:
    """The heads (dim 1) that differ on some call, when every call has the right shape and the others are right."""
    bad = set()
    for (K, V), h in seen:
        full_k, full_v = _cat(h.k), _cat(h.v)
        if not (isinstance(K, torch.Tensor) and K.shape == full_k.shape and V.shape == full_v.shape):
            return []
        bad |= {n for n in range(K.shape[1]) if not (close(K[:, n], full_k[:, n]) and close(V[:, n], full_v[:, n]))}
    nh = seen[0][0][0].shape[1] if seen else 0
    return sorted(bad) if 0 < len(bad) < nh else []
