"""`diffill lsp` and `python -m lsp_server`: run the language server over stdio."""

from __future__ import annotations

import argparse

from engine.loading import RUNTIMES


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", help="model folder (default: the embedded model); overrides model.path"
    )
    parser.add_argument("--runtime", choices=RUNTIMES, help="overrides the model.runtime setting")
    parser.add_argument(
        "--stdio",
        action="store_true",
        help="accepted for clients that always pass it; stdio is the only transport",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        help="Python log level for stderr (default WARNING); document text appears only at "
        "DEBUG, cut to a short excerpt",
    )


def run(args: argparse.Namespace) -> int:
    from engine.allocator import fix_mmap_threshold
    from lsp_server.log_privacy import configure as configure_logging
    from lsp_server.server import server

    fix_mmap_threshold()
    configure_logging(args.log_level)
    overrides = {"path": args.model, "runtime": args.runtime}
    server.overrides = {key: value for key, value in overrides.items() if value is not None}
    server.start_io()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m lsp_server", description=__doc__)
    configure(parser)
    return run(parser.parse_args())
