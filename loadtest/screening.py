"""python -m loadtest.screening: what moderation's screening costs the fan-out worker, per call and
per text, on the labelled set's texts (notifier/moderation/evalset.jsonl): the classifier as the
product scores (notifier/moderation/classifier.py) against the package's own `predict_prob`, in
alternating repetitions of the same batches (so the machine's speed cancels out of the ratio), and
each rule's CPU per text. Writes `screening-YYYYmmdd-HHMMSS.{json,md}` under `--out`.

The load generator's comments and mentions carry no text (a held event would look lost to its
ledger), so the end-to-end benchmarks never pay this; this one measures it alone.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from notifier.moderation.classifier import ProfanityCheck
from notifier.moderation.evaluate import load_set
from notifier.moderation.rules import Subject
from notifier.moderation.ruleset import build_rules
from notifier.runtime.settings import Settings

BATCHES = (1, 20, 256)


def _ms_per_call(call: Callable[[Any], object], arg: Any, repeat: int) -> float:
    started = time.process_time()
    for _ in range(repeat):
        call(arg)
    return (time.process_time() - started) / repeat * 1e3


def measure(repeat: int) -> dict[str, Any]:
    from profanity_check import predict_prob

    texts = [s.text for s in load_set()]
    model = ProfanityCheck()
    classifier: dict[str, dict[str, float]] = {}
    for size in BATCHES:
        batch = texts[:size]
        ours = theirs = 0.0
        for _ in range(2):  # alternating: each side measured twice, interleaved
            ours += _ms_per_call(model.scores, batch, repeat)
            theirs += _ms_per_call(predict_prob, batch, repeat)
        classifier[str(size)] = {
            "product_ms": round(ours / 2, 3),
            "package_ms": round(theirs / 2, 3),
            "ratio": round(ours / theirs, 3),
        }
    subjects = [Subject(t) for t in texts]
    rules = {}
    for rule in build_rules(Settings.from_env({}).moderation, None):  # the classifier is above
        ms = _ms_per_call(rule.check, subjects, max(1, repeat // 10))
        rules[rule.name] = round(ms * 1e3 / len(subjects), 2)
    return {
        "texts": len(texts),
        "repeat": repeat,
        "classifier_per_call": classifier,
        "rule_us_per_text": rules,
    }


def markdown(r: dict[str, Any]) -> str:
    lines = [
        f"# loadtest `screening`: moderation's CPU on {r['texts']} labelled texts",
        "",
        "| texts a call | product ms | package `predict_prob` ms | ratio |",
        "|---:|---:|---:|---:|",
        *(
            f"| {size} | {c['product_ms']} | {c['package_ms']} | {c['ratio']} |"
            for size, c in r["classifier_per_call"].items()
        ),
        "",
        "| rule | µs of CPU per text |",
        "|---|---:|",
        *(f"| {name} | {us} |" for name, us in r["rule_us_per_text"].items()),
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.screening", description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=50, help="calls per measurement")
    p.add_argument("--out", type=Path, default=Path("loadtest/results"))
    args = p.parse_args(argv)
    result = measure(args.repeat)
    text = markdown(result)
    print(text, end="")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"screening-{time.strftime('%Y%m%d-%H%M%S')}"
    stem.with_suffix(".json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    stem.with_suffix(".md").write_text(text)
    print(f"→ {stem}.json, {stem}.md")


if __name__ == "__main__":
    main()
