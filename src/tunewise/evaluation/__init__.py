"""Evaluation: answer validity, quality metrics and their bootstrap confidence intervals."""

from __future__ import annotations

from tunewise.evaluation.scoring import per_example, score
from tunewise.evaluation.stats import MetricValue, bootstrap_ci
from tunewise.evaluation.validators import validate
from tunewise.task.config import check_schema

__all__ = ["MetricValue", "bootstrap_ci", "check_schema", "per_example", "score", "validate"]
