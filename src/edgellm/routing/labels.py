"""The training labels of the learned routers: which train items are hard (should go
to the cloud), from the two tiers' recorded scores. Fitting on an outcome matrix
(edgellm.routing.fitting) and the routing-curve reports derive them here."""

import numpy as np

LABELS = ("edge_wrong", "cloud_right_edge_wrong", "expected_gain")
# An edge answer scoring below this is wrong. Correctness is 0 or 1, so this only
# decides for graded scores (F1, ROUGE-L...): below half counts as wrong.
PASS_SCORE = 0.5


def training_labels(edge_score, cloud_score, label="edge_wrong"):
    """Per train item, whether it is hard (should go to the cloud), from the two
    tiers' recorded scores (0-1):

    - ``edge_wrong``: the edge's score is below PASS_SCORE (0.5), i.e. wrong;
    - ``cloud_right_edge_wrong``: the cloud scores strictly higher than the edge
      (for correctness: cloud right and edge wrong), as the OracleRouter decides;
    - ``expected_gain``: not one label but two per item, an (items, 2) array: is the
      edge right, is the cloud right (score >= PASS_SCORE). A router trained on them
      predicts each model's chance of being right and scores a query by the cloud's
      minus the edge's: the accuracy expected from sending it to the cloud.
    """
    edge = np.asarray(edge_score, dtype=np.float64)
    cloud = np.asarray(cloud_score, dtype=np.float64)
    if edge.shape != cloud.shape:
        raise ValueError(f"{edge.size} edge scores but {cloud.size} cloud scores")
    if label == "edge_wrong":
        return edge < PASS_SCORE
    if label == "cloud_right_edge_wrong":
        return cloud > edge
    if label == "expected_gain":
        return np.column_stack([edge >= PASS_SCORE, cloud >= PASS_SCORE])
    raise ValueError(f"unknown training label {label!r} (known: {', '.join(LABELS)})")
