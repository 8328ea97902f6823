"""Grid-point names: one rule for the workflow, the stage functions and the CLI."""

import re

import pytest

import math

from workflow_lib.grid import best_point, grid_points, parse_point, point_name, point_regex, select_per_task


def test_names_round_trip_and_match_the_wildcard_constraint():
    points = grid_points({"latent": [10, 25], "beta": [0, 0.5, 1, 2e-5]})
    assert points[:4] == ["latent10_beta0", "latent10_beta0.5", "latent10_beta1", "latent10_beta2e-05"]
    assert len(points) == 8
    rx = re.compile(point_regex("latent", "beta"))
    for p in points:
        assert rx.fullmatch(p), p
        assert point_name(parse_point(p)) == p
    assert parse_point("latent10_beta0.5") == {"latent": 10, "beta": 0.5}
    assert isinstance(parse_point("latent10_beta1")["latent"], int)
    assert grid_points({"latent": [16], "weight": [1.33]}) == ["latent16_weight1.33"]
    assert re.fullmatch(point_regex("latent", "weight"), "latent16_weight1.33")
    assert not re.fullmatch(point_regex("latent", "beta"), "latent16_weight1.33")


@pytest.mark.parametrize("bad", ["latent_beta", "latent10_", "10_beta1", "latent10_beta1.2.3"])
def test_malformed_names_are_refused(bad):
    with pytest.raises(ValueError, match="bad grid point"):
        parse_point(bad)


def test_per_task_selection_takes_each_tasks_minimum_and_skips_non_finite_scores():
    scores = {"latent10_beta0": {"a": 2.0, "b": math.nan, "c": 1.0},
              "latent10_beta1": {"a": 1.0, "b": 5.0, "c": 1.0},
              "latent25_beta0": {"a": 3.0, "b": None, "c": 0.5}}
    picks = select_per_task(scores, {"t1": "a", "t2": "b", "t3": "c"})
    assert {t: p["point"] for t, p in picks.items()} == {"t1": "latent10_beta1", "t2": "latent10_beta1",
                                                         "t3": "latent25_beta0"}
    assert picks["t1"] == {"point": "latent10_beta1", "params": {"latent": 10, "beta": 1.0}, "score": "a",
                           "value": 1.0}
    assert best_point({"p": {"a": 1.0}, "q": {"a": 1.0}}, "a") == "p"  # ties: first in grid order
    with pytest.raises(KeyError):
        best_point(scores, "missing")
    with pytest.raises(ValueError, match="no grid points"):
        best_point({}, "a")


def test_higher_is_better_scores_pick_the_highest_and_nan_is_still_the_worst():
    scores = {"latent10_beta0": {"r": 0.30, "n": math.nan, "l": 2.0},
              "latent10_beta1": {"r": 0.35, "n": 0.1, "l": 1.0},
              "latent25_beta0": {"r": math.nan, "n": None, "l": 3.0}}
    picks = select_per_task(scores, {"t1": "r", "t2": "n", "t3": "l"}, higher_is_better=("r", "n"))
    assert {t: p["point"] for t, p in picks.items()} == {"t1": "latent10_beta1", "t2": "latent10_beta1",
                                                         "t3": "latent10_beta1"}
    assert best_point(scores, "l", higher_is_better=True) == "latent25_beta0"
    assert best_point({"p": {"a": math.nan}, "q": {"a": math.nan}}, "a", higher_is_better=True) == "p"
