"""`shim.app:create_app`, the factory uvicorn is pointed at (`uvicorn shim.app:create_app --factory`).

The application itself is built in `shim.web.app`; this name is kept as the service's public entry point.
"""

from __future__ import annotations

from shim.web.app import create_app

__all__ = ["create_app"]
