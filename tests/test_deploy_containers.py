"""deploy/ for containers and Kubernetes, checked without a container engine: every YAML file parses, the Kubernetes
manifests validate against the API's schemas (kubernetes-validate, offline and strict), compose.yaml against the
compose specification's schema (vendored by check-jsonschema), and the Dockerfile's instructions, probes, ports,
volumes and security settings agree with each other and with the service. tests/test_deploy_runs.py runs them."""

from __future__ import annotations

import copy
import functools
import json
import re
import tomllib
from importlib.resources import files
from pathlib import PurePosixPath
from typing import Any

import pytest

from shim.config.defaults import PORT
from shim.config.registry import REGISTRY
from shim.config.settings import Settings

from .deploy_files import (
    COMPOSE,
    KUBERNETES,
    ROOT,
    Document,
    cmd,
    compose,
    container,
    final,
    healthcheck,
    image_env,
    load_yaml,
    manifest_files,
    manifests,
    pod_env,
    stages,
    user,
    volumes,
    yaml_files,
)
from .helpers import UPSTREAM

KUBERNETES_VERSION = "1.30"  # the oldest still supported upstream when this was written; the manifests use no newer API
SETTINGS = {setting.env: setting for setting in REGISTRY}


# --- every YAML file, and the schemas ---------------------------------------------------------------------------------


def test_every_yaml_file_under_deploy_parses() -> None:
    found = {path.relative_to(ROOT).as_posix() for path in yaml_files()}
    assert {"deploy/compose.yaml", "deploy/kubernetes/kustomization.yaml", "deploy/kubernetes/deployment.yaml"} <= found
    for path in yaml_files():
        assert all(isinstance(document, dict) for document in load_yaml(path)), path


def test_kustomization_lists_every_manifest_once_and_one_of_each_kind() -> None:
    listed = {path.name for path in manifest_files()}
    assert listed == {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    kinds = {"ConfigMap", "Secret", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    assert set(manifests()) == kinds


# The validators (jsonschema underneath) are imported by the tests that use them, not at collection: the fast stage's
# every worker collects this module, and only one runs these.


@pytest.mark.parametrize("kind", sorted(manifests()))
def test_each_manifest_validates_against_the_kubernetes_schemas_strictly(kind: str) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(manifests()[kind], KUBERNETES_VERSION, strict=True)


def test_the_kubernetes_check_finds_a_misspelt_field() -> None:
    import kubernetes_validate

    deployment = copy.deepcopy(manifests()["Deployment"])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {"httpGet": {"path": "/healthz"}}
    with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@functools.cache
def compose_validator() -> Any:
    """A validator of the compose specification's schema as check-jsonschema vendors it (its CLI's
    `--builtin-schema vendor.compose-spec`)."""
    import jsonschema

    vendored = files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(vendored.read_text(encoding="utf-8"))
    return jsonschema.validators.validator_for(schema)(schema)


def test_compose_validates_against_the_compose_specification() -> None:
    compose_validator().validate(compose())


def test_the_compose_check_finds_a_misspelt_key() -> None:
    import jsonschema

    document = copy.deepcopy(compose())
    document["services"]["shim"]["read-only"] = True
    with pytest.raises(jsonschema.ValidationError, match="read-only"):
        compose_validator().validate(document)


# --- the Dockerfile ---------------------------------------------------------------------------------------------------


def test_every_stage_starts_from_a_slim_python_pinned_to_its_patch_version() -> None:
    bases = [value.split()[0] for stage in stages() for name, value in stage if name == "FROM"]
    assert len(bases) == 2 and len(set(bases)) == 1, bases  # a builder, then the image, on one base
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", bases[0]), bases[0]


def test_the_builder_makes_the_wheel_and_the_image_installs_it_not_the_source() -> None:
    builder, image = stages()
    assert any("pip wheel" in value and "--no-deps" in value for name, value in builder if name == "RUN")
    (install,) = [value for name, value in image if name == "RUN" and "pip install" in value]
    assert "from=builder" in install and install.rstrip().endswith("/wheels/*.whl"), install
    assert " -e " not in install and "--editable" not in install
    assert [name for name, _ in image if name in ("COPY", "ADD")] == []  # no source tree in the image


def test_the_builder_copies_what_the_wheel_is_built_from_and_the_context_holds_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    hatch = project["tool"]["hatch"]
    needed = {project["project"]["readme"], "pyproject.toml", hatch["version"]["path"]}
    needed |= set(hatch["build"]["targets"]["wheel"]["packages"])
    builder = stages()[0]
    copied = {source for name, value in builder if name == "COPY" for source in value.split()[:-1]}
    for path in needed:
        assert any(path == source or path.startswith(source + "/") for source in copied), path
    ignored = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line for line in ignored if line and not line.startswith("#")]
    assert patterns[0] == "*" and {f"!{source}" for source in copied} <= set(patterns)  # only what is copied


def test_the_user_is_not_root_by_name_or_number_and_is_made_in_the_image() -> None:
    uid, gid = user()
    assert uid.isdigit() and gid.isdigit(), "numeric, so that runAsNonRoot can check it"
    assert int(uid) != 0 and int(gid) != 0
    made = " ".join(final("RUN"))
    account = re.search(rf"useradd [^&]*--uid {uid} --gid {gid} [^&]* (\S+)\s*(&&|$)", made)
    assert account is not None and account.group(1) not in ("root", "0"), made


def test_the_image_listens_beyond_loopback_and_leaves_the_port_to_port() -> None:
    env = image_env()
    assert env["SHIM_HOST"] == "0.0.0.0"
    assert "SHIM_PORT" not in env and "PORT" not in env  # PORT, from a platform, is honoured as the service reads it
    assert final("EXPOSE") == [str(PORT)]


def test_the_command_is_the_readmes_command_in_exec_form() -> None:
    assert cmd() == ["pypi-xmlrpc-shim"]
    assert "pypi-xmlrpc-shim = " in (ROOT / "pyproject.toml").read_text(encoding="utf-8")  # the console script
    assert 'CMD ["pypi-xmlrpc-shim"]' in deployment_section()


def deployment_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("\n## Deployment\n", 1)[1].split("\n## ", 1)[0]


def written_paths() -> dict[str, PurePosixPath]:
    """Every folder the service writes in, as the image's environment names it: the catalog's (its WAL, writer lock
    and a seed's download are beside it), the metrics folder, and the temporary folder."""
    env = image_env()
    settings = Settings.load({**env, "SHIM_UPSTREAM": UPSTREAM})
    assert settings.catalog_path is not None and settings.metrics_dir is not None
    return {
        "SHIM_CATALOG_PATH": PurePosixPath(settings.catalog_path).parent,
        "SHIM_METRICS_DIR": PurePosixPath(settings.metrics_dir),
        "TMPDIR": PurePosixPath(env["TMPDIR"]),
    }


def test_every_folder_the_service_writes_is_a_declared_volume_of_the_images_user() -> None:
    declared = [PurePosixPath(volume) for volume in volumes()]
    for name, folder in written_paths().items():
        assert any(folder == volume or volume in folder.parents for volume in declared), (name, folder)
    uid, gid = user()
    (chown,) = [match for value in final("RUN") for match in re.findall(rf"chown -R {uid}:{gid} ([^&]*)", value)]
    owned = [PurePosixPath(path) for path in chown.split()]
    for volume in declared:
        if volume != PurePosixPath("/tmp"):  # the base image's /tmp is everyone's already (1777)
            assert any(volume == path or path in volume.parents for path in owned), volume


def test_the_healthcheck_asks_healthz_on_the_services_own_port_with_python() -> None:
    options, command = healthcheck()
    assert command[:2] == ["python", "-c"]
    assert "/healthz" in command[2] and "default_port" in command[2] and "SHIM_PORT" in command[2]
    assert "ProxyHandler({})" in command[2]  # a proxy meant for the upstream never carries the probe
    assert set(options) == {"interval", "timeout", "start-period", "retries"}


# --- the compose file -------------------------------------------------------------------------------------------------


def shim_service() -> Document:
    service: Document = compose()["services"]["shim"]
    return service


def test_compose_runs_two_replicas_of_the_images_command_on_one_redis() -> None:
    service = shim_service()
    assert service["deploy"]["replicas"] == 2
    assert service["command"] == cmd()
    assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert re.fullmatch(r"redis://redis:\d+/\d+", service["environment"]["SHIM_CACHE_URL"])
    assert service["depends_on"] == {"redis": {"condition": "service_healthy"}}


def test_compose_bounds_redis_and_lets_it_forget_the_least_recently_used() -> None:
    redis = compose()["services"]["redis"]
    command = redis["command"]
    assert command[0] == "redis-server"
    assert command[command.index("--maxmemory") + 1] == "1gb"
    assert command[command.index("--maxmemory-policy") + 1] == "allkeys-lru"
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_compose_runs_read_only_with_every_volume_of_the_image_mounted() -> None:
    service, document = shim_service(), compose()
    assert service["read_only"] is True and document["services"]["redis"]["read_only"] is True
    mounted = {mount.split(":")[1] for mount in service["volumes"]} | set(service["tmpfs"])
    assert mounted == set(volumes())
    (catalog,) = [mount.split(":")[0] for mount in service["volumes"]]
    assert catalog in document["volumes"]  # a named volume, local to the one host
    assert "network volume" in COMPOSE.read_text(encoding="utf-8")


def test_compose_publishes_one_host_port_per_replica_on_the_services_port() -> None:
    (ports,) = shim_service()["ports"]
    published, target = ports.rsplit(":", 1)
    first, last = (int(port) for port in published.split("-"))
    assert (last - first + 1, int(target)) == (shim_service()["deploy"]["replicas"], PORT)


def test_composes_healthcheck_is_the_images_word_for_word() -> None:
    check = shim_service()["healthcheck"]
    options, command = healthcheck()
    assert check["test"] == ["CMD", *command]
    assert (check["interval"], check["timeout"], check["start_period"], check["retries"]) == (
        options["interval"],
        options["timeout"],
        options["start-period"],
        int(options["retries"]),
    )


# --- the Kubernetes manifests -----------------------------------------------------------------------------------------


def probe(name: str) -> Document:
    found: Document = container()[name]
    return found


def test_liveness_asks_healthz_readiness_readyz_on_the_containers_port() -> None:
    assert probe("livenessProbe")["httpGet"]["path"] == "/healthz"
    assert probe("startupProbe")["httpGet"]["path"] == "/healthz"
    assert probe("readinessProbe")["httpGet"]["path"] == "/readyz"
    (port,) = container()["ports"]
    assert (port["name"], port["containerPort"]) == ("http", PORT)  # the service's default: no SHIM_PORT, no PORT
    for name in ("livenessProbe", "startupProbe", "readinessProbe"):
        assert probe(name)["httpGet"]["port"] == port["name"]
    assert "SHIM_PORT" not in pod_env() and "PORT" not in pod_env()
    (service_port,) = manifests()["Service"]["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]


def test_liveness_is_generous_before_it_restarts_a_pod() -> None:
    liveness = probe("livenessProbe")
    assert liveness["failureThreshold"] * liveness["periodSeconds"] >= 120
    assert liveness["failureThreshold"] >= 5


def test_the_pod_runs_as_the_images_user_read_only_without_privileges() -> None:
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]
    uid, gid = user()
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": int(uid),
        "runAsGroup": int(gid),
        "fsGroup": int(gid),
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container()["securityContext"] == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def test_every_volume_of_the_image_is_an_empty_dir_of_the_pod() -> None:
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]
    kinds = {volume["name"]: set(volume) - {"name"} for volume in pod["volumes"]}
    assert all(kind == {"emptyDir"} for kind in kinds.values()), kinds  # each pod's own
    mounts = {mount["mountPath"]: mount["name"] for mount in container()["volumeMounts"]}
    assert set(mounts) == set(volumes()) and set(mounts.values()) == set(kinds)


def test_no_service_link_variable_can_be_read_as_a_setting() -> None:
    # Kubernetes sets <SERVICE>_PORT=tcp://... for each Service unless told not to: a Service called `shim` would
    # hand the service SHIM_PORT, a port it cannot parse.
    assert manifests()["Deployment"]["spec"]["template"]["spec"]["enableServiceLinks"] is False
    assert not manifests()["Service"]["metadata"]["name"].upper().replace("-", "_").startswith("SHIM")


def test_the_pods_command_is_the_images() -> None:
    assert container()["command"] == cmd() and "args" not in container()


def test_the_config_map_and_secret_hold_settings_each_in_one_place() -> None:
    kinds = manifests()
    config, secret = kinds["ConfigMap"]["data"], kinds["Secret"]["stringData"]
    assert set(config) | set(secret) <= set(SETTINGS), "every key is a setting's variable"
    assert not set(config) & set(secret)
    assert set(secret) == {"SHIM_CACHE_URL", "SHIM_CACHE_PASSWORD", "SHIM_UPSTREAM_PASSWORD"}
    assert not {name for name in config if SETTINGS[name].secret}  # a secret is never in the ConfigMap
    assert Settings.load({**image_env(), **pod_env(), "SHIM_UPSTREAM": UPSTREAM}).workers == 1


def test_every_secret_value_is_marked_a_placeholder() -> None:
    text = (KUBERNETES / "secret.yaml").read_text(encoding="utf-8").splitlines()
    for name in manifests()["Secret"]["stringData"]:
        (line,) = [number for number, row in enumerate(text) if row.strip().startswith(f"{name}:")]
        assert text[line - 1].strip().startswith("# PLACEHOLDER"), name


def readme_figure(label: str) -> float:
    """A figure of README's benchmark table (README, "Performance"), in MB."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (row,) = [line for line in readme.splitlines() if line.startswith(label)]
    return float(row[len(label) :].split()[0].replace(",", ""))


def mebibytes(quantity: str) -> float:
    assert quantity.endswith("Mi"), quantity
    return float(quantity[:-2]) * 2**20 / 1e6  # in MB, as the README counts


def test_memory_is_sized_from_the_measured_worker_and_the_cache_bound() -> None:
    cache = Settings.load({**image_env(), **pod_env(), "SHIM_UPSTREAM": UPSTREAM}).cache_max_bytes / 1e6
    steady = readme_figure("RSS after whole-index calls (MB)")
    peak = readme_figure("peak RSS, VmHWM (MB)")
    resources = container()["resources"]
    assert mebibytes(resources["requests"]["memory"]) >= steady + cache
    assert mebibytes(resources["limits"]["memory"]) >= 1.2 * (peak + cache)


def test_the_autoscaler_budget_and_service_point_at_the_deployments_pods() -> None:
    kinds = manifests()
    deployment = kinds["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert kinds["Service"]["spec"]["selector"].items() <= labels.items()
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert "replicas" not in deployment["spec"]  # the autoscaler's to set
    minimum = kinds["HorizontalPodAutoscaler"]["spec"]["minReplicas"]
    assert kinds["PodDisruptionBudget"]["spec"]["minAvailable"] < minimum


def test_the_manifests_say_what_a_catalog_per_pod_costs() -> None:
    said = " ".join((KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8").split())
    for words in ("each pod keeps its own catalog", "SHIM_CATALOG_SEED", "times the pods", "network volume"):
        assert words in said, words
