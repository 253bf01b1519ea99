"""The held-out probe, round 17, modern part: to be written (see heldout_probe.py)."""

from __future__ import annotations

from heldout_probe_models import ROUND
import heldout_probe_round16_post  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 17
