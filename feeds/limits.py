"""Caps and windows of the materialized views."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FeedLimits:
    max_groups: int = 200  # groups kept per inbox; the oldest beyond are dropped
    # change-log entries kept per user (the resume window): past a full inbox's worth of
    # changes a refetch of the first page costs a client less than a replay, and a busy user's
    # log held ~2x their inbox's bytes at 1,000
    max_changes: int = 256
    shown_actors: int = 3  # latest actors listed per group
    aggregation_window_ms: int = 86_400_000  # likes of one post / new followers group per window
    max_posts: int = 1_000  # live posts kept per author timeline; the oldest beyond are dropped
    max_home: int = 500  # posts kept per home feed (pushed at write time); the oldest are dropped
    celebrity_followers: int = 1_000  # from this many followers an author's posts are read-merged
    # a deleted post's tombstone is kept this long after the deletion was accepted (at least the
    # event log's NOTIFIER_FANOUT_RETAIN_MS: a replay or redelivery of its creation must find it)
    post_tombstone_ms: int = 7 * 86_400_000
    push_chunk: int = 1_000  # followers written per round trip of a write-time fan-out
    push_slice: int = 4  # chunks per fan-out call; a bigger fan-out resumes from its stored position
