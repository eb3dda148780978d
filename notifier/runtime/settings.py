"""One frozen Settings object built from the environment; `Settings.from_env` is its only reader."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import orjson
from redis.connection import parse_url

from feeds.horizon import horizon_ms
from feeds.limits import FeedLimits
from schemas.errors import ConfigError
from schemas.events import TYPE_NAMES

from . import tracing

PREFIX = "NOTIFIER_"


@dataclass(frozen=True, slots=True)
class RedisSettings:
    # "" means: probe the default address, else start a private redis-server, else run in memory.
    # "embedded" forces the private redis-server; "memory" forces the in-process fake.
    url: str = field(default="", repr=False)  # may embed a password; on a cluster: seeds, comma-separated
    cluster: bool = False  # Redis Cluster (redis-py's RedisCluster and the feeds.cluster adapter)
    socket_timeout_s: float = 10.0
    connect_timeout_s: float = 2.0
    data_dir: str = ".notifier-data"  # the private redis-server's directory


@dataclass(frozen=True, slots=True)
class ServiceKey:
    name: str
    key: str = field(repr=False)
    event_types: frozenset[str]  # what this service may send


@dataclass(frozen=True, slots=True)
class IngestSettings:
    partitions: int = 4  # event-log streams; an actor's events always land in the same one
    max_body_bytes: int = 1_048_576
    max_batch_events: int = 500
    dedupe_ttl_s: int = 86_400
    max_clock_skew_s: int = 300  # occurred_at further in the future is refused
    # occurred_at further in the past is refused (422 too_late); 0: no limit, and then item
    # registers are never trimmed (feeds/horizon.py: the horizon needs a bound on lateness)
    max_lateness_s: int = 7 * 86_400
    max_in_flight: int = 512  # concurrent ingest requests per process; more get 503 at once
    timeout_s: float = 2.0  # budget for the Redis append; past it, 503 (the retry is deduped)
    max_backlog: int = 1_000_000  # unprocessed + pending entries per partition before 503
    max_memory_ratio: float = 0.9  # Redis used_memory / maxmemory before 503
    pressure_interval_ms: int = 250  # how often backlog and memory are sampled
    wait_replicas: int = 0  # >0: a 202 waits until this many replicas have the events (WAIT)
    wait_timeout_ms: int = 200  # ... for at most this long, else 503 (the retry is deduplicated)
    recovery_keep_s: float = 10.0  # accepted events kept in memory to append again if Redis loses them
    recovery_keep_events: int = 100_000  # ... at most this many (the oldest go first)
    restart_check_ms: int = 250  # how often the api asks Redis for its run id (a restart changes it)
    services: tuple[ServiceKey, ...] = ()


@dataclass(frozen=True, slots=True)
class FanoutSettings:
    batch_size: int = 256
    batches_in_flight: int = 1  # per partition, while it is behind (its last read filled a batch)
    block_ms: int = 2_000  # XREADGROUP BLOCK; must stay well below redis.socket_timeout_s
    min_idle_ms: int = 30_000  # pending this long → reclaimed by any consumer
    claim_interval_ms: int = 5_000
    max_deliveries: int = 5  # then dead-lettered
    consumer: str = ""  # stable name for history-first restarts; default HOSTNAME-SLOT
    slot: int = 0  # this worker's slot on its host (run slots 0..n-1 for n workers per host)
    idle_poll_ms: int = 50  # pause between empty reads when BLOCK is unavailable (in-memory mode)
    retain_ms: int = 7 * 86_400_000  # processed events kept this long for replay, then trimmed
    maintenance_interval_ms: int = 60_000  # log trimming and consumer reaping
    reap_idle_ms: int = 86_400_000  # consumers idle this long with nothing pending are removed
    sweep_users: int = 1_000  # users whose old item registers are trimmed per maintenance round
    # one Redis only: apply the items of users nobody listens to from the worker in plain
    # commands (feeds/direct.py) instead of the apply script; off: see README "Performance"
    direct_apply: bool = False


@dataclass(frozen=True, slots=True)
class AuthSettings:
    jwt_secret: str = field(default="", repr=False)
    jwt_audience: str = "notifier"
    jwt_issuer: str = ""  # checked when set
    jwt_leeway_s: int = 5


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    auth_deadline_s: float = 5.0
    send_queue_frames: int = 256
    replay_batch: int = 200
    allowed_origins: frozenset[str] = frozenset()  # empty: no browser origin allowed
    ping_interval_s: float = 20.0
    max_frame_bytes: int = 65_536
    max_client_frames_per_s: float = 10.0  # sustained; bursts up to 4x; past it, closed 4429
    max_sessions_per_user: int = 16  # one more is refused with 4429
    position_check_s: float = 30.0  # sessions checked against their change logs this often (0: never)


@dataclass(frozen=True, slots=True)
class HttpSettings:
    host: str = "127.0.0.1"
    api_port: int = 8000
    gateway_port: int = 8001
    grace_s: float = 10.0  # SIGTERM → this long to finish, then cancel
    drain_s: float = 0.0  # SIGTERM → this long not ready but still serving, before the grace


@dataclass(frozen=True, slots=True)
class Threshold:
    """Scores from which a rule's verdict flags, holds or drops an event (above 1: never);
    None keeps the rule's built-in default."""

    rule: str
    flag: float | None = None
    hold: float | None = None
    drop: float | None = None


@dataclass(frozen=True, slots=True)
class ModerationSettings:
    enabled: bool = True  # screen comments and mentions in the fan-out
    classifier: bool = True  # load the shipped offensive-language model (about 1 s at start)
    builtin_blocklist: bool = True
    blocklist: tuple[str, ...] = ()  # more entries: word | word:score | *stem* | re:pattern
    blocked_domains: tuple[str, ...] = ()  # a link to one of these (or a subdomain) holds
    max_links: int = 3  # more links than this in one text flags it
    velocity_per_min: int = 20  # comments + mentions per actor and minute before flagging
    duplicate_targets: int = 5  # one text to more targets than this within the window flags it
    duplicate_window_s: int = 600
    thresholds: tuple[Threshold, ...] = ()  # per-rule overrides, JSON {"rule": {"hold": 0.8}}
    claim_ttl_s: float = 300.0  # a moderator's claim on an item lapses after this
    history_items: int = 10  # the actor's recent review items kept as an item's context
    reports_per_hour: int = 20  # reports one user may file per hour
    retain_decided_days: int = 90  # a decided review item is deleted this long after (0: kept)


@dataclass(frozen=True, slots=True)
class JobsSettings:
    poll_ms: int = 200  # how often the arq worker looks for due jobs
    max_jobs: int = 10  # jobs run at once per process
    retry_s: float = 1.0  # a job that failed on Redis runs again after this (grows per try)
    sweep_s: int = 10  # the outbox of moderation effects is re-enqueued this often
    # on a cluster: arq's queue on a plain Redis of its own (arq has no Cluster support)
    redis_url: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "INFO"
    format: str = "text"  # text (readable) | json (one object a line)
    access: bool = True  # HTTP access and WebSocket open/close lines (logger notifier.access, INFO)


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    enabled: bool = True  # off: /metrics answers 404 and every metric update is a no-op
    port: int = 9100  # worker and jobs serve /metrics, /livez and /readyz here (0: any free port)


@dataclass(frozen=True, slots=True)
class Settings:
    redis: RedisSettings = RedisSettings()
    ingest: IngestSettings = IngestSettings()
    fanout: FanoutSettings = FanoutSettings()
    feeds: FeedLimits = FeedLimits()
    auth: AuthSettings = AuthSettings()
    gateway: GatewaySettings = GatewaySettings()
    http: HttpSettings = HttpSettings()
    moderation: ModerationSettings = ModerationSettings()
    jobs: JobsSettings = JobsSettings()
    log: LogSettings = LogSettings()
    metrics: MetricsSettings = MetricsSettings()
    # OTEL_TRACES_EXPORTER, the standard variable (otlp | console; none, the default, is off);
    # the OpenTelemetry SDK reads the others (endpoint, service name, sampler) itself
    tracing: str = "none"
    dev: bool = False  # demo defaults: a dev service key and JWT secret, loudly logged

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build and validate; every bad variable is reported in one ConfigError."""
        errors: list[str] = []
        sections: dict[str, Any] = {}
        defaults = cls()
        for f in dataclasses.fields(cls):
            if f.name in {"dev", "tracing"}:
                continue
            section: Any = getattr(defaults, f.name)
            values: dict[str, Any] = {}
            for sf in dataclasses.fields(section):
                name = f"{PREFIX}{f.name}_{sf.name}".upper()
                if name in environ:
                    parse = _PARSERS.get(sf.name, _by_type(getattr(section, sf.name)))
                    try:
                        values[sf.name] = parse(environ[name])
                    except (ValueError, ConfigError) as exc:
                        errors.append(f"{name}: {exc}")
            sections[f.name] = dataclasses.replace(section, **values)
        errors.extend(_unknown_names(environ))
        dev = False
        try:
            dev = _bool(environ.get(f"{PREFIX}DEV", ""))
        except ValueError as exc:
            errors.append(f"{PREFIX}DEV: {exc}")
        disabled = environ.get("OTEL_SDK_DISABLED", "").lower() == "true"
        tracing = "none" if disabled else environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
        settings = cls(**sections, tracing=tracing, dev=dev)
        if dev:
            settings = settings.with_dev_defaults()
        errors.extend(settings.problems())
        if errors:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
        return settings

    def with_dev_defaults(self) -> Settings:
        auth, ingest = self.auth, self.ingest
        if not auth.jwt_secret:
            auth = dataclasses.replace(auth, jwt_secret=DEV_JWT_SECRET)
        if not ingest.services:
            dev_key = ServiceKey("dev", DEV_SERVICE_KEY, TYPE_NAMES)
            ingest = dataclasses.replace(ingest, services=(dev_key,))
        return dataclasses.replace(self, auth=auth, ingest=ingest, dev=True)

    @property
    def register_horizon_ms(self) -> int | None:
        """How old an item register must be to be trimmed (feeds/horizon.py); None: never."""
        i = self.ingest
        return horizon_ms(self.fanout.retain_ms, i.max_lateness_s, i.max_clock_skew_s)

    def problems(self) -> list[str]:
        """Cross-field rules."""
        out: list[str] = []
        if self.fanout.block_ms / 1000 >= self.redis.socket_timeout_s / 2:
            # a blocking read longer than the socket timeout fails as a timeout: redis/redis-py#3138
            out.append("NOTIFIER_FANOUT_BLOCK_MS must be below half of NOTIFIER_REDIS_SOCKET_TIMEOUT_S")
        if self.auth.jwt_secret and len(self.auth.jwt_secret) < 32:
            out.append("NOTIFIER_AUTH_JWT_SECRET must be at least 32 characters")
        special = {"", "embedded", "memory"}  # a cluster's seeds may also be bare HOST:PORT
        if not self.redis.cluster and self.redis.url not in special:
            out += _url_problems("NOTIFIER_REDIS_URL", self.redis.url, "or embedded or memory")
        if self.jobs.redis_url:
            out += _url_problems("NOTIFIER_JOBS_REDIS_URL", self.jobs.redis_url)
        if self.redis.cluster and self.redis.url in {"", "embedded", "memory"}:
            out.append("NOTIFIER_REDIS_CLUSTER needs NOTIFIER_REDIS_URL: seed addresses, comma-separated")
        if self.redis.cluster and not self.jobs.redis_url:
            out.append(
                "NOTIFIER_REDIS_CLUSTER needs NOTIFIER_JOBS_REDIS_URL: a plain Redis for arq's job queue"
            )
        if self.fanout.direct_apply and self.redis.cluster:
            out.append(
                "NOTIFIER_FANOUT_DIRECT_APPLY works on one Redis only: unset it with NOTIFIER_REDIS_CLUSTER"
            )
        if self.jobs.redis_url and not self.redis.cluster:
            out.append("NOTIFIER_JOBS_REDIS_URL is for a cluster; one Redis holds the job queue itself")
        out += self._out_of_range()
        if self.ingest.max_memory_ratio > 1:  # above 1 the memory guard never acts
            out.append("NOTIFIER_INGEST_MAX_MEMORY_RATIO must be above 0 and at most 1")
        if self.ingest.partitions > 1024:
            out.append("NOTIFIER_INGEST_PARTITIONS must be between 1 and 1024")
        for name in ("http.api_port", "http.gateway_port", "metrics.port"):
            if self._number(name) > 65535:
                out.append(f"{_variable(name)} must be a port: 0 to 65535")
        if self.gateway.max_frame_bytes < MIN_FRAME_BYTES:  # a hello with a token must fit
            out.append(f"NOTIFIER_GATEWAY_MAX_FRAME_BYTES must be at least {MIN_FRAME_BYTES}")
        retain_decided_ms = self.moderation.retain_decided_days * 86_400_000
        if 0 < retain_decided_ms < self.fanout.retain_ms:  # a replay would screen its event again
            out.append(
                "NOTIFIER_MODERATION_RETAIN_DECIDED_DAYS must be 0 (keep) or at least "
                "NOTIFIER_FANOUT_RETAIN_MS in days"
            )
        if self.feeds.post_tombstone_ms < self.fanout.retain_ms:  # a replay could resurrect a post
            out.append("NOTIFIER_FEEDS_POST_TOMBSTONE_MS must be at least NOTIFIER_FANOUT_RETAIN_MS")
        if self.tracing not in tracing.EXPORTERS:
            out.append(f"OTEL_TRACES_EXPORTER must be one of {sorted(tracing.EXPORTERS)}")
        elif self.tracing != "none" and not tracing.available():
            out.append("OTEL_TRACES_EXPORTER needs the tracing extra: pip install 'notifier[tracing]'")
        if self.log.format not in {"text", "json"}:
            out.append("NOTIFIER_LOG_FORMAT must be text or json")
        if self.log.level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            out.append("NOTIFIER_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return out

    def _number(self, name: str) -> Any:
        section, _, field_name = name.partition(".")
        return getattr(getattr(self, section), field_name)

    def _out_of_range(self) -> list[str]:
        """Every number setting finite and not negative, those in POSITIVE above 0: a value out
        of range is refused at start, never found out later (an ingest answering every request
        503, a gateway closing every socket, a loop spinning without a pause)."""
        out = []
        for section in dataclasses.fields(self):
            values = getattr(self, section.name)
            if not dataclasses.is_dataclass(values):
                continue
            for f in dataclasses.fields(values):
                value, name = getattr(values, f.name), f"{section.name}.{f.name}"
                if isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                if not math.isfinite(value):
                    out.append(f"{_variable(name)} must be a finite number")
                elif value <= 0 and (name in POSITIVE or section.name == "feeds"):
                    out.append(f"{_variable(name)} must be positive")
                elif value < 0:
                    out.append(f"{_variable(name)} must not be negative")
        return out


# The number settings that must be above 0 (every feeds limit too: a zero window divides by
# zero in feeds.items, a zero cap empties inboxes); the other numbers must not be negative.
POSITIVE: Final = frozenset(
    {
        "redis.socket_timeout_s", "redis.connect_timeout_s",
        "ingest.partitions", "ingest.max_body_bytes", "ingest.max_batch_events", "ingest.dedupe_ttl_s",
        "ingest.max_in_flight", "ingest.timeout_s", "ingest.max_backlog", "ingest.max_memory_ratio",
        "ingest.pressure_interval_ms", "ingest.wait_timeout_ms", "ingest.restart_check_ms",
        "fanout.batch_size", "fanout.batches_in_flight", "fanout.block_ms", "fanout.claim_interval_ms",
        "fanout.max_deliveries", "fanout.idle_poll_ms", "fanout.retain_ms",
        "fanout.maintenance_interval_ms", "fanout.reap_idle_ms", "fanout.min_idle_ms",
        "gateway.auth_deadline_s", "gateway.send_queue_frames", "gateway.replay_batch",
        "gateway.ping_interval_s", "gateway.max_frame_bytes", "gateway.max_client_frames_per_s",
        "gateway.max_sessions_per_user",
        "moderation.velocity_per_min", "moderation.duplicate_targets", "moderation.duplicate_window_s",
        "moderation.claim_ttl_s", "moderation.reports_per_hour",
        "jobs.poll_ms", "jobs.max_jobs", "jobs.retry_s", "jobs.sweep_s",
    }
)  # fmt: skip
MIN_FRAME_BYTES: Final = 1_024
REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://")


def _url_problems(name: str, url: str, alternatives: str = "") -> list[str]:
    """What is wrong with a Redis URL, as redis-py reads it (a port or a database number that is
    not a number failed at start with a traceback)."""
    if not url.startswith(REDIS_SCHEMES):
        return [f"{name} must be a redis://, rediss:// or unix:// URL {alternatives}".rstrip()]
    try:
        parse_url(url)
    except ValueError as exc:
        return [f"{name} is not a valid Redis URL: {exc}"]
    return []


def _variable(name: str) -> str:
    """`ingest.timeout_s` → NOTIFIER_INGEST_TIMEOUT_S."""
    return PREFIX + name.replace(".", "_").upper()


def setting_names() -> list[str]:
    """Every NOTIFIER_* variable the product reads."""
    defaults = Settings()
    names = [
        f"{PREFIX}{f.name}_{sf.name}".upper()
        for f in dataclasses.fields(Settings)
        if dataclasses.is_dataclass(getattr(defaults, f.name))
        for sf in dataclasses.fields(getattr(defaults, f.name))
    ]
    return [*names, f"{PREFIX}DEV"]


def _unknown_names(environ: Mapping[str, str]) -> list[str]:
    """A mistyped variable would silently leave its setting at the default: refuse it, and
    name the closest one the product reads."""
    known = setting_names()
    out = []
    for name in sorted(environ):
        if name.startswith(PREFIX) and name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            out.append(f"{name}: not a setting" + (f" (did you mean {close[0]}?)" if close else ""))
    return out


DEV_JWT_SECRET = "dev-only-secret-change-me-0123456789abcdef"
DEV_SERVICE_KEY = "dev-service-key"

T = TypeVar("T")


def _by_type(default: object) -> Callable[[str], Any]:
    if isinstance(default, bool):
        return _bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    return str


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _origins(text: str) -> frozenset[str]:
    return frozenset(o.strip() for o in text.split(",") if o.strip())


def _services(text: str) -> tuple[ServiceKey, ...]:
    """JSON: {"posts": {"key": "...", "events": ["like", "unlike"]}, ...}; events may be ["*"].
    Empty: none (a role that needs them says so)."""
    if not text.strip():
        return ()
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError("expected a JSON object of service name → {key, events}")
    out = []
    for name, spec in raw.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("key"), str):
            raise ValueError(f"service {name!r} needs a string 'key'")
        if len(spec["key"]) < 16:
            raise ValueError(f"service {name!r}: key must be at least 16 characters")
        events = spec.get("events", ["*"])
        if events == ["*"]:
            events = sorted(TYPE_NAMES)
        unknown = set(events) - TYPE_NAMES
        if unknown:
            raise ValueError(f"service {name!r}: unknown event types {sorted(unknown)}")
        out.append(ServiceKey(name, spec["key"], frozenset(events)))
    return tuple(out)


def _words(text: str) -> tuple[str, ...]:
    """Comma-separated, or one per line when the text has several lines (regexes may hold commas)."""
    return tuple(w.strip() for w in text.split("\n" if "\n" in text.strip() else ",") if w.strip())


def _blocklist(text: str) -> tuple[str, ...]:
    """Entries separated by commas or newlines; `re:` entries must compile."""
    entries = _words(text)
    for entry in entries:
        if entry.startswith("re:"):
            try:
                re.compile(entry[3:].rpartition("=")[0] or entry[3:])
            except re.error as exc:
                raise ValueError(f"entry {entry!r}: {exc}") from None
    return entries


def _thresholds(text: str) -> tuple[Threshold, ...]:
    """JSON: {"classifier": {"flag": 0.6, "hold": 0.95, "drop": 2}, ...}; omitted scores keep the rule's."""
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ValueError('expected {"rule": {"flag": n, "hold": n, "drop": n}, ...}')
    out = []
    for rule, spec in raw.items():
        if set(spec) - {"flag", "hold", "drop"} or not all(isinstance(v, int | float) for v in spec.values()):
            raise ValueError(f"rule {rule!r}: only numeric flag, hold and drop scores")
        given = [spec[k] for k in ("flag", "hold", "drop") if k in spec]
        if given != sorted(given) or any(v < 0 for v in given):
            raise ValueError(f"rule {rule!r}: need 0 <= flag <= hold <= drop")
        out.append(Threshold(rule, **spec))
    return tuple(out)


_PARSERS: dict[str, Callable[[str], Any]] = {
    "allowed_origins": _origins,
    "services": _services,
    "blocklist": _blocklist,
    "blocked_domains": _words,
    "thresholds": _thresholds,
}
