"""The held-out probe, round 15, modern part: to be written fresh before reading the checkers' tables, and counted
untuned first. See heldout_probe.py."""

from __future__ import annotations

from heldout_probe_models import ROUND
import heldout_probe_round14_post  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 15
