"""SHIM_CATALOG_SEED: a catalog snapshot imported at a deployment's first start, from a file or an http(s) URL.

Only into a catalog that is empty or missing: one that has started is never replaced by its seed. A URL is not the
index, but it is fetched by the upstream client, the one code that speaks HTTP, under its rules: no redirect
followed, the index's credentials only to the index's own origin, the URL's origin under a circuit of its own. It is
bounded in size (SHIM_SNAPSHOT_MAX_BYTES) and in time (SHIM_SEED_TIMEOUT), and written to a temporary file beside the
catalog. A seed refused or not fetched is logged with its reason, and the catalog starts from the upstream, as
without a seed.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from shim.catalog.snapshot import CatalogNotEmpty, Manifest, SnapshotRefused, install, is_empty, scratch
from shim.catalog.writes import CatalogWriter
from shim.errors import UpstreamError
from shim.upstream.client import Upstream
from shim.upstream.urls import redact_url

__all__ = ["Seed", "seed_catalog"]

logger = logging.getLogger(__name__)

_INSTEAD = "the catalog starts from the upstream instead"


@dataclass(frozen=True)
class Seed:
    """A snapshot's file path, or its http(s) URL (shown with any credentials or query values redacted)."""

    text: str

    @property
    def is_url(self) -> bool:
        return "://" in self.text

    def __str__(self) -> str:
        return redact_url(self.text) if self.is_url else self.text

    def __repr__(self) -> str:
        return f"Seed({str(self)!r})"


async def seed_catalog(
    catalog: CatalogWriter, upstream: Upstream, seed: Seed, *, max_bytes: int, timeout: float
) -> Manifest | None:
    """Import `seed` into `catalog` when the catalog is empty or missing; the manifest imported, else None."""
    try:
        if not await catalog.run(is_empty, catalog):
            logger.info("the catalog %s has started: SHIM_CATALOG_SEED is not imported into it", catalog.path)
            return None
        if seed.is_url:
            with scratch(catalog.path, ".seed") as downloaded:
                logger.info("SHIM_CATALOG_SEED: downloading %s", seed)
                with downloaded.open("wb") as sink:
                    async with asyncio.timeout(timeout):
                        await upstream.download(seed.text, sink, max_bytes=max_bytes)
                manifest = await _install(downloaded, catalog, max_bytes, shown=str(seed))
        else:
            manifest = await _install(Path(seed.text).expanduser(), catalog, max_bytes, shown=seed.text)
    except (SnapshotRefused, CatalogNotEmpty) as exc:
        logger.error("SHIM_CATALOG_SEED: %s; %s", exc, _INSTEAD)
    except UpstreamError as exc:
        logger.error("SHIM_CATALOG_SEED: %s could not be downloaded (%s); %s", seed, exc.reason, _INSTEAD)
    except TimeoutError:
        logger.error(
            "SHIM_CATALOG_SEED: %s was not downloaded within SHIM_SEED_TIMEOUT (%g s); %s", seed, timeout, _INSTEAD
        )
    except sqlite3.DatabaseError as exc:  # the catalog's own file (the writer names it again, and waits)
        logger.error("SHIM_CATALOG_SEED: not imported: %s", exc)
    except Exception:  # the change feed must outlive a seed's bug: it starts from the upstream
        logger.exception("SHIM_CATALOG_SEED: %s not imported; %s", seed, _INSTEAD)
    else:
        logger.info(
            "SHIM_CATALOG_SEED: imported %s: %d projects of %s, up to serial %s",
            seed,
            manifest.projects,
            manifest.upstream,
            manifest.last_serial,
        )
        return manifest
    return None


async def _install(path: Path, catalog: CatalogWriter, max_bytes: int, *, shown: str) -> Manifest:
    # Expanding and checking a catalog of GBs takes a while: off the event loop, which goes on serving.
    return await asyncio.to_thread(install, path, catalog, max_bytes=max_bytes, shown=shown)
