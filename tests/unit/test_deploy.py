"""deploy/kubernetes/base, built with kustomize (`kubectl kustomize`, offline) and checked against
the Kubernetes API schemas (kubernetes-validate, strict), plus what the schemas cannot know: the
probes hit the health routes on the roles' ports, pods run non-root on a read-only filesystem,
the grace outlasts the roles' own, every role has a disruption budget, KEDA watches every
partition stream's consumer group, and an HPA scales the gateways."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from notifier.cli import ROLES
from notifier.runtime.settings import Settings
from schemas import keys

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "kubernetes" / "base"
KUBERNETES_VERSION = "1.30"
PORTS = {"api": 8000, "gateway": 8001, "worker": 9100, "jobs": 9100}

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def rendered() -> list[Doc]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        message = "kubectl (its built-in kustomize) is not installed (./dev.sh test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run(
        [kubectl, "kustomize", str(BASE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def of(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


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


def test_a_deployment_per_role_probed_on_its_health_routes(rendered: list[Doc]) -> None:
    deployments = of(rendered, "Deployment")
    config = of(rendered, "ConfigMap")["notifier-config"]["data"]
    settings = Settings.from_env(
        {f"NOTIFIER_{k[9:]}" if k.startswith("NOTIFIER_") else k: v for k, v in config.items()}
    )
    assert set(deployments) == {f"notifier-{r}" for r in ROLES if r != "up"}
    for name, deployment in deployments.items():
        role = name.removeprefix("notifier-")
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
    assert settings.metrics.port == PORTS["worker"] and settings.http.api_port == PORTS["api"]
    assert settings.http.gateway_port == PORTS["gateway"]


def test_every_role_has_a_disruption_budget_selecting_its_pods(rendered: list[Doc]) -> None:
    budgets = of(rendered, "PodDisruptionBudget")
    for name, deployment in of(rendered, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()


def test_workers_scale_on_the_lag_of_every_partition_and_gateways_on_cpu(rendered: list[Doc]) -> None:
    partitions = int(of(rendered, "ConfigMap")["notifier-config"]["data"]["NOTIFIER_INGEST_PARTITIONS"])
    scaled = of(rendered, "ScaledObject")["notifier-worker"]["spec"]
    assert scaled["scaleTargetRef"]["name"] in of(rendered, "Deployment")
    triggers = scaled["triggers"]
    assert {t["type"] for t in triggers} == {"redis-streams"}
    assert sorted(t["metadata"]["stream"] for t in triggers) == sorted(
        keys.events(p) for p in range(partitions)
    )
    assert {t["metadata"]["consumerGroup"] for t in triggers} == {keys.FANOUT_GROUP}
    auth = {t["authenticationRef"]["name"] for t in triggers}
    assert auth <= set(of(rendered, "TriggerAuthentication"))
    hpa = of(rendered, "HorizontalPodAutoscaler")["notifier-gateway"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "notifier-gateway" and hpa["minReplicas"] >= 2
