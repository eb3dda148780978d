"""Redis's instructions over a window, counted by valgrind's callgrind (deterministic, unlike CPU
time on a shared machine): run every server under `wrapper(work)` with OPTIONS, note the servers'
pids (INFO server's process_id), `await control("-z", pids)` before the work and
`await control("-d", pids)` after it, then `dumped(work, pids)` sums what they executed in
between. Used by loadtest.applycost and loadtest.clusterbench."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Final

# valgrind runs a server ~50x slower: its cron once a second (~120,000 instructions a second of
# a window), and no cluster node judged failing
OPTIONS: Final = ("--hz", "1", "--cluster-node-timeout", "600000")


def wrapper(work: Path) -> tuple[str, ...]:
    return (
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={work}/callgrind.%p",
        f"--log-file={work}/valgrind.%p.log",
    )


async def control(option: str, pids: list[int]) -> None:
    """Zero (`-z`) or dump (`-d`) the counters of every server (callgrind_control answers once
    the server did it)."""
    for pid in pids:
        proc = await asyncio.create_subprocess_exec(
            "callgrind_control",
            option,
            str(pid),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0 or b"OK" not in out:
            raise RuntimeError(f"callgrind_control {option} {pid}: {out.decode()}")


def dumped(work: Path, pids: list[int], keep: Path | None = None, name: str = "") -> int:
    """The instructions of each server's last dump, summed; with `keep`, each dump is copied
    there as NAME-masterI.callgrind (for callgrind_annotate)."""
    total = 0
    for i, pid in enumerate(pids):
        dump = max(work.glob(f"callgrind.{pid}.*"), key=lambda p: int(p.suffix[1:]))
        summary = [line for line in dump.read_text().splitlines() if line.startswith("summary:")]
        if not summary:
            raise RuntimeError(f"no summary in {dump}")
        total += int(summary[0].split()[1])
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(dump, keep / f"{name}-master{i}.callgrind")
    return total
