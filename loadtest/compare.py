"""The `--compare` table: the notifier's run beside each Socket.IO baseline's, with ratios."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

Row = tuple[str, Callable[[dict[str, Any]], float | None], str]


def _latency(key: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda r: r["latency_ms"]["send_to_receive"].get(key)


def _cpu_per_1k(roles: set[str] | None) -> Callable[[dict[str, Any]], float | None]:
    """CPU seconds of the server processes (`roles`, or all but the generator) per 1,000 delivered."""

    def get(r: dict[str, Any]) -> float | None:
        delivered = r["ledger"]["received"]
        server = [
            p.get("cpu_s") or 0.0
            for role, p in r["processes"].items()
            if role != "generator" and (roles is None or role in roles)
        ]
        return 1000 * sum(server) / delivered if delivered else None

    return get


ROWS: tuple[Row, ...] = (
    ("send→receive p50 ms", _latency("p50"), "lower is better"),
    ("send→receive p99 ms", _latency("p99"), "lower is better"),
    ("send→receive max ms", _latency("max"), "lower is better"),
    ("delivered notifications/s", lambda r: r["throughput"]["delivered_nps"], "higher is better"),
    ("reach", lambda r: r["ledger"]["reach"], "1.0 is required"),
    ("server CPU s per 1k notifications", _cpu_per_1k(None), "lower is better"),
    ("gateway CPU s per 1k notifications", _cpu_per_1k({"gateway"}), "lower is better"),
)

# the baselines of each stage: python-socketio has an api and a gateway, Node's only a gateway
BASELINES: Final[dict[str, tuple[str, ...]]] = {
    "pipeline": ("socketio",),
    "push": ("socketio", "socketio-node"),
}
NAMES: Final = {
    "socketio": "python-socketio + AsyncRedisManager",
    "socketio-node": "Node socket.io + @socket.io/redis-adapter",
}

INTROS = {
    "pipeline": "The baseline stores nothing and cannot resume after a disconnect; the notifier persists "
    "every notification in an inbox and a change log before pushing it.",
    "push": "Push alone: the same messages PUBLISHed at the same open-loop rate to each server's Redis "
    "channel(s), one per event to one user. While both keep up, delivered/s equals the offered rate "
    "by construction: the capacity shows in CPU per notification, or in a run above the baseline's "
    "ceiling.",
}


def compare_table(ours: dict[str, Any], baselines: dict[str, dict[str, Any]]) -> str:
    """`baselines`: each baseline's result by its stack kind, in the table's column order."""
    kinds = list(baselines)
    lines = [
        f"# {ours['scenario']['name']}: notifier vs {' and '.join(NAMES[k] for k in kinds)}",
        "",
        INTROS.get(ours["scenario"].get("stage", "pipeline"), ""),
        "",
        "| measure | notifier | " + " | ".join(f"{k} | notifier ÷ {k}" for k in kinds) + " | |",
        "|---|---:|" + "---:|---:|" * len(kinds) + "---|",
    ]
    for name, get, hint in ROWS:
        a = get(ours)
        cells = []
        for kind in kinds:
            b = get(baselines[kind])
            cells += [_num(b), f"{a / b:.2f}" if a is not None and b else "–"]
        lines.append(f"| {name} | {_num(a)} | {' | '.join(cells)} | {hint} |")
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:,.3f}" if value < 10 else f"{value:,.1f}"
