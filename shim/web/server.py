"""How `pypi-xmlrpc-shim` serves: uvicorn with the connection guards, one process or several, and a clean stop.

`uvicorn shim.app:create_app --factory` serves the same app without any of this: no idle, header or write
timeouts beyond uvicorn's own, no connection cap, and a SIGTERM that ends with status 143.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from shim.config.setting import LogFormat
from shim.config.settings import Settings, warn
from shim.logs import uvicorn_log_config
from shim.metrics.processes import mark_dead, multiprocess_folder
from shim.web.arenas import fewer_malloc_arenas
from shim.web.connections import MAX_HEAD_BYTES, ChunkedAnswers, Guards, guarded_protocol
from shim.web.exchanges import client_key

__all__ = [
    "AppFactory",
    "GracefulServer",
    "GuardedConfig",
    "Workers",
    "connection_budget",
    "guarded_config",
    "serve",
    "start_warning",
]

logger = logging.getLogger(__name__)

# Connections accepted at one wake-up of the listening socket (and its queue): each holds a descriptor before the
# cap can close any, so the reserve below counts them.
BACKLOG = 256
# Descriptors kept for everything but the connections under the cap: an accept burst, the upstream client's pool
# (httpx: 100), the catalog's files, the listening socket, the event loop's own, standard streams, room to spare.
RESERVED_DESCRIPTORS = BACKLOG + 160


class GuardedConfig(uvicorn.Config):
    """uvicorn's settings, the connection guards beside them (the protocols read them), answers sent in chunks."""

    def __init__(self, app: Any, *, guards: Guards, **options: Any) -> None:
        super().__init__(app, **options)
        self.guards = guards

    def load(self) -> None:
        super().load()
        self.loaded_app = ChunkedAnswers(self.loaded_app)


class GracefulServer(uvicorn.Server):
    """uvicorn's server, except that a SIGTERM or SIGINT ends the process normally once it has drained.

    uvicorn raises the signal again after its drain, so the process dies of it (status 143 for SIGTERM).
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class AppFactory:
    """The service for these settings, built in the process that serves it (picklable, for the workers)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client_key = client_key()  # made once, where the service starts: every worker hashes clients alike

    def __call__(self) -> ASGIApp:
        from shim.web.app import create_app
        from shim.wiring import configure_logging

        fewer_malloc_arenas()  # in each worker too: each is a process of its own
        configure_logging(self.settings)
        return create_app(self.settings, client_key=self.client_key)


class Workers(Multiprocess):
    """uvicorn's supervisor of workers, which marks a worker that died dead for the metrics: its live gauges
    leave the merge (its counters stay), and the worker started in its place counts anew."""

    def keep_subprocess_alive(self) -> None:
        before = {process.pid for process in self.processes}
        super().keep_subprocess_alive()
        for pid in before - {process.pid for process in self.processes}:
            if pid is not None:
                mark_dead(pid)


def guarded_config(app: Any, settings: Settings, *, parser: str = "httptools", **options: Any) -> GuardedConfig:
    """uvicorn's settings for serving `app` (an ASGI app, or a factory with `factory=True`) as the command does."""
    guards = Guards(
        header_timeout=settings.header_timeout,
        idle_timeout=settings.idle_timeout,
        write_timeout=settings.write_timeout,
        max_connections=options.pop("max_connections", settings.max_connections),
    )
    values: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "http": guarded_protocol(parser),
        "loop": settings.event_loop.value,
        # The service writes the access line itself (SHIM_ACCESS_LOG, shim.web.exchanges), with the request's id.
        "access_log": False,
        "ws": "none",  # the service has no WebSocket route: an upgrade request is a plain request
        "lifespan": "on",
        "log_level": settings.log_level.value,
        # The client address comes from SHIM_TRUSTED_PROXIES only: uvicorn must not rewrite it first.
        "proxy_headers": False,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
        "backlog": BACKLOG,
        "timeout_keep_alive": settings.idle_timeout,
        # A drain waits for calls in progress: their body, the call, then the answer's delivery.
        "timeout_graceful_shutdown": int(settings.body_timeout + settings.call_timeout + settings.write_timeout),
    }
    if settings.log_format is LogFormat.JSON:  # uvicorn's loggers in every process, the supervisor's too
        values["log_config"] = uvicorn_log_config(settings.log_level.value)
    values.update(options)
    return GuardedConfig(app, guards=guards, **values)


def connection_budget(wanted: int, warn: Callable[[str], None]) -> int:
    """Connections this process can keep open: `wanted`, raising the soft open-files limit towards the hard one
    if it needs to; else what the limit leaves after the reserve, with a warning."""
    if sys.platform == "win32":
        return wanted
    import resource

    needed = wanted + RESERVED_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return wanted
    budget = max(1, soft - RESERVED_DESCRIPTORS if soft > 2 * RESERVED_DESCRIPTORS else soft // 2)
    warn(
        f"SHIM_MAX_CONNECTIONS is {wanted}, but this process may open only {soft} files (its RLIMIT_NOFILE: "
        f"LimitNOFILE= in a systemd unit, ulimit -n in a shell): serving at most {budget} connections at once"
    )
    return budget


def start_warning(settings: Settings) -> Callable[[str], None]:
    """How a warning at start reaches the operator: the plain line on standard error, or a JSON line in JSON."""
    return warn if settings.log_format is LogFormat.TEXT else logger.warning


def serve(settings: Settings, *, parser: str = "httptools") -> int:
    """Serve until a SIGTERM or SIGINT has drained the connections; the process's exit status."""
    budget = connection_budget(settings.max_connections, start_warning(settings))  # the workers inherit the limit
    config = guarded_config(
        AppFactory(settings), settings, parser=parser, factory=True, workers=settings.workers, max_connections=budget
    )
    if settings.workers > 1:
        # Each worker unpickles the config (guards and settings with it) and builds the app from the factory; each
        # counts its metrics in the folder set here, before any of them imports prometheus_client.
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(multiprocess_folder(settings.metrics_dir))
            except OSError as exc:  # an operator's folder that cannot be used: named, never a traceback
                print(f"pypi-xmlrpc-shim: {exc}", file=sys.stderr)
                return 2
            Workers(config, sockets=[config.bind_socket()]).run()
        return 0
    server = GracefulServer(config)
    server.run()
    return 0 if server.started else STARTUP_FAILURE
