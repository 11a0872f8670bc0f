"""deploy/k8s/ validated offline: every built-in object against the Kubernetes OpenAPI schemas that
`kubernetes-validate` ships (strict: unknown fields are errors), for the oldest and newest versions we support.

KEDA's ScaledObject is a CRD, for which the tool has no schema (it raises SchemaNotFoundError, asserted below so
that the day it gains one this test says so); it is checked structurally instead: its target, stream, group and
environment names must be the ones the rest of the deployment and carepath's settings use. The manifests must
also agree with each other (selectors, probes, config sources) and with docker-compose.yml (same commands).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from carepath.events.shards import shards
from carepath.settings import Settings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
VERSIONS = ("1.30.0", "1.37.0")  # preStop `sleep` needs 1.30
CRDS = {("keda.sh/v1alpha1", "ScaledObject")}
_SETTINGS = Settings.model_fields


def _documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


DOCS = _documents()
BY_KIND: dict[str, list[dict[str, Any]]] = {}
for _doc in DOCS:
    BY_KIND.setdefault(_doc["kind"], []).append(_doc)


def _named(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in BY_KIND.get(kind, []) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name} is not defined exactly once in deploy/k8s"
    return found[0]


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["spec"]["template"]["spec"]["containers"]  # type: ignore[no-any-return]


def _env_keys(container: dict[str, Any]) -> set[str]:
    keys: set[str] = set()
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            keys |= set(_named("ConfigMap", source["configMapRef"]["name"])["data"])
        if "secretRef" in source:
            keys |= set(_named("Secret", source["secretRef"]["name"])["stringData"])
    return keys


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("doc", [d for d in DOCS if (d["apiVersion"], d["kind"]) not in CRDS],
                         ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")  # fmt: skip
def test_builtin_objects_validate_against_the_kubernetes_schemas(doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_tool_has_no_schema_for_keda_so_it_is_checked_structurally() -> None:
    scaled = _named("ScaledObject", "carepath-worker")
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(scaled, VERSIONS[-1], strict=True)
    target = _named("Deployment", scaled["spec"]["scaleTargetRef"]["name"])
    # A fair share of the shards per worker: at least 2 (one can die), never more workers than shards.
    config = _named("ConfigMap", "carepath-config")["data"]
    settings = Settings(events_inbound_shards=int(config["CAREPATH_EVENTS_INBOUND_SHARDS"]))
    assert 2 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    assert scaled["spec"]["maxReplicaCount"] <= settings.events_inbound_shards
    assert target["spec"]["replicas"] == scaled["spec"]["minReplicaCount"]
    triggers = scaled["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"redis-streams"}
    # one trigger per shard stream, in the consumer's group, on the backlog (lag: pending is bounded by a batch)
    assert [t["metadata"]["stream"] for t in triggers] == [shard.stream for shard in shards(settings)]
    for trigger in triggers:
        metadata = trigger["metadata"]
        assert metadata["consumerGroup"] == settings.events_group
        assert int(metadata["lagCount"]) > settings.events_batch
        env = _env_keys(_containers(target)[0])
        assert {metadata["addressFromEnv"], metadata["passwordFromEnv"]} <= env  # KEDA reads them from the target


def test_the_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    manifests = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == manifests


def test_selectors_autoscaler_and_budgets_point_at_the_deployments() -> None:
    for deployment in BY_KIND["Deployment"]:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for budget in BY_KIND["PodDisruptionBudget"]:
        matched = [d for d in BY_KIND["Deployment"] if budget["spec"]["selector"]["matchLabels"].items()
                   <= d["spec"]["template"]["metadata"]["labels"].items()]  # fmt: skip
        assert len(matched) == 1, budget["metadata"]["name"]
    api = _named("Deployment", "carepath-api")
    [hpa] = BY_KIND["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "carepath-api"}
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert "cpu" in _containers(api)[0]["resources"]["requests"]  # utilisation is relative to the request
    service = _named("Service", "carepath-api")
    assert service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()


def test_the_api_probes_the_health_endpoints() -> None:
    [container] = _containers(_named("Deployment", "carepath-api"))
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["ports"][0]["containerPort"] == int(container["command"][container["command"].index("--port") + 1])


def test_config_keys_are_carepath_settings_and_pods_run_as_the_image_user() -> None:
    config = _named("ConfigMap", "carepath-config")["data"] | _named("Secret", "carepath-secrets")["stringData"]
    unknown = [k for k in config if k.startswith("CAREPATH_") and k[len("CAREPATH_") :].lower() not in _SETTINGS]
    assert unknown == []
    for workload in [*BY_KIND["Deployment"], *BY_KIND["Job"]]:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == 10001  # deploy/Dockerfile's `carepath` user
        for container in pod["containers"]:
            assert {"CAREPATH_DATABASE_URL", "CAREPATH_REDIS_URL"} <= _env_keys(container)


def test_docker_compose_runs_the_same_commands() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    assert compose["api"]["command"] == _containers(_named("Deployment", "carepath-api"))[0]["command"]
    assert compose["worker"]["command"] == _containers(_named("Deployment", "carepath-worker"))[0]["command"]
    assert compose["migrate"]["command"] == _containers(_named("Job", "carepath-migrate"))[0]["command"]
