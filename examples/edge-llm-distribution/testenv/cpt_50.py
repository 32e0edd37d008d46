"""Metric "CPT(50%)": see docs/metrics.md (routing curves: NaN unless the router scores
every query and the results hold both models' outcomes)."""
from edgellm.metrics.catalog import register_metric

register_metric("CPT(50%)")
