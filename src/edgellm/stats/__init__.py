"""Statistics over per-item values: bootstrap intervals, paired tests (numpy only;
no edgellm imports, at the level of ``edgellm.metrics``)."""
