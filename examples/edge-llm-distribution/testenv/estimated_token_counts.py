"""Metric "Estimated Token Counts": see docs/metrics.md."""
from edgellm.metrics.catalog import register_metric

register_metric("Estimated Token Counts")
