"""What the rate-limit tests share: the call they post, PyPI's refusal of it, and one round trip of it."""

from __future__ import annotations

import re
import xmlrpc.client
from typing import Any

import httpx
from starlette.testclient import TestClient

__all__ = ["CALL", "REFUSAL", "post"]

CALL = xmlrpc.client.dumps(("x",), methodname="package_hosting_mode").encode()
REFUSAL = re.compile(
    r"HTTPTooManyRequests: The action could not be performed because there were too many requests by the client\. "
    r"Limit may reset in (\d+) seconds\."
)


def post(client: TestClient | httpx.Client, body: bytes = CALL, /, **headers: str) -> tuple[Any, httpx.Response]:
    """The answer's value, or its fault as (code, string), and the response."""
    response = client.post("/pypi", content=body, headers={"Content-Type": "text/xml", **headers})
    try:
        return xmlrpc.client.loads(response.content)[0][0], response
    except xmlrpc.client.Fault as fault:
        return (fault.faultCode, fault.faultString), response
