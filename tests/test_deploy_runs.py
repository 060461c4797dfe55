"""The command each of deploy/'s files runs (the Dockerfile's CMD, compose's services, the Deployment's container),
started here exactly as written, with the environment it sets: container paths mapped to folders of the test's,
the upstream a fake index on 127.0.0.1, Redis a real redis-server on 127.0.0.1, the container's port a free one
(given in PORT, as a platform does). Where the machine allows (tests/deploy_runner.py), each runs as the image's user
on a read-only root filesystem with only its volumes writable. Each must answer /readyz on a non-loopback address
of this machine, which is what a container's SHIM_HOST is for."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis

from testkit.fakeindex import FakeIndex
from testkit.redisserver import RedisServer, redis_server_path
from testkit.servers import free_port, serve_in_thread, wait_until_answering
from testkit.shimprocess import stop

from .deploy_files import (
    cmd,
    compose,
    container,
    healthcheck,
    image_env,
    mapped_env,
    non_loopback_ipv4,
    pod_env,
    user,
    volume_folders,
    volumes,
)
from .deploy_runner import Confinement, Started, confinement_unavailable, run_check, started

ADDRESS = non_loopback_ipv4()
CONFINEMENT = confinement_unavailable()  # why not, or None

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(ADDRESS is None, reason="this machine has no non-loopback IPv4 address to ask /readyz on"),
    # pytest-socket lets the tests reach 127.0.0.1 only: this machine's own other address too, for these.
    pytest.mark.allow_hosts(["127.0.0.1", ADDRESS or "127.0.0.1"]),
]


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder for the volumes, which the image's user may traverse (tmp_path's parents are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="shim-deploy-"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def upstream() -> Iterator[tuple[FakeIndex, str]]:
    fake = FakeIndex()
    with serve_in_thread(fake) as url:
        fake.set_urls(url + "/")
        yield fake, url + "/"


def confinement(folders: dict[str, Path], uid: int, gid: int) -> Confinement | None:
    return None if CONFINEMENT is not None else Confinement(uid, gid, tuple(folders.values()))


def image_user() -> tuple[int, int]:
    uid, gid = user()
    return int(uid), int(gid)


def at(url: str, port: int) -> str:
    """`url` with its host and port those of a server on 127.0.0.1 (a container's service name, here)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))


def assert_a_check_passes_then_fails_once_stopped(
    shim: Started, check: list[str], env: dict[str, str], limits: Confinement | None
) -> None:
    passed = run_check(check, env, limits)
    assert passed.returncode == 0, passed.stderr
    stop(shim.process)
    assert run_check(check, env, limits).returncode != 0  # nothing answers: the check says so


def test_the_images_command_and_environment_answer_readyz_beyond_loopback(
    base: Path, upstream: tuple[FakeIndex, str]
) -> None:
    _, index = upstream
    folders = volume_folders(base)
    env = {**mapped_env(image_env(), folders), "SHIM_UPSTREAM": index, "PORT": str(free_port())}
    limits = confinement(folders, *image_user())
    assert ADDRESS is not None
    with started(cmd(), env, host=ADDRESS, confinement=limits) as shim:
        assert shim.get("/readyz").json() == {"ready": True}
        assert shim.rpc("package_releases", "roundup") == ["1.6.1"]
        assert_a_check_passes_then_fails_once_stopped(shim, healthcheck()[1], env, limits)
    assert Path(env["SHIM_CATALOG_PATH"]).parent == folders["/var/lib/pypi-xmlrpc-shim"]
    assert Path(env["SHIM_CATALOG_PATH"]).is_file()


def test_without_the_images_shim_host_nothing_answers_beyond_loopback(
    base: Path, upstream: tuple[FakeIndex, str]
) -> None:
    # What SHIM_HOST=0.0.0.0 is for: with README's default, the address the test asks is refused.
    folders = volume_folders(base)
    env = {**mapped_env(image_env(), folders), "SHIM_UPSTREAM": upstream[1], "PORT": str(free_port())}
    del env["SHIM_HOST"]
    with started(cmd(), env, host="127.0.0.1") as shim, pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{ADDRESS}:{shim.port}/readyz", timeout=5)


def owned_by(uid: int, root: Path) -> list[Path]:
    """What `uid` owns under `root`."""
    found = []
    for folder, names, files in os.walk(root):
        found += [Path(folder) / name for name in names + files if (Path(folder) / name).lstat().st_uid == uid]
    return found


@pytest.mark.skipif(CONFINEMENT is not None, reason=str(CONFINEMENT))
@pytest.mark.parametrize("workers", [1, 2])
def test_on_a_read_only_root_the_image_writes_only_in_its_volumes(
    base: Path, upstream: tuple[FakeIndex, str], workers: int
) -> None:
    folders = volume_folders(base)
    env = {**mapped_env(image_env(), folders), "SHIM_UPSTREAM": upstream[1], "PORT": str(free_port())}
    uid, gid = image_user()
    if workers > 1:  # as an operator may set it: the metrics folder (prometheus_client's multiprocess mode) is used
        env["SHIM_WORKERS"] = str(workers)
    assert ADDRESS is not None
    with started(cmd(), env, host=ADDRESS, confinement=Confinement(uid, gid, tuple(folders.values()))) as shim:
        assert shim.rpc("package_releases", "roundup") == ["1.6.1"]
        catalog = shim.get("/healthz").json()["catalog"]
        assert catalog["problem"] is None and catalog["writable"] is not False  # a standby worker has not written
        output = shim.output()
    for refusal in ("Read-only file system", "Permission denied", "Traceback", "died"):
        assert refusal not in output, output
    written = {path.name for path in folders["/var/lib/pypi-xmlrpc-shim"].iterdir()}
    assert {"catalog.sqlite3", "catalog.sqlite3.writer.lock"} <= written
    assert list(folders["/tmp"].iterdir()) == []  # nothing of the service's own goes to TMPDIR
    # The root filesystem refused every other write; what a container keeps writable besides its volumes (its
    # /dev/shm) holds nothing new of the user's either.
    assert owned_by(uid, Path("/dev/shm")) == []


def test_composes_replicas_and_redis_as_written_share_one_catalog_and_one_redis(
    base: Path, upstream: tuple[FakeIndex, str]
) -> None:
    services = compose()["services"]
    redis_command = services["redis"]["command"]
    if redis_server_path() is None or shutil.which(redis_command[0], path="/usr/bin:/usr/sbin:/usr/local/bin") is None:
        pytest.skip("redis-server is not installed (scripts/test installs Debian's redis-server when run as root)")
    fake, index = upstream
    port = free_port()
    local = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(base), "--daemonize", "no"]
    redis_process = subprocess.Popen([*redis_command, *local], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while not _pings(client) and time.monotonic() < deadline:
            time.sleep(0.05)
        config = client.config_get("maxmemory*")
        assert (config["maxmemory"], config["maxmemory-policy"]) == (str(2**30), "allkeys-lru")  # as compose says
        with two_replicas(services["shim"], base, index, port) as replicas:
            roles = sorted(shim.get("/healthz").json()["catalog"]["role"] for shim, _, _ in replicas)
            assert roles == ["standby", "writer"]  # one writer of the one catalog
            for shim, env, limits in replicas:
                assert shim.get("/healthz").json()["shared"]["state"] == "shared"
                assert shim.rpc("package_releases", "roundup") == ["1.6.1"]
                check = run_check(services["shim"]["healthcheck"]["test"][1:], env, limits)
                assert check.returncode == 0, check.stderr
            assert fake.count("/pypi/roundup/json") == 1  # asked of the upstream once, for both
    finally:
        stop(redis_process)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@contextlib.contextmanager
def two_replicas(
    service: dict[str, Any], base: Path, index: str, redis_port: int
) -> Iterator[list[tuple[Started, dict[str, str], Confinement | None]]]:
    """The service's replicas, each with the one named volume (the catalog) and tmpfs folders of its own."""
    catalog = base / "catalog"
    catalog.mkdir()
    shared = {mount.split(":")[1]: catalog for mount in service["volumes"]}
    uid, gid = image_user()
    assert ADDRESS is not None
    with contextlib.ExitStack() as stack:
        replicas = []
        for replica in range(service["deploy"]["replicas"]):
            own = volume_folders(base / f"replica-{replica}")
            folders = {**own, **shared}
            env = mapped_env({**image_env(), **service["environment"]}, folders)
            env.update(SHIM_UPSTREAM=index, PORT=str(free_port()), SHIM_CACHE_URL=at(env["SHIM_CACHE_URL"], redis_port))
            assert set(folders) == set(volumes())
            limits = confinement(folders, uid, gid)
            shim = stack.enter_context(started(service["command"], env, host=ADDRESS, confinement=limits))
            replicas.append((shim, env, limits))
        yield replicas


def test_the_pods_command_with_its_config_map_and_secret_passes_its_probes_redis_or_not(
    base: Path, upstream: tuple[FakeIndex, str]
) -> None:
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed (scripts/test installs Debian's redis-server when run as root)")
    _, index = upstream
    written = pod_env()
    # The Secret's Redis, here: one that asks for the Secret's password, so that the pod is seen to send it.
    secret_redis = RedisServer(base, password=written["SHIM_CACHE_PASSWORD"])
    secret_redis.start()
    try:
        folders = volume_folders(base / "pod")
        env = mapped_env({**image_env(), **written}, folders)
        env.update(
            SHIM_UPSTREAM=index, PORT=str(free_port()), SHIM_CACHE_URL=at(env["SHIM_CACHE_URL"], secret_redis.port)
        )
        pod = container()
        context = pod["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        # The pod's user is the image's (tests/test_deploy_containers.py): the Deployment's runAsUser/runAsGroup.
        uid, gid = image_user()
        assert ADDRESS is not None
        with started(pod["command"], env, host=ADDRESS, confinement=confinement(folders, uid, gid)) as shim:
            assert shim.get("/healthz").json()["shared"]["state"] == "shared"  # the Secret's password accepted
            for name in ("startupProbe", "readinessProbe", "livenessProbe"):  # as the kubelet asks: pod IP, port
                assert shim.get(pod[name]["httpGet"]["path"]).status_code == 200, name
            secret_redis.kill()  # Redis goes away: no probe fails, so no pod is restarted or taken out of rotation
            assert wait_until_answering(shim.base, shim.process, path="/healthz", timeout=5)
            for name in ("livenessProbe", "readinessProbe"):
                started_at = time.monotonic()
                assert shim.get(pod[name]["httpGet"]["path"]).status_code == 200, name
                assert time.monotonic() - started_at < pod[name]["timeoutSeconds"], name
            assert _degraded_within(shim, 10)
    finally:
        secret_redis.kill()


def _degraded_within(shim: Started, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if shim.get("/healthz").json()["degraded"] == ["shared"]:
            return True
        time.sleep(0.1)
    return False
