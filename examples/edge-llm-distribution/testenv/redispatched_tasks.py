"""Metric "Redispatched Tasks": see docs/metrics.md (the live fleet)."""
from edgellm.metrics.catalog import register_metric

register_metric("Redispatched Tasks")
