"""The held-out probe, round 20, tokens part. (Written by the round 20 tokens helper; see its docstring once written.)"""

from __future__ import annotations

from heldout_probe_models import ROUND
import heldout_probe_round20_modern  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 20
