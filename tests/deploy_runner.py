"""Running a deploy/ file's command here as its container would: its argv as written, the environment it sets, and,
where this machine allows it (root, with mount namespaces), as the image's user on a read-only root filesystem with
only the volume folders writable: `unshare --mount`, the folders bound onto themselves, `/` remounted read-only,
then `setpriv` to the user, with no new privileges. The network stays the machine's: the test asks /readyz on a
non-loopback address of it."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import xmlrpc.client
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import httpx

from testkit.servers import wait_until_answering
from testkit.shimprocess import stop

__all__ = ["Confinement", "Started", "confinement_unavailable", "run_check", "started"]

START_TIMEOUT = 30.0

# Bind each folder given onto itself (its own mount, left writable); where this machine's interpreter lives under a
# folder only root may enter (pyenv's, in /root), show the user that folder with only the interpreter's part in it,
# read-only, as the image's /usr/local is everyone's; remount / read-only; then become the user.
_CONFINE = """set -e
count=$1; shift
while [ "$count" -gt 0 ]; do mount --bind "$1" "$1"; shift; count=$((count - 1)); done
hidden=$1; view=$2; part=$3; shift 3
if [ -n "$hidden" ]; then
    mount --bind "$hidden/$part" "$view/$part"
    mount -o remount,bind,ro "$view/$part"
    mount --rbind "$view" "$hidden"
fi
mount -o remount,bind,ro /
uid=$1; gid=$2; shift 2
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs -- "$@"
"""


@dataclasses.dataclass(frozen=True)
class Confinement:
    """The container's limits: its user, and the only folders it may write (its volumes)."""

    uid: int
    gid: int
    writable: tuple[Path, ...]

    def own(self) -> None:
        """The volume folders made the user's, as the image's RUN (or Kubernetes' fsGroup) makes them; the folders
        above them only traversable."""
        for folder in self.writable:
            os.chown(folder, self.uid, self.gid)
            folder.chmod(0o700)
            for parent in folder.parents:
                if parent == Path(tempfile.gettempdir()):
                    break
                parent.chmod(parent.stat().st_mode | 0o011)

    def wrap(self, argv: Sequence[str], view: Path) -> list[str]:
        folders = [str(folder) for folder in self.writable]
        prefix = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _CONFINE, "confine"]
        shown = _interpreter_shown(view)
        return [*prefix, str(len(folders)), *folders, *shown, str(self.uid), str(self.gid), *argv]


def _interpreter_shown(view: Path) -> list[str]:
    """(hidden folder, `view`, the part of it to show) when the interpreter's prefix lies under a folder that others
    may not enter, made ready in `view`; three empty words when it does not."""
    prefix = Path(os.path.realpath(sys.base_prefix))
    for folder in reversed(prefix.parents):
        if folder != prefix and not folder.stat().st_mode & 0o001:
            part = prefix.relative_to(folder).parts[0]
            (view / part).mkdir(parents=True)
            view.chmod(0o711)
            return [str(folder), str(view), part]
    return ["", "", ""]


def confinement_unavailable() -> str | None:
    """Why a read-only root filesystem cannot be had here, or None when it can."""
    if os.geteuid() != 0:
        return "a read-only root filesystem needs root here (a mount namespace): the tests run as root in CI"
    for tool in ("unshare", "setpriv", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} (util-linux) is not installed"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "mount", "-o", "remount,bind,ro", "/"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    if probe.returncode != 0:
        return f"this machine refuses a mount namespace: {probe.stderr.decode(errors='replace').strip()}"
    return None


@dataclasses.dataclass
class Started:
    """A command serving on `host`:`port`, its output in `log`."""

    process: subprocess.Popen[bytes]
    log: IO[bytes]
    host: str
    port: int

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def get(self, path: str, *, timeout: float = 10.0) -> httpx.Response:
        with httpx.Client(trust_env=False, timeout=timeout) as client:
            return client.get(self.base + path)

    def rpc(self, method: str, *params: Any) -> Any:
        with xmlrpc.client.ServerProxy(self.base + "/pypi") as proxy:
            return getattr(proxy, method)(*params)


@contextlib.contextmanager
def started(
    argv: Sequence[str], env: dict[str, str], *, host: str, confinement: Confinement | None = None
) -> Iterator[Started]:
    """`argv` with exactly `env` (its PATH finds the program), answering /readyz on `host` at the port its PORT
    names; stopped (SIGTERM, then SIGKILL) on exit."""
    with tempfile.TemporaryFile() as log, tempfile.TemporaryDirectory() as view:
        if confinement is not None:
            confinement.own()
            argv = confinement.wrap(argv, Path(view) / "shown")
        process = subprocess.Popen(list(argv), env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        running = Started(process, log, host, int(env["PORT"]))
        try:
            answering = wait_until_answering(running.base, process, path="/readyz", timeout=START_TIMEOUT)
            assert answering, f"exit status {process.poll()}: {running.output()}"
            yield running
        finally:
            stop(process)


def run_check(
    argv: Sequence[str], env: dict[str, str], confinement: Confinement | None = None
) -> subprocess.CompletedProcess[str]:
    """A health check's command, as the engine runs it in the container: with its environment and limits; its exit
    status decides."""
    with tempfile.TemporaryDirectory() as view:
        if confinement is not None:
            argv = confinement.wrap(argv, Path(view) / "shown")
        return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=30, check=False)
