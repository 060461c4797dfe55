"""Where the service keeps its state by default: the catalog, under the XDG state directory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["default_catalog_path", "former_default_catalog_path"]


def _state_dir(environ: Mapping[str, str]) -> Path:
    state = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "pypi-xmlrpc-shim"


def default_catalog_path(environ: Mapping[str, str]) -> Path:
    return _state_dir(environ) / "catalog.sqlite3"


def former_default_catalog_path(environ: Mapping[str, str]) -> Path:
    """Where the catalog was kept by default when it was called the metadata index: adopted, never left."""
    return _state_dir(environ) / "index.sqlite3"
