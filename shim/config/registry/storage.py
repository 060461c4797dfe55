"""The settings of what the service keeps: the document cache, the Simple index's refresh, the catalog and its
crawler, and the files it proxies."""

from __future__ import annotations

from typing import Any

from shim.catalog.seed import Seed
from shim.config import parsers
from shim.config.defaults import (
    CATALOG_DOC,
    FORMER_CATALOG,
    SHARED_CATALOG,
)
from shim.config.setting import Setting
from shim.modes import FilesMode
from shim.upstream.urls import UpstreamURL

__all__ = ["STORAGE"]


STORAGE: tuple[Setting[Any], ...] = (
    Setting(
        "cache_soft_ttl",
        parsers.seconds(0, 7 * 86400),
        "Seconds an upstream document is served from the cache before it is revalidated (a conditional "
        "request). A project's documents are dropped as soon as the Simple index shows it changed.",
        300.0,
        metavar="SECONDS",
    ),
    Setting(
        "cache_hard_ttl",
        parsers.seconds(0, 30 * 86400),
        "Seconds after which a cached document is fetched afresh rather than revalidated.",
        86400.0,
        metavar="SECONDS",
    ),
    Setting(
        "stale_if_error",
        parsers.seconds(0, 30 * 86400),
        "Seconds past its soft expiry a cached document may still be served when the upstream fails (logged and "
        "counted); 0 never serves a stale copy.",
        86400.0,
        metavar="SECONDS",
    ),
    Setting(
        "not_found_ttl",
        parsers.seconds(0, 86400),
        "Seconds the upstream's not-found for a project is remembered (dropped sooner when the project "
        "appears in the Simple index).",
        60.0,
        metavar="SECONDS",
    ),
    Setting(
        "cache_max_bytes",
        parsers.int_between(0, 64 * 1024**3),
        "Memory the document cache may use, counted as bytes of documents and their parsed forms.",
        256 * 1024 * 1024,
        metavar="BYTES",
    ),
    Setting(
        "index_refresh",
        parsers.seconds(1, 86400),
        "Seconds between conditional refreshes of the Simple index held in memory.",
        300.0,
        metavar="SECONDS",
    ),
    Setting(
        "catalog_path",
        parsers.file_path,
        "The catalog (SQLite): serials seen, the change rows, and what was read of each project. Created "
        "when missing; a file SQLite calls corrupt is moved aside and rebuilt, one the service cannot open or write is "
        "left as it is and named (log, /healthz, the feed's faults). It records its upstream: a service for another "
        "upstream refuses it, naming both. By default each upstream has its own (its host and a hash of its URL); "
        f"a file at a former default (`{SHARED_CATALOG}` or `{FORMER_CATALOG}` beside it) is adopted by the "
        "upstream it records (either, when it records none: the first service to start).",
        shown=CATALOG_DOC,
        metavar="PATH",
        former=("index_path",),
    ),
    Setting(
        "catalog_writer",
        parsers.boolean,
        "Take part in the election of the catalog's one writer (the refresher): of every process on the file "
        "(each of SHIM_WORKERS, each replica, `pypi-xmlrpc-shim catalog refresh`), the one holding its lock "
        "(`<catalog>.writer.lock`) writes the change feed, the others stand by and take over when it stops. False: "
        "this process never writes the change feed.",
        True,
        metavar="BOOL",
        former=("index_writer",),
    ),
    Setting(
        "crawl_rate",
        parsers.seconds(0, 1000),
        "Requests a second the crawler may make to read every project's JSON into the catalog (for search, "
        "browse, user_packages and exact change rows); 0 turns it off. The default reads one project at a time, "
        "at most 5 a second: a whole public index (about 700 000 projects) in 39 hours, the projects called for "
        "first, while the upstream sees one request at a time for a cacheable JSON document, paused whenever it "
        "sends `Retry-After` and slowed down to one a minute while it fails. It starts a minute after the "
        "catalog's first look and, caught up, looks again every minute.",
        5.0,
        note="a second",
        metavar="PER_SECOND",
    ),
    Setting(
        "search_fill_timeout",
        parsers.seconds(0, 60),
        "Seconds search may spend reading the JSON of its best name matches whose summary and version the "
        "catalog lacks (a hit still unknown then is left out).",
        5.0,
        metavar="SECONDS",
    ),
    Setting(
        "files",
        parsers.choice(FilesMode),
        "File URLs in passed-through documents: `direct` leaves them pointing at the upstream's files host "
        "(and `/packages/` answers 404, so a public deployment is no open file proxy); `proxy` rewrites them "
        "to `<service>/packages/...` and streams the files.",
        FilesMode.DIRECT,
        metavar="MODE",
    ),
    Setting(
        "files_upstream",
        lambda text: UpstreamURL.parse(text) if text.strip() else None,
        "Base URL of the upstream's files host (`{base}packages/...`): besides the upstream itself, the only "
        "host file URLs in documents may name for the service to fetch core metadata (and, with "
        "`SHIM_FILES=proxy`, files) from. Unset, it is learnt from the first file URL a document names, never "
        "an address outside the public internet.",
        shown="learnt from the upstream's documents",
        metavar="URL",
    ),
    Setting(
        "public_url",
        parsers.public_url,
        "The service's public base URL, as clients reach it (`https://mirror.example/shim/`): proxied file URLs and "
        "redirects are built from it. Unset, they are built from each request's Host, and only a few rewritten "
        "copies of a document are kept.",
        shown="from the request",
        metavar="URL",
    ),
    Setting(
        "max_file_bytes",
        parsers.int_between(0, 2**50),
        "Largest file streamed with `SHIM_FILES=proxy`; a larger one answers 403.",
        4 * 1024**3,
        metavar="BYTES",
    ),
    Setting(
        "catalog_seed",
        lambda text: Seed(value) if (value := parsers.file_or_url(text)) else None,
        "A catalog snapshot (`pypi-xmlrpc-shim catalog export`) that the catalog's writer imports at first start, "
        "while the catalog is empty or missing: a file path or an http(s) URL (fetched by the upstream client, no "
        "redirects followed). "
        "The catalog then follows the upstream from the snapshot's serial. A snapshot refused (corrupt, truncated, "
        "a newer schema, another upstream's) or not fetched is logged, and the catalog starts from the upstream.",
        shown="none",
        metavar="FILE_OR_URL",
    ),
    Setting(
        "snapshot_max_bytes",
        parsers.int_between(1024 * 1024, 2**50),
        "Largest catalog a snapshot may hold, decompressed, and largest seed download: a snapshot declaring or "
        "expanding to more is refused before the catalog is touched.",
        16 * 1024**3,
        metavar="BYTES",
    ),
    Setting(
        "seed_timeout",
        parsers.seconds(1, 7 * 86400),
        "Seconds the download of SHIM_CATALOG_SEED may take, in all.",
        3600.0,
        metavar="SECONDS",
    ),
    Setting(
        "catalog_takeover",
        parsers.seconds(0.1, 3600),
        "Seconds between a standby's tries to become the catalog's writer: at most this long (and the "
        "writer's first pass) without a writer once it stops.",
        5.0,
        metavar="SECONDS",
    ),
    Setting(
        "feed_poll",
        parsers.seconds(0, 86400),
        "Seconds between polls of the upstream's site RSS feeds (`/rss/updates.xml`, `/rss/packages.xml`, each a "
        "conditional request), the change feed's fast path: each release or project they show that the catalog "
        "lacks is read from its JSON and recorded at its real serial, so it is in the change feed within this "
        "plus a few seconds. Removals, yanks and files added later wait for SHIM_INDEX_REFRESH; so does "
        "everything over an upstream without RSS feeds (asked for them again at that interval). 0 turns it off.",
        30.0,
        metavar="SECONDS",
    ),
)
