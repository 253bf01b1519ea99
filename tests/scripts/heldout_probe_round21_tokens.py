"""The held-out probe, round 21, tokens part. (Written by the round 21 tokens helper.)"""

from __future__ import annotations

from heldout_probe_models import ROUND
import heldout_probe_round21_modern  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 21
