"""Redis's own cost of cluster mode per command a script runs: the same script (LLEN and HLEN of
two keys of one slot, 200 times each) on one Redis and on one node in cluster mode holding every
slot. Redis CPU (`used_cpu_user + used_cpu_sys`) per inner command, the median of `--rounds`.

    python -m loadtest.clustertax --rounds 5 --out loadtest/results/cluster-tax.json
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import orjson
import redis

from .cluster import private_cluster
from .clusterbench import single_server

SOURCE = "for i = 1, 200 do redis.call('LLEN', KEYS[1]); redis.call('HLEN', KEYS[2]) end return 1"
INNER = 400  # commands each call runs
CALLS = 2000  # per round


def _cpu_s(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def per_inner_command_us(client: redis.Redis) -> float:
    sha = client.script_load(SOURCE)
    before = _cpu_s(client)
    pipe = client.pipeline(transaction=False)
    for _ in range(CALLS):
        pipe.evalsha(sha, 2, "a{x}", "b{x}")
    pipe.execute()
    return (_cpu_s(client) - before) * 1e6 / (CALLS * INNER)


def run(rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {"command": f"python -m loadtest.clustertax --rounds {rounds}"}
    with tempfile.TemporaryDirectory(prefix="clustertax-") as tmp:
        with (
            single_server(Path(tmp) / "single") as url,
            private_cluster(Path(tmp) / "cluster", masters=1, replicas=0) as lab,
        ):
            one = redis.Redis.from_url(url)
            node = redis.Redis(port=lab.nodes[0].port)
            rows: dict[str, list[float]] = {"single": [], "cluster_mode": []}
            for _ in range(rounds):  # alternating, so the machine's load hits both alike
                rows["single"].append(per_inner_command_us(one))
                rows["cluster_mode"].append(per_inner_command_us(node))
            one.close()
            node.close()
    out["rounds_us"] = {k: [round(v, 4) for v in vs] for k, vs in rows.items()}
    out["median_us"] = {k: round(statistics.median(vs), 4) for k, vs in rows.items()}
    out["cluster_mode_vs_single"] = round(out["median_us"]["cluster_mode"] / out["median_us"]["single"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    text = orjson.dumps(run(args.rounds), option=orjson.OPT_INDENT_2).decode()
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
