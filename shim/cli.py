"""`pypi-xmlrpc-shim` and `python -m shim`: options from the settings registry, then uvicorn."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from shim import __version__
from shim.settings import REGISTRY, Settings, SettingsError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pypi-xmlrpc-shim",
        description="Serve PyPI's legacy XML-RPC API, answered from an index's JSON, Simple and RSS APIs.",
        epilog="Every option can also be set by its environment variable; the option wins.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    for setting in REGISTRY:
        parser.add_argument(
            setting.option,
            dest=setting.name,
            metavar=setting.metavar,
            default=None,
            # argparse formats help with %: escape it in our text.
            help=f"{setting.meaning} [{setting.env}; default: {setting.default_doc}]".replace("%", "%%"),
        )
    return parser


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the command line and the environment; exits with a clear message on a bad value."""
    options = vars(build_parser().parse_args(argv))
    try:
        return Settings.load(os.environ if environ is None else environ, options)
    except SettingsError as exc:
        print(f"pypi-xmlrpc-shim: cannot start:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: Sequence[str] | None = None) -> None:
    settings = load(argv)
    import uvicorn

    from shim.app import configure_logging, create_app

    configure_logging(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.value,
    )
