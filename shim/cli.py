"""`pypi-xmlrpc-shim` and `python -m shim`: options from the settings registry, then the server (shim.web.server).

pypi-xmlrpc-shim [OPTIONS]                      serve
pypi-xmlrpc-shim catalog refresh [--once]       the catalog's writer, as its own process (elected as the service is)
pypi-xmlrpc-shim catalog crawl [--limit N]      read every project's JSON, at SHIM_CRAWL_RATE
pypi-xmlrpc-shim catalog status                 what the catalog covers, as JSON
pypi-xmlrpc-shim catalog export FILE            a snapshot of the catalog (consistent while the service writes)
pypi-xmlrpc-shim catalog import FILE            the catalog from a snapshot, checked before the catalog is touched

`index` is the former name of `catalog`, and still works.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from shim import __version__
from shim.catalog.problems import CatalogUnavailable
from shim.config.registry import REGISTRY
from shim.config.settings import Settings, SettingsError

if TYPE_CHECKING:
    from shim.wiring import CatalogWork

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
        for former in setting.former:  # read under its former name too, with a warning; not in --help
            options.add_argument(
                "--" + former.replace("_", "-"),
                dest=former,
                metavar=setting.metavar,
                default=argparse.SUPPRESS,
                help=argparse.SUPPRESS,
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
    catalog = commands.add_parser(
        "catalog", aliases=["index"], help="run or inspect the catalog outside the service (`index`: former name)"
    )
    catalog_commands = catalog.add_subparsers(dest="catalog_command", metavar="ACTION", required=True)
    refresh = catalog_commands.add_parser("refresh", parents=[options], help="keep the catalog (its one writer)")
    refresh.add_argument("--once", action="store_true", help="refresh once and exit")
    crawl = catalog_commands.add_parser("crawl", parents=[options], help="read every project's JSON into the catalog")
    crawl.add_argument("--limit", type=int, default=None, help="stop after this many projects")
    catalog_commands.add_parser("status", parents=[options], help="print what the catalog covers, as JSON")
    export = catalog_commands.add_parser(
        "export", parents=[options], help="write a snapshot of the catalog (safe while the service runs)"
    )
    export.add_argument("snapshot", metavar="FILE", help="the snapshot to write (replaced whole, or not at all)")
    load = catalog_commands.add_parser("import", parents=[options], help="build the catalog from a snapshot")
    load.add_argument("snapshot", metavar="FILE", help="a snapshot written by `catalog export`")
    load.add_argument("--replace", action="store_true", help="replace a catalog that already holds projects")
    return parser


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the command line and the environment; exits with a clear message on a bad value."""
    arguments = vars(build_parser().parse_args(argv))
    return _settings(arguments, environ)


def _settings(arguments: Mapping[str, object], environ: Mapping[str, str] | None) -> Settings:
    names = [name for s in REGISTRY for name in (s.name, *s.former)]
    options = {name: arguments.get(name) for name in names}
    try:
        return Settings.load(os.environ if environ is None else environ, options)  # type: ignore[arg-type]
    except SettingsError as exc:
        print(f"pypi-xmlrpc-shim: cannot start:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None


async def _catalog(settings: Settings, action: str, *, once: bool, limit: int | None) -> int:
    from shim import wiring

    if action == "crawl" and settings.crawl_rate <= 0:
        print("pypi-xmlrpc-shim: the crawler needs SHIM_CRAWL_RATE (or --crawl-rate) above 0", file=sys.stderr)
        return 2
    services, client = wiring.build_services(settings)
    work = wiring.open_catalog_writer(settings, services)
    election = services.election
    try:
        if action == "refresh" and election is not None and not election.try_acquire():
            if once:  # a pass beside the elected writer would be a second writer
                print(f"pypi-xmlrpc-shim: {_writer(election.writer_pid)} writes the catalog now", file=sys.stderr)
                return 1
            await election.elected()  # standing by (logged) until the writer stops
        return await _run_catalog(settings, work, action, once=once, limit=limit)
    except CatalogUnavailable as exc:  # an operator's problem, named: never a traceback
        print(f"pypi-xmlrpc-shim: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()
        work.close()
        services.catalog.close()
        if election is not None:
            election.close()


def _writer(pid: int | None) -> str:
    return "another process" if pid is None else f"the process {pid}"


async def _run_catalog(settings: Settings, work: CatalogWork, action: str, *, once: bool, limit: int | None) -> int:
    if action == "status":
        coverage = await work.writer.run(work.writer.coverage)
        crawl = dataclasses.asdict(await work.writer.run(work.writer.crawl_progress, coverage))
        print(json.dumps({"path": str(settings.catalog_path), **dataclasses.asdict(coverage), "crawl": crawl}))
    elif action == "refresh" and once:
        await work.seed(settings)
        print(json.dumps({"recorded": await work.refresher.refresh()}))
    elif action == "refresh":
        await work.run(settings, crawl=False)
    elif action == "crawl" and work.crawler is not None:
        if work.writer.oldest_serial is None:  # a fresh file: the first look, as the refresher makes it, comes first
            await work.refresher.refresh()
        print(json.dumps({"crawled": await work.crawler.run(limit=limit)}))
    return 0


def _snapshot(settings: Settings, action: str, snapshot: Path, *, replace: bool) -> int:
    """`catalog export FILE` and `catalog import FILE`: no upstream request, the catalog's file and the snapshot."""
    from shim import wiring
    from shim.catalog import snapshot as snapshots

    wiring.adopt_former_catalog(settings)
    try:
        if action == "export":
            manifest = snapshots.export_from(settings.catalog_path, settings.upstream, snapshot)
        else:
            manifest = snapshots.import_into(
                settings.catalog_path,
                settings.upstream,
                snapshot,
                max_bytes=settings.snapshot_max_bytes,
                replace=replace,
            )
    except snapshots.SnapshotRefused as exc:
        kept = "" if action == "export" else f"; the catalog {settings.catalog_path} is left as it is"
        print(f"pypi-xmlrpc-shim: {exc}{kept}", file=sys.stderr)
        return 1
    except (CatalogUnavailable, snapshots.CatalogNotEmpty) as exc:  # the catalog's file: an operator's to fix
        print(f"pypi-xmlrpc-shim: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"pypi-xmlrpc-shim: cannot write the snapshot {snapshot}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"path": str(settings.catalog_path), "snapshot": str(snapshot), **dataclasses.asdict(manifest)}))
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    arguments = vars(build_parser().parse_args(argv))
    settings = _settings(arguments, None)
    from shim.wiring import configure_logging

    configure_logging(settings)
    if arguments.get("command") in ("catalog", "index"):
        action = str(arguments["catalog_command"])
        if action in ("export", "import"):
            replace = bool(arguments.get("replace"))
            raise SystemExit(_snapshot(settings, action, Path(str(arguments["snapshot"])), replace=replace))
        raise SystemExit(
            asyncio.run(_catalog(settings, action, once=bool(arguments.get("once")), limit=arguments.get("limit")))
        )
    from shim.web.server import serve

    raise SystemExit(serve(settings))
