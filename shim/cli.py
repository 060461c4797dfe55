"""`pypi-xmlrpc-shim` and `python -m shim`: options from the settings registry, then uvicorn.

pypi-xmlrpc-shim [OPTIONS]                      serve
pypi-xmlrpc-shim index refresh [--once]         the metadata index's writer, as its own process
pypi-xmlrpc-shim index crawl [--limit N]        read every project's JSON, at SHIM_CRAWL_RATE
pypi-xmlrpc-shim index status                   what the metadata index covers, as JSON
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Mapping, Sequence

from shim import __version__
from shim.settings import REGISTRY, Settings, SettingsError

__all__ = ["build_parser", "main"]


def _settings_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    for setting in REGISTRY:
        options.add_argument(
            setting.option,
            dest=setting.name,
            metavar=setting.metavar,
            default=argparse.SUPPRESS,  # absent: the variable or the default decides, at any level
            # argparse formats help with %: escape it in our text.
            help=f"{setting.meaning} [{setting.env}; default: {setting.default_doc}]".replace("%", "%%"),
        )
    return options


def build_parser() -> argparse.ArgumentParser:
    options = _settings_options()
    parser = argparse.ArgumentParser(
        prog="pypi-xmlrpc-shim",
        description="Serve PyPI's legacy XML-RPC API, answered from an index's JSON, Simple and RSS APIs.",
        epilog="Every option can also be set by its environment variable; the option wins.",
        parents=[options],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    index = commands.add_parser("index", help="run or inspect the metadata index outside the service")
    index_commands = index.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    refresh = index_commands.add_parser("refresh", parents=[options], help="keep the metadata index (the writer)")
    refresh.add_argument("--once", action="store_true", help="refresh once and exit")
    crawl = index_commands.add_parser("crawl", parents=[options], help="read every project's JSON into the index")
    crawl.add_argument("--limit", type=int, default=None, help="stop after this many projects")
    index_commands.add_parser("status", parents=[options], help="print what the index covers, as JSON")
    return parser


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the command line and the environment; exits with a clear message on a bad value."""
    arguments = vars(build_parser().parse_args(argv))
    return _settings(arguments, environ)


def _settings(arguments: Mapping[str, object], environ: Mapping[str, str] | None) -> Settings:
    options = {s.name: arguments.get(s.name) for s in REGISTRY}
    try:
        return Settings.load(os.environ if environ is None else environ, options)  # type: ignore[arg-type]
    except SettingsError as exc:
        print(f"pypi-xmlrpc-shim: cannot start:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None


async def _index(settings: Settings, action: str, *, once: bool, limit: int | None) -> int:
    from shim.app import build_services
    from shim.metaindex import MetaIndex
    from shim.refresher import Crawler, Refresher

    services, client = build_services(settings)
    writer = MetaIndex(settings.index_path, writer=True)
    try:
        if action == "status":
            coverage = await writer.run(writer.coverage)
            print(json.dumps({"path": str(settings.index_path), **dataclasses.asdict(coverage)}))
        elif action == "refresh":
            refresher = Refresher(writer, services.store, services.index)
            if once:
                print(json.dumps({"recorded": await refresher.refresh()}))
            else:
                await refresher.run(settings.index_refresh)
        elif action == "crawl":
            if settings.crawl_rate <= 0:
                print("pypi-xmlrpc-shim: the crawler needs SHIM_CRAWL_RATE (or --crawl-rate) above 0", file=sys.stderr)
                return 2
            crawler = Crawler(writer, services.store, rate=settings.crawl_rate)
            print(json.dumps({"crawled": await crawler.run(limit=limit)}))
        return 0
    finally:
        await client.aclose()
        writer.close()


def main(argv: Sequence[str] | None = None) -> None:
    arguments = vars(build_parser().parse_args(argv))
    settings = _settings(arguments, None)
    from shim.app import configure_logging

    configure_logging(settings)
    if arguments.get("command") == "index":
        action = str(arguments["index_command"])
        raise SystemExit(
            asyncio.run(_index(settings, action, once=bool(arguments.get("once")), limit=arguments.get("limit")))
        )
    import uvicorn

    from shim.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.value,
        # The client address comes from SHIM_TRUSTED_PROXIES only: uvicorn must not rewrite it first.
        proxy_headers=False,
    )
