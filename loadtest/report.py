"""Writing a run down: the JSON result, a Markdown summary and a PNG of latency, throughput and
backlog over time (matplotlib, Agg backend: no display needed). The stage benchmarks bring
their own Markdown and no PNG, and share the table helpers here."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import matplotlib
import orjson

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def stem_for(name: str) -> str:
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def latency_rows(latency: dict[str, dict[str, Any]]) -> list[str]:
    rows = ["| latency (ms) | count | p50 | p90 | p99 | p99.9 | max |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, h in latency.items():
        cells = [fmt(h.get(k)) for k in ("count", "p50", "p90", "p99", "p99.9", "max")]
        rows.append(f"| {name.replace('_', ' ')} | " + " | ".join(cells) + " |")
    return rows


def passed(led: dict[str, Any]) -> bool:
    """Nothing lost but what the inbox cap kept out unpushed (loadtest/lost.py), nothing doubled,
    nothing unexpected."""
    lost = led["lost"] - led.get("lost_by_design", 0)
    return bool(lost == 0 and led["duplicated"] == 0 and led["unexpected"] == 0)


def markdown(r: dict[str, Any]) -> str:
    s, t, led = r["scenario"], r["throughput"], r["ledger"]
    verdict = "PASS" if passed(led) else "FAIL"
    lines = [
        f"# loadtest `{s['name']}` against {r['target']['kind']} ({r['started_at']})",
        "",
        s["description"],
        "",
        f"Knobs: clients={s['clients']} users={r['graph']['users']} rate={s['rate']}"
        + (f"→{s['ramp_to']}" if s["ramp_to"] else "")
        + f" events/s fanout={s['fanout']} batch={s['batch']} concurrency={s['concurrency']} "
        f"duration={s['duration_s']}s skew={s['skew']} seed={s['seed']} "
        f"storm_every={s['storm_every_s']}s workers={s['workers']} gateways={s['gateways']}"
        + "".join(f" {k}={v}" for k, v in r.get("stack_env", {}).items()),
        "",
        f"## Ledger: {verdict}",
        "",
        f"reach **{led['reach']:.6f}** ({fmt(led['received'])} of {fmt(led['expected'])} expected "
        f"notifications to online recipients), lost {led['lost']}, duplicated {led['duplicated']}, "
        f"unexpected {led['unexpected']}, recovered {led['recovered']}"
        + (f". What explain says of the lost pairs: {led['lost_states']}" if led.get("lost_states") else ""),
        "",
        "## Throughput",
        "",
        f"offered {fmt(t['offered_eps'])} events/s, sent {fmt(t['sent_eps'])}, accepted "
        f"{fmt(t['accepted_eps'])}, delivered {fmt(t['delivered_nps'])} notifications/s"
        + (
            f"; fan-out processed {fmt(t['fanout_processed_eps'])} events/s while it had a backlog "
            f"(peak second {fmt(t['fanout_processed_eps_peak'])})"
            if t["fanout_processed_eps"] is not None
            else ""
        )
        + f". Phases: {r['phases_s']}. "
        + (f"Requests by HTTP status: {t['requests']}. " if t["requests"] else "")
        + f"Events: {t['events']}.",
        "",
        *latency_rows(r["latency_ms"]),
        "",
        f"Clients: {r['clients']['connected_at_start']}/{r['clients']['online']} connected at start; "
        f"connect ms {r['clients']['connect_ms']}; counts {r['clients']['counts']}",
        "",
        "## Resources",
        "",
        *resource_rows(r["processes"]),
    ]
    gw = r["processes"].get("gateway", {})
    if gw.get("rss_per_connection_kb") is not None:
        lines += ["", f"Gateway RSS per connection: {gw['rss_per_connection_kb']} KB"]
    if r["memory"]:
        m = r["memory"]
        lines += [
            "",
            f"Redis memory {m['used_before_mb']} → {m['used_after_mb']} MB; "
            f"{fmt(m['notifications_stored'])} notifications stored; "
            f"**{fmt(m['bytes_per_notification'])} bytes per stored notification** "
            f"({fmt(m['bytes_per_accepted_event'])} per accepted event, event log included). "
            f"Per stored notification by what the bytes are for: {kind_summary(m['by_kind'])}. "
            f"The inbox keys by fill: {fill_summary(m['inbox_by_fill'])}.",
            "",
            *family_rows(m["families"]),
        ]
    if r.get("redis_commands"):
        lines += ["", *command_rows(r["redis_commands"], "accepted event")]
    lines += ["", "## Over time", "", *_timeline_rows(r)]
    f = r["fanout"]
    lines += [
        "",
        f"Backlog: max {f['max_backlog']}, final lag {f['final_lag']} pending {f['final_pending']}.",
    ]
    if r["notes"] or r["clients"]["failures"]:
        lines += ["", "Notes:", *[f"- {n}" for n in r["notes"] + r["clients"]["failures"]]]
    return "\n".join(lines) + "\n"


def kind_summary(by_kind: Mapping[str, Mapping[str, Any]]) -> str:
    """`inbox 135, event log 47, ...`: bytes per stored notification (loadtest.metrics.bytes_by_kind)."""
    return ", ".join(f"{kind} {fmt(row['bytes_per_notification'])}" for kind, row in by_kind.items())


def fill_summary(by_fill: Mapping[str, Mapping[str, Any]]) -> str:
    """`3 users at the cap: 140 B per notification held, ...` (loadtest.metrics.inbox_fill)."""
    return ", ".join(
        f"{fmt(row['users'])} users {fill} {fmt(row['bytes_per_notification'])} B per notification held"
        for fill, row in by_fill.items()
    )


def family_rows(families: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Redis memory by key family (MEMORY USAGE summed; loadtest.metrics.key_families)."""
    rows = ["| key family | keys | MB | bytes / notification | encodings |", "|---|---:|---:|---:|---|"]
    for name, row in families.items():
        encodings = ", ".join(f"{k} {fmt(v)}" for k, v in row["encodings"].items())
        per = fmt(row["bytes_per_notification"])
        cells = [fmt(row["keys"]), f"{row['bytes'] / 2**20:,.2f}", per, encodings]
        rows.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return rows


def command_rows(commands: Mapping[str, Mapping[str, Any]], per: str) -> list[str]:
    """The `redis_commands` of a result (loadtest.metrics.commands_per_event) as a table."""
    return [
        "## Redis time by command (INFO commandstats)",
        "",
        "EVALSHA's time includes the commands its scripts run, which are also counted under their own names.",
        "",
        f"| command | calls | calls per {per} | µs per {per} |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {fmt(c['calls'])} | {c.get('per_event', '')} | {fmt(c['us_per_event'])} |"
            for name, c in commands.items()
        ),
    ]


def resource_rows(processes: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """CPU in % of one core: over the whole measured time, and the once-a-second mean and peak."""
    keys = ("cpu_pct", "cpu_avg_pct", "cpu_max_pct", "cpu_s", "rss_peak_mb")
    rows = [
        "| process | cpu % | cpu avg % (per s) | cpu max % (per s) | cpu s | rss peak MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for role, p in processes.items():
        rows.append(f"| {role} | " + " | ".join(fmt(p.get(k)) for k in keys) + " |")
    return rows


def _timeline_rows(r: dict[str, Any], most: int = 30) -> list[str]:
    latency = {row["t"]: row for row in r["timeline_latency"]}
    rows = [
        "| t s | offered ev/s | accepted ev/s | delivered n/s | backlog | p50 ms | p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    timeline = r["timeline"]
    step = max(1, -(-len(timeline) // most))
    for row in timeline[::step]:
        second = latency.get(round(row["t"]), {})
        backlog = row.get("lag", 0) + row.get("pending", 0) if "lag" in row else None
        cells = [row["t"], row["offered_eps"], row["accepted_eps"], row["delivered_nps"], backlog]
        cells += [second.get("p50_ms"), second.get("p99_ms")]
        rows.append("| " + " | ".join(fmt(c) for c in cells) + " |")
    return rows


def plot(r: dict[str, Any], path: Path) -> None:
    timeline, latency = r["timeline"], r["timeline_latency"]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    if latency:
        xs = [row["t"] for row in latency]
        for key in ("p50_ms", "p99_ms", "max_ms"):
            ax1.plot(xs, [row[key] for row in latency], label=key.replace("_ms", ""))
        ax1.set_yscale("log")
    ax1.set_ylabel("send→receive ms")
    ax1.legend(loc="upper left")
    xs = [row["t"] for row in timeline]
    for key in ("offered_eps", "accepted_eps", "processed_eps"):
        ax2.plot(xs, [row.get(key) or 0 for row in timeline], label=key.replace("_", " "))
    ax2.set_ylabel("events/s")
    ax2b = ax2.twinx()
    ax2b.plot(xs, [row["delivered_nps"] for row in timeline], "k:", label="delivered notifications/s")
    ax2b.set_ylabel("notifications/s")
    ax2.legend(loc="upper left")
    ax2b.legend(loc="upper right")
    ax3.plot(xs, [row.get("lag", 0) for row in timeline], label="lag")
    ax3.plot(xs, [row.get("pending", 0) for row in timeline], label="pending")
    ax3.set_ylabel("entries")
    ax3.set_xlabel("seconds since start")
    ax3.legend(loc="upper left")
    fig.suptitle(f"loadtest {r['scenario']['name']} vs {r['target']['kind']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(
    result: dict[str, Any],
    out: Path,
    stem: str,
    *,
    render: Callable[[dict[str, Any]], str] = markdown,
    draw: Callable[[dict[str, Any], Path], None] | None = plot,
) -> list[Path]:
    """`stem`.json, `stem`.md by `render`, and `stem`.png by `draw` (none when it is None)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.json", out / f"{stem}.md"]
    paths[0].write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    paths[1].write_text(render(result))
    if draw is not None:
        paths.append(out / f"{stem}.png")
        draw(result, paths[2])
    return paths
