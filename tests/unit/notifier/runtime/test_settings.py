"""Settings.from_env: defaults, parsing, every problem in one ConfigError, and hidden secrets."""

from __future__ import annotations

import pytest

from feeds.limits import FeedLimits
from notifier.runtime.settings import (
    DEV_JWT_SECRET,
    AuthSettings,
    FanoutSettings,
    ServiceKey,
    Settings,
)
from schemas.errors import ConfigError
from schemas.events import TYPE_NAMES

SECRET = "s" * 32
SERVICE_KEY = "posts-key-0123456789"
BASE = {"NOTIFIER_AUTH_JWT_SECRET": SECRET}


def problems(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(environ)
    return str(caught.value)


def test_defaults() -> None:
    # secrets are required by the roles that use them (the CLI checks), not by Settings
    assert Settings.from_env({}) == Settings()
    settings = Settings.from_env(BASE)
    assert settings == Settings(auth=AuthSettings(jwt_secret=SECRET))
    assert settings.fanout == FanoutSettings()
    assert settings.feeds == FeedLimits()
    assert settings.ingest.services == ()
    assert settings.gateway.allowed_origins == frozenset()
    assert settings.dev is False


def test_variables_are_parsed_by_the_fields_type() -> None:
    settings = Settings.from_env(
        {
            **BASE,
            "NOTIFIER_INGEST_PARTITIONS": "16",
            "NOTIFIER_REDIS_SOCKET_TIMEOUT_S": "2.5",
            "NOTIFIER_FANOUT_BLOCK_MS": "1000",
            "NOTIFIER_FEEDS_MAX_GROUPS": "50",
            "NOTIFIER_REDIS_URL": "redis://:pw@db:6379/1",
            "NOTIFIER_GATEWAY_ALLOWED_ORIGINS": " https://a.example, ,https://b.example ",
            "NOTIFIER_HTTP_HOST": "0.0.0.0",
            "UNRELATED": "ignored",
        }
    )
    assert settings.ingest.partitions == 16
    assert settings.redis.socket_timeout_s == 2.5
    assert settings.fanout.block_ms == 1000
    assert settings.feeds.max_groups == 50
    assert settings.redis.url == "redis://:pw@db:6379/1"
    assert settings.gateway.allowed_origins == {"https://a.example", "https://b.example"}
    assert settings.http.host == "0.0.0.0"


def test_the_environment_is_read_only_through_the_mapping_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_INGEST_PARTITIONS", "9")
    assert Settings.from_env(BASE).ingest.partitions == 4


def test_every_bad_variable_is_reported_in_one_error() -> None:
    message = problems(
        {
            "NOTIFIER_INGEST_PARTITIONS": "four",
            "NOTIFIER_REDIS_SOCKET_TIMEOUT_S": "soon",
            "NOTIFIER_FEEDS_SHOWN_ACTORS": "1.5",
            "NOTIFIER_INGEST_SERVICES": "{not json",
            "NOTIFIER_FANOUT_MAX_DELIVERIES": "0",
            "NOTIFIER_GATEWAY_SEND_QUEUE_FRAMES": "0",
            "NOTIFIER_AUTH_JWT_SECRET": "short",
        }
    )
    for name in (
        "NOTIFIER_INGEST_PARTITIONS",
        "NOTIFIER_REDIS_SOCKET_TIMEOUT_S",
        "NOTIFIER_FEEDS_SHOWN_ACTORS",
        "NOTIFIER_INGEST_SERVICES",
        "NOTIFIER_FANOUT_MAX_DELIVERIES",
        "NOTIFIER_GATEWAY_SEND_QUEUE_FRAMES",
        "NOTIFIER_AUTH_JWT_SECRET",
    ):
        assert name in message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NOTIFIER_HTTP_API_PORT", "70000"),
        ("NOTIFIER_HTTP_API_PORT", "-1"),
        ("NOTIFIER_METRICS_PORT", "65536"),
        ("NOTIFIER_FANOUT_MIN_IDLE_MS", "-1"),
        ("NOTIFIER_FANOUT_MIN_IDLE_MS", "0"),  # every entry in hand claimed again at once
        ("NOTIFIER_INGEST_MAX_MEMORY_RATIO", "7"),  # the memory guard never acts
        ("NOTIFIER_HTTP_GRACE_S", "-1"),
        ("NOTIFIER_FANOUT_BLOCK_MS", "-5"),
        ("NOTIFIER_FANOUT_SLOT", "-1"),
        ("NOTIFIER_INGEST_MAX_IN_FLIGHT", "0"),
        ("NOTIFIER_INGEST_MAX_BODY_BYTES", "-1"),
        ("NOTIFIER_INGEST_MAX_BATCH_EVENTS", "0"),
        ("NOTIFIER_INGEST_DEDUPE_TTL_S", "-1"),
        ("NOTIFIER_INGEST_TIMEOUT_S", "-1"),
        ("NOTIFIER_INGEST_TIMEOUT_S", "nan"),
        ("NOTIFIER_INGEST_TIMEOUT_S", "inf"),
        ("NOTIFIER_INGEST_PRESSURE_INTERVAL_MS", "0"),
        ("NOTIFIER_INGEST_RESTART_CHECK_MS", "0"),
        ("NOTIFIER_GATEWAY_MAX_SESSIONS_PER_USER", "0"),
        ("NOTIFIER_GATEWAY_MAX_FRAME_BYTES", "0"),
        ("NOTIFIER_GATEWAY_MAX_FRAME_BYTES", "1023"),
        ("NOTIFIER_GATEWAY_AUTH_DEADLINE_S", "-1"),
        ("NOTIFIER_REDIS_URL", "foo"),
        ("NOTIFIER_REDIS_URL", "127.0.0.1:6379"),
        ("NOTIFIER_DEV", "banana"),
    ],
)
def test_a_value_that_would_break_the_product_later_is_refused_at_start(variable: str, value: str) -> None:
    """Each was accepted and then crashed a role or left it answering every request with an
    error (503, 413, a closed socket) or spinning."""
    assert variable in problems({**BASE, variable: value})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NOTIFIER_INGEST_PARTITIONS", "0"),
        ("NOTIFIER_INGEST_PARTITIONS", "1025"),
        ("NOTIFIER_AUTH_JWT_SECRET", "s" * 31),
        ("NOTIFIER_FANOUT_MAX_DELIVERIES", "-1"),
    ],
)
def test_out_of_range_values_are_refused(variable: str, value: str) -> None:
    assert variable in problems({**BASE, variable: value})


@pytest.mark.parametrize("limit", ["MAX_GROUPS", "MAX_CHANGES", "SHOWN_ACTORS", "AGGREGATION_WINDOW_MS"])
@pytest.mark.parametrize("value", ["0", "-5"])
def test_feed_limits_must_be_positive(limit: str, value: str) -> None:
    # a zero window would fail every event in the fan-out (division by zero), a zero cap empty inboxes
    assert f"NOTIFIER_FEEDS_{limit}" in problems({**BASE, f"NOTIFIER_FEEDS_{limit}": value})


@pytest.mark.parametrize(
    ("block_ms", "timeout_s", "ok"),
    [
        ("2000", "10", True),
        ("4999", "10", True),
        ("5000", "10", False),  # a blocking read must end well before the socket gives up
        ("20000", "10", False),
        ("100", "0.1", False),
    ],
)
def test_block_ms_stays_below_half_the_socket_timeout(block_ms: str, timeout_s: str, ok: bool) -> None:
    environ = {**BASE, "NOTIFIER_FANOUT_BLOCK_MS": block_ms, "NOTIFIER_REDIS_SOCKET_TIMEOUT_S": timeout_s}
    if ok:
        assert Settings.from_env(environ).fanout.block_ms == int(block_ms)
    else:
        assert "NOTIFIER_FANOUT_BLOCK_MS" in problems(environ)


@pytest.mark.parametrize(
    ("text", "dev"), [("1", True), ("TRUE", True), ("yes", True), ("0", False), ("", False), ("no", False)]
)
def test_dev_mode_is_opt_in(text: str, dev: bool) -> None:
    assert Settings.from_env({**BASE, "NOTIFIER_DEV": text}).dev is dev


def test_services_json() -> None:
    services = (
        '{"posts": {"key": "' + SERVICE_KEY + '", "events": ["like", "unlike"]},'
        ' "all": {"key": "all-key-0123456789ab", "events": ["*"]},'
        ' "default": {"key": "default-key-0123456789"}}'
    )
    settings = Settings.from_env({**BASE, "NOTIFIER_INGEST_SERVICES": services})
    by_name = {s.name: s for s in settings.ingest.services}
    assert by_name["posts"] == ServiceKey("posts", SERVICE_KEY, frozenset({"like", "unlike"}))
    assert by_name["all"].event_types == TYPE_NAMES
    assert by_name["default"].event_types == TYPE_NAMES


@pytest.mark.parametrize(
    ("services", "complaint"),
    [
        ("{not json", "not JSON"),
        ('["posts"]', "JSON object"),
        ('{"posts": "key"}', "needs a string 'key'"),
        ('{"posts": {"events": ["like"]}}', "needs a string 'key'"),
        ('{"posts": {"key": "short"}}', "at least 16"),
        ('{"posts": {"key": "posts-key-0123456789", "events": ["like", "poke"]}}', "poke"),
    ],
)
def test_bad_services_are_explained(services: str, complaint: str) -> None:
    message = problems({**BASE, "NOTIFIER_INGEST_SERVICES": services})
    assert "NOTIFIER_INGEST_SERVICES" in message and complaint in message


def test_dev_mode_fills_in_demo_credentials() -> None:
    settings = Settings.from_env({"NOTIFIER_DEV": "1"})
    assert settings.dev
    assert settings.auth.jwt_secret == DEV_JWT_SECRET
    [service] = settings.ingest.services
    assert service.event_types == TYPE_NAMES
    own = Settings.from_env({**BASE, "NOTIFIER_DEV": "true"})
    assert own.auth.jwt_secret == SECRET  # what is configured is kept


def test_secrets_never_appear_in_repr() -> None:
    services = '{"posts": {"key": "' + SERVICE_KEY + '"}}'
    settings = Settings.from_env(
        {
            **BASE,
            "NOTIFIER_REDIS_URL": "redis://:hunter2-password@db:6379/0",
            "NOTIFIER_INGEST_SERVICES": services,
        }
    )
    text = repr(settings) + str(settings)
    for secret in (SECRET, "hunter2-password", SERVICE_KEY):
        assert secret not in text
    assert "posts" in text  # the service's name is not a secret


def test_a_bad_secret_is_not_echoed_in_the_error() -> None:
    assert "s" * 20 not in problems({"NOTIFIER_AUTH_JWT_SECRET": "s" * 20})


def test_settings_are_frozen() -> None:
    settings = Settings.from_env(BASE)
    with pytest.raises(AttributeError):
        settings.fanout.block_ms = 1  # type: ignore[misc]


def test_a_cluster_needs_seeds_and_a_jobs_redis() -> None:
    assert "needs NOTIFIER_REDIS_URL" in problems({"NOTIFIER_REDIS_CLUSTER": "1"})
    seeds = {"NOTIFIER_REDIS_CLUSTER": "1", "NOTIFIER_REDIS_URL": "redis://a:7000,redis://b:7000"}
    assert "needs NOTIFIER_JOBS_REDIS_URL" in problems(seeds)
    settings = Settings.from_env({**seeds, "NOTIFIER_JOBS_REDIS_URL": "redis://j:6379/0"})
    assert settings.redis.cluster and settings.jobs.redis_url == "redis://j:6379/0"
    assert "NOTIFIER_JOBS_REDIS_URL is for a cluster" in problems({"NOTIFIER_JOBS_REDIS_URL": "redis://j"})
    assert "redis://j" not in repr(settings)  # may embed a password
    # the direct apply is for one Redis: with a cluster it would be ignored, so it is refused
    direct = {**seeds, "NOTIFIER_JOBS_REDIS_URL": "redis://j:6379/0", "NOTIFIER_FANOUT_DIRECT_APPLY": "1"}
    assert "NOTIFIER_FANOUT_DIRECT_APPLY works on one Redis only" in problems(direct)
