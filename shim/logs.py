"""How log lines look: text for a terminal (as uvicorn writes its own), or one JSON object per line.

JSON lines carry `time` (ISO 8601, UTC), `level`, `event` (the message) and `logger`; a line written while a
request is answered also its `request_id`, `method` (the XML-RPC method, null for other requests) and `client`
(shim.exchange); the access line adds `duration` (seconds), `outcome`, `upstream_requests`, `status`, `path` and
`http_method`. An exception is the field `exception`, its traceback as text: still one line. The same formatter
serves the service's loggers, uvicorn's, and (in JSON) uvicorn's own configuration in every process, so that
the supervisor of `--workers` writes JSON too.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS, merge_record_extra
from pythonjsonlogger.json import JsonFormatter

from shim import exchange

__all__ = ["ACCESS_LOGGER", "TEXT_FORMAT", "UVICORN_LOGGERS", "AccessText", "JsonLines", "uvicorn_log_config"]

TEXT_FORMAT = "%(levelname)s:     %(name)s: %(message)s"
ACCESS_LOGGER = "shim.access"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# uvicorn's records carry their message again with terminal colours: never a field of a line.
_NEVER_FIELDS = {*RESERVED_ATTRS, "color_message", "taskName"}


def _utc(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonLines(JsonFormatter):
    """One JSON object per line, its fields in a fixed order (see the module's docstring)."""

    def __init__(self) -> None:
        super().__init__(reserved_attrs=sorted(_NEVER_FIELDS), json_ensure_ascii=False)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        log_data["time"] = _utc(record.created)
        log_data["level"] = record.levelname
        log_data["event"] = record.message
        log_data["logger"] = record.name
        during = exchange.current()
        if during is not None:
            log_data["request_id"] = during.request_id
            log_data["method"] = during.method
            log_data["client"] = during.client
        merge_record_extra(record, log_data, reserved=self._skip_fields)
        if "exc_info" in message_dict:
            log_data["exception"] = message_dict["exc_info"]
        if "stack_info" in message_dict:
            log_data["stack"] = message_dict["stack_info"]


class AccessText(logging.Formatter):
    """The access line as text: uvicorn's own (`INFO:     client - "POST /pypi HTTP/1.1" 200`), then the request's
    id, its XML-RPC method and outcome, the upstream requests made for it and its duration."""

    def format(self, record: logging.LogRecord) -> str:
        during = exchange.current()
        if during is None:  # not an access line: as the service's other lines
            return logging.Formatter(TEXT_FORMAT).format(record)
        fields = record.__dict__
        return (
            f"{record.levelname}:     {during.client} - {record.getMessage()} request_id={during.request_id} "
            f"method={during.method or '-'} outcome={fields.get('outcome') or '-'} "
            f"upstream_requests={during.upstream_requests} duration={fields.get('duration', 0.0):.6f}"
        )


def uvicorn_log_config(level: str) -> dict[str, Any]:
    """uvicorn's `log_config` for JSON lines (its default is text): its loggers, as it names them, through
    JsonLines; its access logger stays configured, though the service writes the access line itself."""
    handler = {"formatter": "json", "class": "logging.StreamHandler"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonLines}},
        "handlers": {
            "default": {**handler, "stream": "ext://sys.stderr"},
            "access": {**handler, "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": ["access"], "level": level.upper(), "propagate": False},
        },
    }
