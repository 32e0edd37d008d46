"""Metric "Max Node Utilisation": see docs/metrics.md for its definition."""
from edgellm.metrics.catalog import register_metric

register_metric("Max Node Utilisation")
