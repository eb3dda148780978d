"""The offensive-language model shipped inside `alt-profanity-check` (a linear SVM over word
n-grams, loaded from the package's own files: nothing is downloaded, about 1 s to load).

The package's `predict_prob` asks scikit-learn's `CalibratedClassifierCV.predict_proba`, which
validates its input and runs each of its five calibrated SVMs through the full estimator API:
~2.5 ms a call however few texts it gets (`python -m loadtest.screening`), where the arithmetic
takes microseconds. The fan-out screens a small batch at a time, so that fixed cost was most of
a comment's screening. Here the five SVMs' weights and their sigmoid calibrations are read once
(`_Linear`), and a call is one TF-IDF transform (the vectorizer's public `transform`) and one
sparse-by-dense product. The attributes read belong to scikit-learn's fitted calibration objects
(`calibrated_classifiers_`, each one's `estimator` and `calibrators`, a calibrator's `a_` and
`b_`), some of them on private classes: `_Linear` is the only code that reads them, it refuses a
model that is not what it expects, and tests/moderation/test_rules.py compares its scores with
the package's own on the labelled set, so an upgrade that changes them fails there by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class _Linear:
    """K calibrated linear SVMs, averaged: score = mean_k expit(-(a_k (x·w_k + c_k) + b_k))."""

    weights: Any  # (features, K)
    intercepts: NDArray[np.float64]  # (K,)
    slopes: NDArray[np.float64]  # a_k
    offsets: NDArray[np.float64]  # b_k

    @classmethod
    def of(cls, model: Any) -> _Linear:
        members = model.calibrated_classifiers_
        if model.method != "sigmoid" or list(model.classes_) != [0, 1]:
            raise TypeError(f"expected a binary sigmoid-calibrated model, got {model!r}")
        columns, intercepts, slopes, offsets = [], [], [], []
        for member in members:
            (calibrator,) = member.calibrators  # binary: one, for the positive class
            coef = np.asarray(member.estimator.coef_, dtype=np.float64)
            if coef.shape[0] != 1:
                raise TypeError(f"expected one decision function per SVM, got {coef.shape}")
            columns.append(coef[0])
            intercepts.append(float(np.ravel(member.estimator.intercept_)[0]))
            slopes.append(float(calibrator.a_))
            offsets.append(float(calibrator.b_))
        return cls(np.column_stack(columns), np.array(intercepts), np.array(slopes), np.array(offsets))

    def scores(self, features: Any) -> NDArray[np.float64]:
        decisions = np.asarray(features @ self.weights) + self.intercepts  # (texts, K)
        calibrated: NDArray[np.float64] = 1.0 / (1.0 + np.exp(self.slopes * decisions + self.offsets))
        mean: NDArray[np.float64] = calibrated.mean(axis=1)
        return mean


class ProfanityCheck:
    """A `TextClassifier`: the package's model, scored as its `predict_prob` scores it."""

    def __init__(self) -> None:
        from profanity_check import profanity_check as package  # loads the model: import only when wanted

        self._vectorize = package.vectorizer.transform
        self._linear = _Linear.of(package.model)

    def scores(self, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        scored: list[float] = self._linear.scores(self._vectorize(list(texts))).tolist()
        return scored
