"""compose.yaml is valid for docker-compose, runs Redis durably (AOF, never evicting), health-checks
every service and has Prometheus scrape every role."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
# compose.yaml requires these from the environment (no defaults on purpose); example values here
REQUIRED_ENV = {
    "NOTIFIER_AUTH_JWT_SECRET": "test-only-secret-0123456789abcdef0123",
    "NOTIFIER_INGEST_SERVICES": '{"posts": {"key": "test-only-posts-key", "events": ["*"]}}',
}


def _compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        message = "docker-compose is not installed (./dev.sh test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    environ = {**os.environ, **REQUIRED_ENV} if env is None else env
    return subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _ok(*args: str) -> str:
    done = _compose(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _redis_command(config_yaml: str) -> list[str]:
    """The redis service's `command` from docker-compose v1's normalised `config` output, which
    prints a list as `- item` lines under `command:` (scalars possibly quoted)."""
    lines = config_yaml.splitlines()
    start = lines.index("  redis:")
    block: list[str] = []
    for line in lines[start + 1 :]:
        if line.strip() and not line.startswith("    "):
            break
        block.append(line)
    at = next(i for i, line in enumerate(block) if line.strip().startswith("command:"))
    inline = block[at].split(":", 1)[1].strip()
    if inline:
        return inline.split()
    items: list[str] = []
    for line in block[at + 1 :]:
        item = line.strip()
        if not item.startswith("- "):
            break
        items.append(item[2:].strip().strip("'\""))
    return items


def _config() -> tuple[set[str], set[str], list[str]]:
    """Services, volumes and the redis command, from JSON (Compose v2) or YAML (v1)."""
    done = _compose("config", "--format", "json")
    if done.returncode == 0 and done.stdout.lstrip().startswith("{"):
        config = json.loads(done.stdout)
        command = config["services"]["redis"]["command"]
        command = command.split() if isinstance(command, str) else list(command)
        return set(config["services"]), set(config.get("volumes") or {}), command
    services = set(_ok("config", "--services").split())
    volumes = set(_ok("config", "--volumes").split())
    return services, volumes, _redis_command(_ok("config"))


def _option(command: list[str], name: str) -> str:
    assert name in command, f"redis command lacks {name}: {command}"
    return command[command.index(name) + 1]


def test_compose_file_is_valid() -> None:
    done = _compose("config", "-q")
    assert done.returncode == 0, done.stderr


def test_compose_runs_every_role_beside_redis_with_a_volume() -> None:
    services, volumes, _ = _config()
    assert {"redis", "api", "worker", "gateway"} <= services
    assert volumes, "redis needs a named volume for its data"


def test_redis_is_durable_and_never_evicts() -> None:
    _, _, command = _config()
    assert _option(command, "--appendonly") == "yes"
    assert _option(command, "--maxmemory-policy") == "noeviction"


def test_secrets_are_required_not_defaulted(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if k not in REQUIRED_ENV}
    empty = tmp_path / "empty.env"  # ignore a developer's .env beside compose.yaml
    empty.write_text("")
    done = _compose("--env-file", str(empty), "config", "-q", env=environ)
    assert done.returncode != 0
    assert "NOTIFIER_AUTH_JWT_SECRET" in done.stderr or "NOTIFIER_INGEST_SERVICES" in done.stderr


def _config_yaml() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(_ok("config"))
    return config


ROLE_PORTS = {"api": 8000, "gateway": 8001, "worker": 9100, "jobs": 9100}


def test_every_service_is_health_checked_on_its_own_readiness_route() -> None:
    services = _config_yaml()["services"]
    assert set(services) == {"redis", "prometheus", *ROLE_PORTS}
    for name, service in services.items():
        assert "healthcheck" in service, name
    for role, port in ROLE_PORTS.items():
        probe = " ".join(services[role]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/readyz" in probe, role
        assert services[role]["environment"]["NOTIFIER_METRICS_PORT"] == "9100"


def test_prometheus_scrapes_every_role_on_its_metrics_port() -> None:
    prometheus = _config_yaml()["services"]["prometheus"]
    mount = next(v for v in prometheus["volumes"] if str(v).endswith(":/etc/prometheus/prometheus.yml:ro"))
    source = Path(str(mount).split(":")[0])
    scrape = yaml.safe_load((source if source.is_absolute() else ROOT / source).read_text())
    targets = {
        job["job_name"]: (sd["names"], sd["port"])
        for job in scrape["scrape_configs"]
        for sd in job["dns_sd_configs"]
    }
    assert targets == {role: ([role], port) for role, port in ROLE_PORTS.items()}
