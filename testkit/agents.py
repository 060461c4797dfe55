"""XML-RPC calls as the clients that still make them send them: each with its own User-Agent, so that the service
counts it under that client's family (shim.metrics.clients). For the status page's browser test and screenshot."""

from __future__ import annotations

import xmlrpc.client
from typing import Any

import httpx

__all__ = ["AGENTS", "call_as"]

# A User-Agent of each family, as the client sends it.
AGENTS = {
    "pip": 'pip/24.2 {"ci":null,"cpu":"x86_64","implementation":{"name":"CPython","version":"3.11.2"}}',
    "bandersnatch": "bandersnatch/6.6.0 (cpython 3.11.2-final0, Linux x86_64)",
    "qypi": "qypi/0.6.1 (https://github.com/jwodder/qypi) requests/2.32.3",
    "python-xmlrpc": "Python-xmlrpc/3.11",
    "requests": "python-requests/2.32.3",
}


def call_as(base: str, agent: str, method: str, *params: Any, path: str = "/pypi") -> Any:
    """One call to the service at `base` with this User-Agent: its value, or the Fault it answered."""
    body = xmlrpc.client.dumps(params, methodname=method, allow_none=True).encode()
    with httpx.Client(trust_env=False, timeout=30) as client:
        answer = client.post(base + path, content=body, headers={"Content-Type": "text/xml", "User-Agent": agent})
    answer.raise_for_status()
    try:
        return xmlrpc.client.loads(answer.content, use_builtin_types=True)[0][0]
    except xmlrpc.client.Fault as fault:
        return fault


def a_few_calls(base: str) -> int:
    """What a few clients call, a fault or two among them (a method PyPI never had, a wrong argument): the number
    of calls made."""
    calls: list[tuple[str, str, tuple[Any, ...]]] = [
        ("bandersnatch", "list_packages_with_serial", ()),
        ("bandersnatch", "changelog_last_serial", ()),
        ("pip", "search", ({"name": "roundup"}, "or")),
        ("qypi", "package_releases", ("roundup",)),
        ("qypi", "release_data", ("roundup", "1.5.1")),
        ("qypi", "release_urls", ("roundup", "1.5.1")),
        ("python-xmlrpc", "list_packages", ()),
        ("python-xmlrpc", "package_releases", ("roundup", True)),
        ("python-xmlrpc", "package_releases", (1,)),
        ("requests", "release_downloads", ("roundup", "1.5.1")),
    ]
    for family, method, params in calls:
        call_as(base, AGENTS[family], method, *params)
    return len(calls)
