"""Round 21, tokens part, of the held-out probe as (checker, name) rows, in the probe's order
(see mistakes_heldout.py)."""

NAMES = [
]
