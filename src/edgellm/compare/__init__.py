"""``edgellm compare``: leaderboards of several runs side by side, each difference
with its bootstrap interval and p-value (sources -> matching -> comparison -> table)."""
