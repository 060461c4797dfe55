"""deploy/ read as its tools read it: the Dockerfile's instructions (dockerfile-parse), the compose file and the
Kubernetes manifests (PyYAML); and each one's command with the environment it sets, its container paths mapped to a
test's folders, for the tests that run it (tests/test_deploy_runs.py)."""

from __future__ import annotations

import fcntl
import ipaddress
import json
import shlex
import socket
import struct
import sys
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
KUBERNETES = DEPLOY / "kubernetes"
VENV_BIN = Path(sys.executable).parent  # where the image's virtual environment's bin/ is, on this machine

Document = dict[str, Any]


def yaml_files() -> list[Path]:
    return sorted(path for path in DEPLOY.rglob("*") if path.suffix in (".yaml", ".yml"))


@cache
def load_yaml(path: Path) -> list[Any]:
    """Its documents, parsed once per test process: a test that changes one changes a deep copy."""
    return list(yaml.safe_load_all(path.read_text(encoding="utf-8")))


# --- the Dockerfile -------------------------------------------------------------------------------------------------


@cache
def _parsed() -> tuple[tuple[str, str], ...]:
    parser = DockerfileParser(str(DOCKERFILE))
    return tuple((step["instruction"], step["value"]) for step in parser.structure if step["instruction"] != "COMMENT")


def stages() -> list[list[tuple[str, str]]]:
    """Each build stage's instructions, its FROM first."""
    found: list[list[tuple[str, str]]] = []
    for instruction, value in _parsed():
        if instruction == "FROM":
            found.append([])
        found[-1].append((instruction, value))
    return found


def final(instruction: str) -> list[str]:
    """The values of `instruction` in the image's own (last) stage, in order."""
    return [value for name, value in stages()[-1] if name == instruction]


def exec_form(value: str) -> list[str]:
    """An instruction's exec form (a JSON array); anything else is a shell form, refused."""
    words = json.loads(value)
    assert isinstance(words, list) and all(isinstance(word, str) for word in words), value
    return words


def image_env() -> dict[str, str]:
    """The final stage's ENV, as Docker sets it (`$PATH` left for the caller to map)."""
    env: dict[str, str] = {}
    for value in final("ENV"):
        for word in shlex.split(value):
            name, _, text = word.partition("=")
            env[name] = text
    return env


def volumes() -> list[str]:
    return [path for value in final("VOLUME") for path in exec_form(value)]


def user() -> tuple[str, str]:
    (value,) = final("USER")
    name, _, group = value.partition(":")
    return name, group


def healthcheck() -> tuple[dict[str, str], list[str]]:
    """The HEALTHCHECK's options and its command (exec form)."""
    (value,) = final("HEALTHCHECK")
    words = value.split()
    options = {}
    while words[0].startswith("--"):
        name, _, text = words.pop(0)[2:].partition("=")
        options[name] = text
    assert words[0] == "CMD", value
    return options, exec_form(" ".join(words[1:]))


def cmd() -> list[str]:
    (value,) = final("CMD")
    return exec_form(value)


# --- compose and Kubernetes -----------------------------------------------------------------------------------------


def compose() -> Document:
    (document,) = load_yaml(COMPOSE)
    assert isinstance(document, dict)
    return document


def manifest_files() -> list[Path]:
    (kustomization,) = load_yaml(KUBERNETES / "kustomization.yaml")
    return [KUBERNETES / name for name in kustomization["resources"]]


def manifests() -> dict[str, Document]:
    """The manifests kustomization.yaml lists, by kind (one of each)."""
    found: dict[str, Document] = {}
    for path in manifest_files():
        for document in load_yaml(path):
            assert document["kind"] not in found, document["kind"]
            found[document["kind"]] = document
    return found


def container() -> Document:
    (only,) = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert isinstance(only, dict)
    return only


def pod_env() -> dict[str, str]:
    """The Deployment's container environment: its envFrom sources, in order (a later one wins, as in Kubernetes)."""
    kinds = manifests()
    env: dict[str, str] = {}
    for source in container()["envFrom"]:
        if "configMapRef" in source:
            assert source["configMapRef"]["name"] == kinds["ConfigMap"]["metadata"]["name"]
            env.update(kinds["ConfigMap"]["data"])
        else:
            assert source["secretRef"]["name"] == kinds["Secret"]["metadata"]["name"]
            env.update(kinds["Secret"]["stringData"])
    return env


# --- running them here ----------------------------------------------------------------------------------------------


def mapped_env(env: dict[str, str], folders: dict[str, Path]) -> dict[str, str]:
    """`env` with each path under a container folder (a VOLUME, the image's bin/) moved to this machine's folder
    for it, and `$PATH` as this machine's; every other value as written."""
    moved = {}
    for name, value in env.items():
        if name == "PATH":
            first, _, rest = value.partition(":")
            assert rest == "$PATH" and first.endswith("/bin"), value  # the image's own bin/ first
            moved[name] = f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"
            continue
        moved[name] = value
        for inside, outside in folders.items():
            if value == inside or value.startswith(inside.rstrip("/") + "/"):
                moved[name] = str(outside / PurePosixPath(value).relative_to(inside))
    return moved


def volume_folders(base: Path) -> dict[str, Path]:
    """A folder under `base` for each VOLUME of the image, created."""
    folders = {}
    for volume in volumes():
        folder = base / volume.strip("/").replace("/", "-")
        folder.mkdir(parents=True)
        folders[volume] = folder
    return folders


def non_loopback_ipv4() -> str | None:
    """An IPv4 address of one of this machine's interfaces that is not a loopback one, read from the interfaces
    (SIOCGIFADDR), without sending anything."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
            except OSError:  # no IPv4 address on it
                continue
            address = ipaddress.IPv4Address(packed[20:24])
            if not address.is_loopback and not address.is_unspecified:
                return str(address)
    return None
