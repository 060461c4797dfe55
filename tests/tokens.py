"""A known token, put where the upstream's credentials can come from, and the checks that no output holds it."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

from shim.upstream.urls import REDACTED

TOKEN = "s3cr3t-T0KEN-4242"
UPSTREAM_WITH_TOKEN = f"https://deploy:{TOKEN}@upstream.test/simple/"
# The same secret with characters that must be percent-encoded in a URL.
ENCODED_SECRET = "s3cr3t/T0KEN-4242:@"
UPSTREAM_WITH_ENCODED_TOKEN = f"https://deploy:{quote(ENCODED_SECRET, safe='')}@upstream.test/simple/"
REDACTED_FORM = f"deploy:{REDACTED}@upstream.test"
# Malformed upstreams whose credentials hold a character a URL parser splits at (/ ? #), white space, or `[`: in
# the password (the token on both sides of it, so that half of it shown is caught) and in the user name.
UNENCODED = ("/", "?", "#", " ", "\t", "[")
MALFORMED_CREDENTIALS = [
    *(f"https://deploy:{TOKEN}{c}{TOKEN}@upstream.test/" for c in UNENCODED),
    *(f"https://de{c}ploy:{TOKEN}@upstream.test/simple/" for c in UNENCODED),
]
SUBPROCESS_TIMEOUT = 30


def forbidden() -> set[str]:
    return {
        TOKEN,
        quote(TOKEN, safe=""),
        ENCODED_SECRET,
        quote(ENCODED_SECRET, safe=""),
        quote(ENCODED_SECRET),
        "T0KEN-4242",  # the distinctive core: catches any partial or differently encoded copy
    }


def assert_no_token(text: str | bytes, where: str = "output") -> None:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for secret in forbidden():
        assert secret not in text, f"the token appears in {where}: {text!r}"


def assert_none_has_token(outputs: Iterable[tuple[str, str | bytes]]) -> None:
    for where, text in outputs:
        assert_no_token(text, where)


def token_env(**extra: str) -> dict[str, str]:
    """This process's environment, with the token in both places the upstream can come from."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIM_", "PIP_INDEX_URL")) and k != "PORT"}
    env.update(
        SHIM_UPSTREAM=UPSTREAM_WITH_TOKEN,
        PIP_INDEX_URL=UPSTREAM_WITH_TOKEN,
        PIP_CONFIG_FILE=os.devnull,
        COLUMNS="200",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def files_under(root: Path) -> list[tuple[str, bytes]]:
    return [(str(path), path.read_bytes()) for path in sorted(root.rglob("*")) if path.is_file()]
