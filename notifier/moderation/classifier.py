"""The offensive-language model shipped inside `alt-profanity-check` (a linear SVM over word
n-grams, loaded from the package's own files: nothing is downloaded, about 1 s to load)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ProfanityCheck:
    """A `TextClassifier`; scores about a thousand short texts in 10 ms."""

    def __init__(self) -> None:
        from profanity_check import predict_prob  # loads the model: import only when wanted

        self._predict: Any = predict_prob

    def scores(self, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        return [float(p) for p in self._predict(list(texts))]
