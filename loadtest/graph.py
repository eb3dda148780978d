"""A seeded synthetic social graph: follower counts follow a power law, and an event's recipients
(post owners, mentioned users) are drawn in proportion to them, so popular users get more."""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

MEAN_FOLLOWERS: Final = 50


def user_id(index: int) -> str:
    return f"u{index}"


@dataclass(slots=True)
class SocialGraph:
    """`users` users; user i has `followers[i]` followers, a Zipf law of exponent `skew` over a
    seeded random ranking (skew 0 is uniform). Users `online` (a seeded subset of `clients`
    of them) hold a WebSocket during the run."""

    users: int
    clients: int
    skew: float
    seed: int
    followers: list[int] = field(init=False)
    online: list[int] = field(init=False)  # user indices with a client, in client order
    _cumulative: list[float] = field(init=False)
    _online_set: frozenset[int] = field(init=False)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        if self.users < 2:
            raise ValueError("the graph needs at least 2 users")
        if not 0 <= self.clients <= self.users:
            raise ValueError("clients must be between 0 and users")
        rng = random.Random(self.seed)
        ranks = list(range(1, self.users + 1))
        rng.shuffle(ranks)
        weights = [rank**-self.skew for rank in ranks]
        scale = MEAN_FOLLOWERS * self.users / sum(weights)
        self.followers = [min(self.users - 1, max(1, round(w * scale))) for w in weights]
        self._cumulative = list(itertools.accumulate(float(f) for f in self.followers))
        self.online = sorted(rng.sample(range(self.users), self.clients))
        self._online_set = frozenset(self.online)
        self._rng = random.Random(self.seed + 1)

    def is_online(self, user: int) -> bool:
        return user in self._online_set

    def recipients(self, k: int, exclude: int = -1) -> list[int]:
        """`k` distinct users other than `exclude`, each drawn in proportion to its followers."""
        if not 1 <= k < self.users:
            raise ValueError(f"cannot pick {k} recipients among {self.users} users")
        total = self._cumulative[-1]
        chosen: dict[int, None] = {}
        attempts = 0
        while len(chosen) < k:
            attempts += 1
            if attempts > 50 * k:  # extreme skew: the heavy head is exhausted, fill uniformly
                pick = self._rng.randrange(self.users)
            else:
                pick = bisect.bisect_right(self._cumulative, self._rng.random() * total)
            if pick != exclude and pick < self.users:
                chosen[pick] = None
        return list(chosen)

    def top_share(self, n: int = 1) -> float:
        """The share of all draws that go to the `n` most followed users."""
        ordered: Sequence[int] = sorted(self.followers, reverse=True)
        return sum(ordered[:n]) / self._cumulative[-1]
