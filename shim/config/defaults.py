"""The defaults that depend on the environment: the port a platform hands over, and where the catalog is kept."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from shim.config import parsers

__all__ = [
    "CATALOG_DOC",
    "FORMER_CATALOG",
    "PORT",
    "default_catalog_path",
    "default_port",
    "former_default_catalog_path",
]

PORT = 8000
_FOLDER = "pypi-xmlrpc-shim"  # under the state directory
_CATALOG = "catalog.sqlite3"
FORMER_CATALOG = "index.sqlite3"  # when the catalog was called the metadata index
# How the docs show a path under the state directory: the variable, not this machine's value.
_STATE_DOC = Path("$XDG_STATE_HOME") / _FOLDER
CATALOG_DOC = f"`{_STATE_DOC / _CATALOG}`"


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


def default_catalog_path(environ: Mapping[str, str]) -> Path:
    return _state_dir(environ) / _CATALOG


def former_default_catalog_path(environ: Mapping[str, str]) -> Path:
    """Where the catalog was kept by default when it was called the metadata index: adopted, never left."""
    return _state_dir(environ) / FORMER_CATALOG
