"""The held-out probe, round 20, modern part. (Written by the round 20 modern helper; see its docstring once written.)"""

from __future__ import annotations

from heldout_probe_models import ROUND
import heldout_probe_round20_core  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 20
