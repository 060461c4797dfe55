"""The defaults that depend on the environment: the port a platform hands over, and where the catalog is kept."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

from shim.config import parsers
from shim.upstream.urls import UpstreamURL

__all__ = [
    "CATALOG_DOC",
    "FORMER_CATALOG",
    "PORT",
    "SHARED_CATALOG",
    "default_catalog_path",
    "default_port",
    "former_default_catalog_path",
    "shared_catalog_path",
]

PORT = 8000
_FOLDER = "pypi-xmlrpc-shim"  # under the state directory
SHARED_CATALOG = "catalog.sqlite3"  # the default of every upstream, before each had one of its own
FORMER_CATALOG = "index.sqlite3"  # when the catalog was called the metadata index
# How the docs show a path under the state directory: the variable, not this machine's value.
_STATE_DOC = Path("$XDG_STATE_HOME") / _FOLDER
CATALOG_DOC = f"`{_STATE_DOC / 'catalog-<host>-<hash>.sqlite3'}`"


def default_port(environ: Mapping[str, str]) -> int:
    # Platforms such as Heroku or Cloud Run hand the port over in PORT.
    port = environ.get("PORT", "").strip()
    if port:
        try:
            return parsers.int_between(1, 65535)(port)
        except ValueError as exc:
            raise ValueError(f"PORT has value {environ['PORT']!r}: {exc}") from None
    return PORT


def _state_dir(environ: Mapping[str, str]) -> Path:
    state = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / _FOLDER


def default_catalog_path(environ: Mapping[str, str], upstream: UpstreamURL) -> Path:
    """The upstream's own catalog: its host, to be read by people, and a hash of its base URL (never its
    credentials, which are held apart), so that two upstreams on one host (another port or path) differ too."""
    host = re.sub(r"[^a-z0-9.-]+", "_", upstream.host.lower()).strip("._") or "upstream"
    digest = hashlib.sha256(upstream.base.encode()).hexdigest()[:10]
    return _state_dir(environ) / f"catalog-{host}-{digest}.sqlite3"


def shared_catalog_path(environ: Mapping[str, str]) -> Path:
    """Where every upstream's catalog was kept by default before each had its own: adopted by its upstream's."""
    return _state_dir(environ) / SHARED_CATALOG


def former_default_catalog_path(environ: Mapping[str, str]) -> Path:
    """Where the catalog was kept by default when it was called the metadata index: adopted, never left."""
    return _state_dir(environ) / FORMER_CATALOG
