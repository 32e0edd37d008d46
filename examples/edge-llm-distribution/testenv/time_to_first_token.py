"""Metric "Time to First Token": see docs/metrics.md for its definition."""
from edgellm.metrics.catalog import register_metric

register_metric("Time to First Token")
