"""The Ray Serve application of `diffill serve --ray`, for Ray's own deployers:
`serve run http_server.ray_app:app_builder model=/models/x max_replicas=4`, or a KubeRay
RayService whose `import_path` is `http_server.ray_app:app_builder`. Its args are the options
of `diffill serve` by their field names, read and checked as the command reads them."""

from __future__ import annotations

import argparse
from typing import Any

from ray.serve import Application

from engine.errors import InputError
from http_server.main import config_from, configure
from http_server.ray_serve import application


def app_builder(args: dict[str, Any]) -> Application:
    parser = argparse.ArgumentParser("diffill serve --ray", allow_abbrev=False, exit_on_error=False)
    configure(parser)
    argv = ["--ray"] + [f"--{key.replace('_', '-')}={value}" for key, value in args.items()]
    try:
        options, unknown = parser.parse_known_args(argv)
    except argparse.ArgumentError as exc:
        raise InputError(f"app_builder args: {exc}") from None
    if unknown:
        raise InputError(f"app_builder args: unknown {' '.join(unknown)}")
    return application(config_from(options))
