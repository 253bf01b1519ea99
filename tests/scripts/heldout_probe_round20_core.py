"""The held-out probe, round 20, core part. (Written by the round 20 core helper; see its docstring once written.)"""

from __future__ import annotations

from heldout_probe_models import ROUND
import heldout_probe_round19_post  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 20
