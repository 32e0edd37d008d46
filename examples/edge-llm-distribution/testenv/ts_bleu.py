"""Metric "TS BLEU": see docs/metrics.md for its definition."""
from edgellm.metrics.catalog import register_metric

register_metric("TS BLEU")
