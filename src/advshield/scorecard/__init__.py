"""The scorecard: every defense the zoo and the registries offer for a dataset, side by side, on the same test
images under the same attack ensemble (``advshield scorecard``)."""

from advshield.scorecard.rows import RowSpec, catalog, defaults, user_row
from advshield.scorecard.config import ScorecardConfig
from advshield.scorecard.run import run_scorecard

__all__ = ["RowSpec", "ScorecardConfig", "catalog", "defaults", "run_scorecard", "user_row"]
