"""Metric "Transfer Seconds": see docs/metrics.md for its definition."""
from edgellm.metrics.joint_inference import register_metric

register_metric("Transfer Seconds")
