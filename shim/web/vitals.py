"""What the catalog file and the shared circuit say of the service, sampled in the background, so that `/healthz`,
`/metrics` and the status page read memory only: none of them ever waits on the catalog, Redis or the upstream.

A sample is taken every `SAMPLE_EVERY` seconds, and at once when one is asked for and the latest is older than
`FRESH` (a probe's poll sees figures at most that old); each is bounded by `SAMPLE_TIMEOUT`, and one that fails
or runs out keeps the latest figures, with the reason beside them. The gauges of the metrics are set from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from shim.catalog.rows import Coverage, CrawlProgress
from shim.xmlrpc.context import Services

__all__ = ["FRESH", "SAMPLE_EVERY", "Sample", "Vitals"]

logger = logging.getLogger(__name__)

SAMPLE_EVERY = 5.0
FRESH = 1.0
SAMPLE_TIMEOUT = 10.0
ROLES = ("writer", "standby", "reader")


@dataclass(frozen=True)
class Sample:
    taken_at: float  # POSIX time
    coverage: Coverage | None
    crawl: CrawlProgress | None
    catalog_serial: int | None
    feed_lag: float | None  # seconds behind the upstream's last serial (None: the upstream tells none)
    problem: str | None = None  # why the catalog could not be read this time (its figures are the last read)


class Vitals:
    def __init__(self, services: Services, *, clock: Callable[[], float] = time.time) -> None:
        self.services = services
        self.clock = clock
        self.latest: Sample | None = None
        self._taking: asyncio.Task[Sample] | None = None
        self._behind_since: float | None = None

    def ask(self) -> Sample | None:
        """The latest sample, at once; a new one is started when it is older than FRESH and none is under way."""
        latest = self.latest
        if (self._taking is None or self._taking.done()) and (
            latest is None or self.clock() - latest.taken_at >= FRESH
        ):
            self._taking = asyncio.get_running_loop().create_task(self.sample())
        self.memory_gauges()
        return latest

    async def run(self) -> None:
        """For the service's life: a sample every SAMPLE_EVERY seconds (and, stopped, no sample left running)."""
        try:
            while True:
                with contextlib.suppress(Exception):  # sample() logs its own failures; the loop outlives any
                    await self.sample()
                await asyncio.sleep(SAMPLE_EVERY)
        finally:
            if self._taking is not None:
                self._taking.cancel()

    async def sample(self) -> Sample:
        services, catalog = self.services, self.services.catalog
        previous, problem = self.latest, None
        coverage = previous.coverage if previous else None
        crawl = previous.crawl if previous else None
        serial = previous.catalog_serial if previous else None
        try:
            async with asyncio.timeout(SAMPLE_TIMEOUT):
                coverage = await catalog.run(catalog.coverage)
                crawl = await catalog.run(catalog.crawl_progress, coverage)
                serial = await catalog.run(catalog.last_serial)
        except Exception as exc:  # a slow or broken file: the figures stay the last read, and say why
            problem = "the catalog did not answer in time" if isinstance(exc, TimeoutError) else repr(exc)
            logger.warning("the catalog's figures could not be read: %s", problem)
        upstream = services.store.upstream
        with contextlib.suppress(Exception):  # a circuit another replica opened, open here; bounded by the store
            await upstream.circuit.look(upstream.guards, upstream.guard_for)
        now = self.clock()
        sample = Sample(now, coverage, crawl, serial, self._lag(serial, now), problem)
        self.latest = sample
        self._catalog_gauges(sample)
        self.memory_gauges()
        return sample

    def _lag(self, catalog_serial: int | None, now: float) -> float | None:
        """Seconds since the catalog was first seen behind the upstream's last serial (0 while it is not)."""
        snapshot = self.services.index.snapshot
        upstream = None if snapshot is None else snapshot.listing.last_serial
        if upstream is None:
            return None
        if catalog_serial is not None and catalog_serial >= upstream:
            self._behind_since = None
            return 0.0
        if self._behind_since is None:  # behind since that index was fetched, at the latest
            self._behind_since = min(now, snapshot.fetched_at) if snapshot is not None else now
        return max(0.0, now - self._behind_since)

    def _catalog_gauges(self, sample: Sample) -> None:
        metrics = self.services.metrics
        if sample.coverage is not None:
            metrics.gauge("shim_catalog_projects", sample.coverage.projects)
            metrics.gauge("shim_catalog_covered", sample.coverage.with_metadata)
        eta = None if sample.crawl is None else sample.crawl.eta_seconds
        metrics.gauge("shim_catalog_crawl_eta_seconds", math.nan if eta is None else eta)
        metrics.gauge("shim_catalog_feed_lag_seconds", math.nan if sample.feed_lag is None else sample.feed_lag)

    def memory_gauges(self) -> None:
        """The gauges of what this process holds in memory: cheap, set at every sample and every scrape."""
        services, metrics = self.services, self.services.metrics
        for origin, guard in services.store.upstream.guards.items():
            metrics.circuit(origin, guard.state)
        role = self.role()
        for each in ROLES:
            metrics.gauge("shim_catalog_role", 1 if each == role else 0, each)
        if services.shared is not None:
            metrics.gauge("shim_shared_store_up", 0 if services.shared.degraded else 1)

    def role(self) -> str:
        election = self.services.election
        return election.role if election is not None and election.role is not None else "reader"

    def catalog_report(self) -> dict[str, object]:
        """The catalog's part of /healthz, from the latest sample (None before the first)."""
        sample = self.latest
        coverage = {f.name: None for f in dataclasses.fields(Coverage)}
        if sample is not None and sample.coverage is not None:
            coverage = dataclasses.asdict(sample.coverage)
        crawl = None if sample is None or sample.crawl is None else dataclasses.asdict(sample.crawl)
        return {
            **coverage,
            "crawl": crawl,
            "feed_lag_seconds": None if sample is None else sample.feed_lag,
            "sampled_at": None if sample is None else sample.taken_at,
            "sample_problem": None if sample is None else sample.problem,
        }
