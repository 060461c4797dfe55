"""The public index's host names never appear in the repository; only their hashes are written here."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
# First 16 hex digits of the sha256 of each banned host name (lower case), as the project's hook lists them.
BANNED = {
    "a4aa2ac280bb8d1a",
    "c899567ee9068517",
    "d6d7019ca9fcbf07",
    "9ab2ad663f3d2a5e",
    "9495278a74715c7e",
    "8b5bb5eb9d758455",
    "204ff3eaea3bd921",
    "3aa282eb004de296",
}
HOST = re.compile(rb"(?<![A-Za-z0-9.-])((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})(?![A-Za-z0-9-])")


def _banned(host: bytes) -> bool:
    return hashlib.sha256(host.lower()).hexdigest()[:16] in BANNED


def test_the_check_recognises_a_banned_name_and_passes_reserved_ones() -> None:
    from pypi_simple import PYPI_SIMPLE_ENDPOINT

    public_host = (urlsplit(PYPI_SIMPLE_ENDPOINT).hostname or "").encode()
    assert _banned(public_host)
    assert [m.group(1) for m in HOST.finditer(b"see https://" + public_host + b"/simple/")] == [public_host]
    assert not _banned(b"upstream.test") and not _banned(b"files.upstream.test")


def test_no_file_in_the_repository_names_the_public_index() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    hits = []
    for name in listed:
        path = ROOT / name
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            hits += [f"{name}:{number}" for m in HOST.finditer(line) if _banned(m.group(1))]
    assert hits == []
