"""`diffill serve`'s options to a `ServeConfig`: the Ray Serve ones (--replicas, or
--min/--max-replicas with --target-ongoing-requests) and their checks. No server, no Ray."""

from __future__ import annotations

import argparse

import pytest

from engine.errors import InputError
from http_server.config import RayConfig
from http_server.main import config_from, configure


def _config(*argv: str):
    parser = argparse.ArgumentParser()
    configure(parser)
    return config_from(parser.parse_args(list(argv)))


def test_without_ray_there_is_no_ray_config() -> None:
    assert _config().ray is None


def test_replicas_is_a_fixed_number() -> None:
    ray = _config("--ray", "--replicas", "3").ray
    assert ray == RayConfig(min_replicas=3, max_replicas=3)


def test_min_and_max_replicas_autoscale_on_the_target() -> None:
    argv = ("--ray", "--min-replicas", "1", "--max-replicas", "4")
    ray = _config(*argv, "--target-ongoing-requests", "3", "--ray-address", "auto").ray
    assert ray == RayConfig("auto", 1, 4, target_ongoing_requests=3.0)
    assert _config("--ray", "--min-replicas", "2").ray == RayConfig(min_replicas=2, max_replicas=2)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--replicas", "2"), "need --ray"),
        (("--ray", "--replicas", "2", "--max-replicas", "3"), "not both"),
        (("--ray", "--min-replicas", "3", "--max-replicas", "2"), "under min replicas 3"),
        (("--ray", "--replicas", "0"), "min replicas must be >= 1"),
        (("--ray", "--target-ongoing-requests", "0"), "target ongoing requests must be > 0"),
        (("--ray", "--replica-retries", "-1"), "retries must be >= 0"),
    ],
)
def test_bad_ray_options_are_named(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(InputError, match=message):
        _config(*argv)


def test_ray_app_builder_reads_the_same_options() -> None:
    from ray.serve import Application

    from http_server.ray_app import app_builder

    assert isinstance(app_builder({"min_replicas": 1, "max_replicas": 3}), Application)
    with pytest.raises(InputError, match="max replicas 1 is under min replicas 2"):
        app_builder({"min_replicas": 2, "max_replicas": 1})
    with pytest.raises(InputError, match="unknown --replica=2"):
        app_builder({"replica": 2})
    with pytest.raises(InputError, match="invalid int value"):
        app_builder({"max_replicas": "many"})
