"""The training job's seeded train/validation split, torch-free so the GUI process shares it.

The job (``studio.train.job``) holds out exactly these records for its eval loss and sample
answers; the evaluation side (``studio.core.evaluation``) takes the same records as an
evaluation-only prompt set and lets a run that holds them out train on the rest. One function,
so the two can never disagree about which records were held out.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")


class SplitSettings(Protocol):
    """The three training settings the split reads (``TrainSettings`` has them)."""

    seed: int
    validation_fraction: float
    max_validation_samples: int


def held_out_indexes(count: int, settings: SplitSettings) -> list[int]:
    """Indexes of the held-out records among ``count``, in the order the job holds them out.

    ``validation_fraction`` of the records, at most ``max_validation_samples``; at least one
    when a fraction is asked and there are 10 records or more; never every record.
    """
    order = list(range(count))
    random.Random(settings.seed).shuffle(order)
    held = min(settings.max_validation_samples, round(count * settings.validation_fraction))
    if settings.validation_fraction > 0 and held == 0 and count >= 10:
        held = 1
    held = max(0, min(held, count - 1))
    return order[:held]


def split_records(records: Sequence[T], settings: SplitSettings) -> tuple[list[T], list[T]]:
    """(training records in their order, held-out records in the order they were drawn)."""
    held = held_out_indexes(len(records), settings)
    chosen = set(held)
    return [r for i, r in enumerate(records) if i not in chosen], [records[i] for i in held]
