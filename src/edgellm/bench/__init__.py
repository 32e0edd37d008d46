"""The benchmarking job: YAML, grid, module loading, paradigm, leaderboard."""
