"""Grid-point names: one rule for the workflow, the stage functions and the CLI."""

import re

import pytest

from workflow_lib.grid import grid_points, parse_point, point_name, point_regex


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
