"""The fleet's round log: rounds.csv and the per-round series its plots draw."""

import math
import os

import numpy as np
import pandas as pd
import pytest

from edgellm.fleet import rounds

NAN = float("nan")


def row(rnd, node, tasks, e2e=NAN, p95=NAN, cache="", caching=0, queue=None):
    return {"round": rnd, "node": node, "tasks": tasks,
            "queue_len": tasks if queue is None else queue, "e2e_mean_s": e2e,
            "e2e_p95_s": p95, "ttft_mean_s": e2e / 4, "cache": cache, "caching_round": caching}


@pytest.fixture
def log():
    """Two rounds of nodes a and b (b idle in round 0) and the cloud."""
    return [row(0, "a", 2, 1.0, 1.5, "m1;m2", caching=1), row(0, "b", 0, cache="m1", caching=1),
            row(0, "cloud", 1, 3.0, 3.0, caching=1),
            row(1, "a", 1, 2.0, 2.0, "m1"), row(1, "b", 3, 1.0, 1.2, "m2;m3", queue=2),
            row(1, "cloud", 0)]


def test_round_log_round_trips_through_the_csv(tmp_path, log):
    path = rounds.write_round_log(log, tmp_path)
    assert path == os.path.join(tmp_path, "rounds.csv")
    assert os.listdir(tmp_path) == ["rounds.csv"]  # no temporary file left behind
    raw = pd.read_csv(path)
    assert list(raw.columns) == list(rounds.COLUMNS)
    back = rounds.round_frame(path)
    assert back["cache"].tolist() == ["m1;m2", "m1", "", "m1", "m2;m3", ""]
    assert back["tasks"].tolist() == [2, 0, 1, 1, 3, 0]
    assert back["queue_len"].tolist() == [2, 0, 1, 1, 2, 0]
    assert math.isnan(back.loc[1, "e2e_mean_s"])
    assert back.loc[0, "ttft_mean_s"] == 0.25


def test_columns_in_schema_order_extra_ones_kept_missing_ones_refused(tmp_path, log):
    shuffled = [dict(reversed(list(r.items())), model_mix="x") for r in log]
    frame = rounds.round_frame(shuffled)
    assert list(frame.columns) == list(rounds.COLUMNS) + ["model_mix"]
    with pytest.raises(ValueError, match="queue_len"):
        rounds.write_round_log([{k: v for k, v in r.items() if k != "queue_len"} for r in log],
                               tmp_path)


def test_seconds_rounded_to_a_tenth_of_a_millisecond(tmp_path):
    path = rounds.write_round_log([row(0, "a", 1, 1.234567, 2.0000001)], tmp_path)
    back = rounds.round_frame(path)
    assert (back.loc[0, "e2e_mean_s"], back.loc[0, "e2e_p95_s"]) == (1.2346, 2.0)


def test_latency_per_round_weights_nodes_by_their_tasks(log):
    latency = rounds.latency_per_round(rounds.round_frame(log))
    assert latency.index.tolist() == [0, 1]
    assert latency["mean"].tolist() == pytest.approx([(2 * 1.0 + 1 * 3.0) / 3,
                                                      (1 * 2.0 + 3 * 1.0) / 4])
    assert latency["worst_p95"].tolist() == [3.0, 2.0]


def test_task_bands_per_node_with_the_cloud_on_top(log):
    bands = rounds.task_bands(rounds.round_frame(log))
    assert list(bands.columns) == ["a", "b", "cloud"]
    assert bands.to_dict("list") == {"a": [2, 1], "b": [0, 3], "cloud": [1, 0]}


def test_task_bands_sum_the_quieter_nodes_when_there_are_many():
    # node i serves i tasks a round: the nine busiest (6..14) keep their own band
    log = [row(r, f"n{i:02d}", i) for r in range(3) for i in range(15)]
    log += [row(r, "cloud", 5) for r in range(3)]
    bands = rounds.task_bands(rounds.round_frame(log), max_bands=10)
    assert list(bands.columns) == [f"n{i:02d}" for i in range(6, 15)] + ["6 other nodes",
                                                                         "cloud"]
    assert bands["6 other nodes"].tolist() == [15, 15, 15]  # 0 + 1 + ... + 5
    assert bands.sum(axis=1).tolist() == [sum(range(15)) + 5] * 3  # nothing lost


def test_cache_counts_nodes_holding_each_model(log):
    counts = rounds.cache_counts(rounds.round_frame(log))
    assert counts.index.tolist() == ["m1", "m2", "m3"]
    assert counts.columns.tolist() == [0, 1]
    assert counts.to_numpy().tolist() == [[2, 1], [1, 1], [0, 1]]


def test_cache_counts_show_rounds_missing_from_the_log_as_empty():
    counts = rounds.cache_counts(rounds.round_frame([row(0, "a", 1, cache="m1"),
                                                     row(2, "a", 1, cache="m1;m2")]))
    assert counts.columns.tolist() == [0, 1, 2]
    assert counts.to_numpy().tolist() == [[1, 0, 1], [0, 0, 1]]


def is_png(path):
    with open(path, "rb") as handle:
        return handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plots_from_rows_and_from_the_csv(tmp_path, log):
    paths = rounds.plot_rounds(log, tmp_path / "rows")
    assert [os.path.basename(p) for p in paths] == list(rounds.PLOTS)
    assert all(is_png(p) for p in paths)
    csv = rounds.write_round_log(log, tmp_path / "csv")
    paths = rounds.plot_rounds(csv, tmp_path / "csv")
    assert sorted(os.listdir(tmp_path / "csv")) == sorted(["rounds.csv", *rounds.PLOTS])
    assert all(is_png(p) for p in paths)


def test_plots_of_an_empty_log_or_an_all_cloud_one(tmp_path):
    assert all(is_png(p) for p in rounds.plot_rounds([], tmp_path / "empty"))
    assert pd.read_csv(rounds.write_round_log([], tmp_path / "empty")).empty
    cloud_only = [row(r, "cloud", 2, 1.0, 1.0) for r in range(3)]
    assert all(is_png(p) for p in rounds.plot_rounds(cloud_only, tmp_path / "cloud"))
    assert rounds.cache_counts(rounds.round_frame(cloud_only)).empty


def test_a_large_fleet_log_aggregates_bands_and_keeps_every_model():
    rng = np.random.default_rng(0)
    models = [f"m{i:02d}" for i in range(20)]
    log = [row(r, f"n{n:03d}", int(rng.integers(0, 4)), 1.0, 1.0,
               ";".join(models[(n + r) % 20:(n + r) % 20 + 2]))
           for r in range(50) for n in range(100)]
    frame = rounds.round_frame(log)
    bands = rounds.task_bands(frame)
    assert len(bands.columns) == rounds.MAX_NODE_BANDS
    assert bands.to_numpy().sum() == frame["tasks"].sum()
    counts = rounds.cache_counts(frame)
    assert counts.shape == (20, 50)
    assert (counts.sum(axis=0) == frame.groupby("round")["cache"].apply(
        lambda c: c.str.split(";").str.len().sum())).all()
