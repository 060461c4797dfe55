"""Record the fake index's fixtures for a few real projects from the upstream index.

    .venv/bin/python scripts/record_fixtures.py [project ...]

The upstream is `$SHIM_UPSTREAM`, else pypi-simple's published endpoint without its `simple/`. Every
occurrence of the upstream's index and file hosts is rewritten to `upstream.test` / `files.upstream.test`.
For each project this writes, under testkit/fixtures/index/:

* `<name>.json`: the fake's state file (see testkit/fakeindex/state.py);
* `recorded/<name>.project.json`: the project JSON body, trimmed, in the upstream's own encoding;
* `recorded/<name>.simple.json`: the PEP 691 project page, trimmed to the same releases.

Trimming keeps the latest release, the two highest others and the lowest, cuts `info.description` to
DESCRIPTION_CHARS characters and empties `vulnerabilities`.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from pypi_simple import PYPI_SIMPLE_ENDPOINT

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testkit.fakeindex.state import STORED_INFO_KEYS, version_key  # noqa: E402

PROJECTS = ("starlette", "httpx", "defusedxml", "pypi-simple")
OUT = ROOT / "testkit" / "fixtures" / "index"
DESCRIPTION_CHARS = 400
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
HOSTNAME = re.compile(r"(?<![A-Za-z0-9.-])((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})(?![A-Za-z0-9-])")


def upstream() -> str:
    base = os.environ.get("SHIM_UPSTREAM") or PYPI_SIMPLE_ENDPOINT.removesuffix("simple/")
    return base if base.endswith("/") else base + "/"


def _domain(host: str) -> str:
    return ".".join(host.split(".")[-2:])


def host_rewriter(index_host: str, files_host: str) -> Any:
    """Map the index's and file host's domains (and the index's legacy `<label>.<other>` aliases) away."""
    index_domain, files_domain = _domain(index_host), _domain(files_host)
    index_label = index_host.split(".")[0]

    def rewrite(match: re.Match[str]) -> str:
        host = match.group(1)
        lower = host.lower()
        for domain in (files_domain, index_domain):
            if lower == domain or lower.endswith("." + domain):
                return lower[: -len(domain)] + "upstream.test"
        if lower.split(".")[0] == index_label:
            return "upstream.test"
        return host

    return lambda text: HOSTNAME.sub(rewrite, text)


def keep_versions(document: dict[str, Any]) -> list[str]:
    latest = document["info"]["version"]
    others = sorted((v for v in document["releases"] if v != latest), key=version_key)
    keep = {latest, *others[-2:], *others[:1]}
    return sorted(keep, key=version_key)


def file_state(file: dict[str, Any]) -> dict[str, Any]:
    prefix = "https://files.upstream.test/packages/"
    # Some mirrors serve relative URLs for some files: those are kept as they are.
    where = {"path": file["url"].removeprefix(prefix)} if file["url"].startswith(prefix) else {"url": file["url"]}
    metadata = file.get("core-metadata") or None
    return {
        "filename": file["filename"],
        "packagetype": file["packagetype"],
        "python_version": file["python_version"],
        "size": file["size"],
        "digests": file["digests"],
        "upload_time": file["upload_time_iso_8601"],
        "comment_text": file["comment_text"],
        "core_metadata_sha256": metadata["sha256"] if metadata else None,
        **where,
    }


def state_file(document: dict[str, Any]) -> dict[str, Any]:
    info = document["info"]
    latest = info["version"]
    latest_info = {key: info[key] for key in STORED_INFO_KEYS}
    releases = []
    for version, files in document["releases"].items():
        times = sorted(f["upload_time_iso_8601"] for f in files)
        release: dict[str, Any] = {
            "version": version,
            "created": times[0] if times else min(f["upload_time_iso_8601"] for f in document["urls"]),
            "yanked": any(f["yanked"] for f in files),
            "yanked_reason": next((f["yanked_reason"] for f in files if f["yanked_reason"]), None),
        }
        if version == latest:
            release["info"] = latest_info
        else:
            # The per-version JSON route is not reachable when recording: this release's own metadata is
            # unknown. The latest release's info stands in, with requires_python taken from its files.
            release["_info"] = "not recorded: the latest release's info with this release's requires_python"
            release["info"] = {**latest_info, "requires_python": files[0]["requires_python"] if files else None}
        release["files"] = [file_state(f) for f in files]
        releases.append(release)
    return {
        "_recorded": "Recorded by scripts/record_fixtures.py; release `created` = its first upload time.",
        "name": info["name"],
        "last_serial": document["last_serial"],
        "created": min(r["created"] for r in releases),
        "ownership": document["ownership"],
        "releases": releases,
    }


def record(client: httpx.Client, name: str) -> None:
    project_response = client.get(f"pypi/{name}/json")
    project_response.raise_for_status()
    simple_response = client.get(f"simple/{name}/", headers={"Accept": SIMPLE_JSON})
    simple_response.raise_for_status()
    raw = project_response.json()
    urls = [f["url"] for files in raw["releases"].values() for f in files]
    hosts = {urlsplit(url).hostname for url in urls + [f["url"] for f in simple_response.json()["files"]]}
    files_host = sorted(h for h in hosts if h)[0]
    rewrite = host_rewriter(urlsplit(str(client.base_url)).hostname or "", files_host)
    document = json.loads(rewrite(project_response.text))
    simple = json.loads(rewrite(simple_response.text))

    kept = keep_versions(document)
    document["releases"] = {v: document["releases"][v] for v in sorted(kept)}
    document["info"]["description"] = (document["info"]["description"] or "")[:DESCRIPTION_CHARS]
    document["vulnerabilities"] = []
    kept_files = {f["filename"] for files in document["releases"].values() for f in files}
    simple["files"] = [f for f in simple["files"] if f["filename"] in kept_files]
    simple["versions"] = [v for v in simple["versions"] if v in kept]

    (OUT / "recorded").mkdir(parents=True, exist_ok=True)
    normalized = simple["name"]
    # The upstream's own encoding (checked to reproduce its bodies) so the golden files stay recordings.
    (OUT / "recorded" / f"{normalized}.project.json").write_text(json.dumps(document) + "\n", encoding="utf-8")
    (OUT / "recorded" / f"{normalized}.simple.json").write_text(json.dumps(simple) + "\n", encoding="utf-8")
    state = json.dumps(state_file(document), indent=1, ensure_ascii=False)
    (OUT / f"{normalized}.json").write_text(state + "\n", encoding="utf-8")
    print(f"{name}: kept {', '.join(kept)}")


def main(argv: list[str]) -> int:
    with httpx.Client(base_url=upstream(), timeout=60, follow_redirects=True) as client:
        for name in argv or PROJECTS:
            record(client, name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
