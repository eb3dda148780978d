"""python -m loadtest SCENARIO [knobs]: run a bounded workload, check the ledger, write the report.

Without --api-url/--gateway-url it starts its own local stack (private redis-server and the
product's roles) and tears it down afterwards. Exit status 0 only when nothing was lost (but
what the inbox cap kept out before it was pushed: loadtest/lost.py), doubled or unexpected
(for `ingest`: every request answered 202 and the log holds every accepted event; for `fanout`:
drained, and the inboxes hold exactly the expected groups)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from notifier.runtime.settings import DEV_JWT_SECRET, AuthSettings

from . import fanout, homefeed, ingest, report
from .compare import BASELINES, compare_table
from .producers import SourceFactory, http_source
from .publisher import pubsub_source
from .runner import run_scenario
from .scenarios import FEED_MODES, PRESETS, Scenario, preset
from .stack import Target

SOURCES: dict[str, SourceFactory] = {"pipeline": http_source, "push": pubsub_source}
STAGE_BENCHES = {
    "ingest": ingest,
    "fanout": fanout,
    "homefeed": homefeed,
}  # modules: run, markdown, summary, passed

KNOBS: tuple[tuple[str, type, str], ...] = (
    ("clients", int, "online WebSocket clients"),
    ("users", int, "users in the graph (default: as many as clients)"),
    ("rate", float, "events/s offered, open loop; 0 = closed loop"),
    ("ramp_to", float, "grow the rate linearly to this"),
    ("duration_s", float, "seconds of producing"),
    ("fanout", int, "recipients per event (1 = comment, 2..50 = mention)"),
    ("batch", int, "events per POST (1 = single-event POSTs)"),
    ("concurrency", int, "API connections / closed-loop requests in flight"),
    ("skew", float, "Zipf exponent of follower counts"),
    ("storm_every_s", float, "reconnect storm period"),
    ("storm_fraction", float, "share of clients dropped per storm"),
    ("storm_jitter_s", float, "reconnects spread over this long"),
    ("drain_s", float, "longest wait for deliveries after producing"),
    ("events", int, "events preloaded into the log (fanout)"),
    ("seed", int, "seed of the graph and the workload"),
    ("partitions", int, "event-log partitions (local stack, or the target's)"),
    ("apis", int, "API processes (local stack)"),
    ("workers", int, "fan-out worker processes (local stack)"),
    ("gateways", int, "gateway processes (local stack)"),
    ("masters", int, "0: one redis-server; N: a Redis Cluster of N masters, no replicas (local stack)"),
    ("client_procs", int, "client processes (0 = one per 2,500 clients)"),
    ("connect_concurrency", int, "handshakes in flight per client process"),
    ("redis_cpus", str, "CPUs the redis-server runs on, a taskset -c list such as 0 (fanout)"),
    ("worker_cpus", str, "CPUs the worker runs on, such as 1 (fanout)"),
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__)
    p.add_argument("scenario", nargs="?", choices=sorted(PRESETS), help="preset; see --list")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--feed", action="store_true", help="the scenario's home-feed mode (celebrity)")
    for name, kind, help_text in KNOBS:
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=help_text)
    p.add_argument("--out", type=Path, default=Path("loadtest/results"), help="where results go")
    p.add_argument(
        "--compare",
        action="store_true",
        help="also run the Socket.IO baselines and compare (push: python-socketio and Node socket.io)",
    )
    p.add_argument("--env", action="append", default=[], metavar="NOTIFIER_X=V", help="for the local stack")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    remote = p.add_argument_group("an existing deployment (instead of a local stack)")
    remote.add_argument("--api-url", action="append", default=[], help="http://host:port (repeatable)")
    remote.add_argument("--gateway-url", action="append", default=[], help="ws://host:port (repeatable)")
    remote.add_argument("--redis-url", help="for lag and memory sampling (optional); push publishes there")
    remote.add_argument(
        "--redis-cluster", action="store_true", help="--redis-url lists seed nodes of a Redis Cluster"
    )
    remote.add_argument("--jwt-audience", default="notifier")
    remote.add_argument("--jwt-issuer", default="")
    presets = "\n".join(f"  {s.name:12} {s.description}" for s in _listed())
    p.epilog = (
        f"scenarios (full size; override any knob):\n{presets}\n\n"
        "Secrets for a deployment come from LOADTEST_SERVICE_KEY and LOADTEST_JWT_SECRET; aimed at\n"
        "`./dev.sh up` (dev mode) they are LOADTEST_SERVICE_KEY=dev-service-key and\n"
        f"LOADTEST_JWT_SECRET={DEV_JWT_SECRET}."
    )
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    return p


def _given(args: argparse.Namespace, scenario: Scenario) -> Target | None:
    if not args.api_url and not args.gateway_url:
        return None
    if scenario.stage in STAGE_BENCHES:
        raise SystemExit(f"{scenario.stage} runs on a local stack only")
    if scenario.stage == "push" and not (args.gateway_url and args.redis_url):
        raise SystemExit("push against a deployment needs --gateway-url and --redis-url (it publishes there)")
    if scenario.stage == "push" and args.redis_cluster:
        raise SystemExit("push publishes with PUBLISH: it runs against one Redis only")
    if scenario.masters:
        raise SystemExit("--masters starts a local cluster; against a deployment give --redis-cluster")
    if scenario.stage == "pipeline" and not (args.api_url and args.gateway_url):
        raise SystemExit("give both --api-url and --gateway-url (or neither, for a local stack)")
    key, secret = os.environ.get("LOADTEST_SERVICE_KEY", ""), os.environ.get("LOADTEST_JWT_SECRET")
    if not secret or (not key and scenario.stage != "push"):  # push posts nothing
        raise SystemExit("set LOADTEST_SERVICE_KEY and LOADTEST_JWT_SECRET for a deployment")
    auth = AuthSettings(jwt_secret=secret, jwt_audience=args.jwt_audience, jwt_issuer=args.jwt_issuer)
    return Target(
        "notifier",
        tuple(args.api_url),
        tuple(args.gateway_url),
        key,
        auth,
        args.redis_url,
        scenario.partitions,
        redis_cluster=args.redis_cluster,
    )


def _listed() -> list[Scenario]:
    """Every preset, each followed by its home-feed mode (named `NAME --feed`)."""
    out = []
    for name, scenario in PRESETS.items():
        out.append(scenario)
        if name in FEED_MODES:
            out.append(dataclasses.replace(preset(name, feed=True), name=f"{name} --feed"))
    return out


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so SIGTERM, like Ctrl-C, tears the local stack down


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.list:
        for listed in _listed():
            print(f"{listed.name:12} {listed.description}")
        return 0
    if args.scenario is None:
        parser().error("a scenario is required (see --list)")
    signal.signal(signal.SIGTERM, _interrupt)
    overrides: dict[str, Any] = {name: getattr(args, name) for name, _, _ in KNOBS}
    try:
        scenario = preset(args.scenario, feed=args.feed).with_overrides(overrides)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    if scenario.problems():
        raise SystemExit("; ".join(scenario.problems()))
    extra_env = dict(item.split("=", 1) for item in args.env)
    given = _given(args, scenario)
    stem = report.stem_for(scenario.name + ("-feed" if args.feed else ""))
    if scenario.stage in STAGE_BENCHES and args.compare:
        raise SystemExit(f"{scenario.stage} has no baseline to compare with")
    try:
        if scenario.stage in STAGE_BENCHES:
            return _stage(scenario, extra_env, args, stem)
        source = SOURCES[scenario.stage]
        result = run_scenario(
            scenario, given=given, extra_env=extra_env, progress=not args.quiet, source=source
        )
        baselines = {
            kind: run_scenario(scenario, kind=kind, progress=not args.quiet, source=source)
            for kind in (BASELINES[scenario.stage] if args.compare else ())
        }
    except (RuntimeError, OSError, ExceptionGroup) as exc:
        for message in _messages(exc):
            print(f"loadtest: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("loadtest: interrupted; the local stack is down", file=sys.stderr)
        return 130
    ok = _report(result, args.out, stem)
    for kind, baseline in baselines.items():
        suffix = "-baseline" if kind == "socketio" else f"-baseline-{kind}"
        ok = _report(baseline, args.out, stem + suffix) and ok
    if baselines:
        table = compare_table(result, baselines)
        (args.out / f"{stem}-compare.md").write_text(table)
        print(table)
    return 0 if ok else 1


def _stage(scenario: Scenario, extra_env: dict[str, str], args: argparse.Namespace, stem: str) -> int:
    """A stage benchmark with its own result and report (ingest, fanout, homefeed)."""
    bench = STAGE_BENCHES[scenario.stage]
    result = bench.run(scenario, extra_env=extra_env, progress=not args.quiet)
    paths = report.write(result, args.out, stem, render=bench.markdown, draw=None)
    print(f"{bench.summary(result)} → {', '.join(map(str, paths))}")
    return 0 if bench.passed(result) else 1


def _messages(exc: BaseException) -> list[str]:
    if isinstance(exc, BaseExceptionGroup):
        return [m for inner in exc.exceptions for m in _messages(inner)]
    return [f"{type(exc).__name__}: {exc}"]


def _report(result: dict[str, Any], out: Path, stem: str) -> bool:
    paths = report.write(result, out, stem)
    led, lat = result["ledger"], result["latency_ms"]["send_to_receive"]
    print(
        f"{result['scenario']['name']} vs {result['target']['kind']}: reach={led['reach']:.6f} "
        f"lost={led['lost']} (by design {led.get('lost_by_design', 0)}) "
        f"duplicated={led['duplicated']} unexpected={led['unexpected']} "
        f"p50={lat.get('p50')}ms p99={lat.get('p99')}ms p99.9={lat.get('p99.9')}ms max={lat.get('max')}ms "
        f"delivered={result['throughput']['delivered_nps']}/s → {', '.join(map(str, paths))}"
    )
    return report.passed(led)


if __name__ == "__main__":
    sys.exit(main())
