"""Run the real bandersnatch (6.6.0, XML-RPC mode) against a service, in a child process, and read the mirror.

bandersnatch calls `<master>/pypi` (XML-RPC: `list_packages_with_serial` on a first sync, `changelog_since_serial`
after), GETs `<master>/pypi/<name>/json` requiring `X-PyPI-Last-Serial` >= the listed serial, and downloads each
file from the JSON's absolute `url`, whose path must start with `/packages/` (it becomes `web/packages/...`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

# Variables that would route the child's requests elsewhere or reconfigure it (aiohttp runs with trust_env).
_DROPPED = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ws_proxy", "wss_proxy")

FULL_SYNC = "Syncing all packages."
CHANGELOG_SYNC = "Syncing based on changelog."


@dataclass(frozen=True)
class BandersnatchRun:
    mirror_dir: Path
    returncode: int
    output: str  # stdout and stderr, interleaved: bandersnatch logs to stderr
    serial: int | None  # the `status` file after the run: the serial the mirror reached, None when absent

    @property
    def web(self) -> Path:
        return self.mirror_dir / "web"

    @property
    def full_sync(self) -> bool:
        return FULL_SYNC in self.output

    @property
    def changelog_sync(self) -> bool:
        return CHANGELOG_SYNC in self.output

    @property
    def errors(self) -> list[str]:
        """Logged ERROR lines (a failed package leaves the status file untouched, yet exits 0 without stop-on-error)."""
        return [line for line in self.output.splitlines() if " ERROR: " in line]

    def simple_page(self, project: str) -> Path:
        return self.web / "simple" / canonicalize_name(project) / "index.html"

    def json_file(self, project: str) -> Path:
        return self.web / "json" / canonicalize_name(project)

    def package_files(self) -> list[Path]:
        """Every downloaded file, under `web/packages/` (the download URL's path, from `/packages/` on)."""
        return sorted(p for p in (self.web / "packages").rglob("*") if p.is_file())

    def check(self) -> None:
        """Fail with the whole log unless the run exited 0, logged no error and recorded a serial."""
        assert self.returncode == 0 and not self.errors and self.serial is not None, self.output


def write_config(
    path: Path, master_url: str, mirror_dir: Path, packages: list[str], *, stop_on_error: bool = True
) -> None:
    allowlist = "".join(f"\n    {name}" for name in packages)
    path.write_text(
        "[mirror]\n"
        f"directory = {mirror_dir}\n"
        f"master = {master_url.rstrip('/')}\n"
        "allow-non-https = true\n"
        "json = true\n"
        "release-files = true\n"
        "workers = 1\n"
        "timeout = 10\n"
        "global-timeout = 60\n"
        f"stop-on-error = {'true' if stop_on_error else 'false'}\n"
        "\n[plugins]\n"
        "enabled =\n    allowlist_project\n"
        f"\n[allowlist]\npackages ={allowlist}\n",
        encoding="utf-8",
    )


def child_environment() -> dict[str, str]:
    """This process's environment without pip's or proxy settings, and with no ~/.netrc credentials."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k.lower() not in _DROPPED}
    environ["NETRC"] = os.devnull
    return environ


def read_serial(mirror_dir: Path) -> int | None:
    try:
        return int((mirror_dir / "status").read_text(encoding="ascii").strip())
    except FileNotFoundError:
        return None


def run_bandersnatch(
    master_url: str,
    mirror_dir: Path,
    packages: list[str],
    *,
    timeout: float = 120,
    stop_on_error: bool = True,
    python: str = sys.executable,
) -> BandersnatchRun:
    """`python -m bandersnatch -c <conf> mirror` once, mirroring only `packages` from `master_url` into `mirror_dir`.

    Run it again on the same `mirror_dir` for an incremental (changelog) sync. The config lives beside the mirror,
    so the mirror directory holds nothing bandersnatch did not write.
    """
    mirror_dir.mkdir(parents=True, exist_ok=True)
    config = mirror_dir.with_name(mirror_dir.name + ".conf")
    write_config(config, master_url, mirror_dir, packages, stop_on_error=stop_on_error)
    command = [python, "-m", "bandersnatch", "-c", str(config), "mirror"]
    try:
        done = subprocess.run(
            command,
            env=child_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else exc.output or ""
        raise AssertionError(f"bandersnatch did not finish within {timeout} s:\n{output}") from None
    return BandersnatchRun(mirror_dir, done.returncode, done.stdout, read_serial(mirror_dir))
