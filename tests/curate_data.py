"""A generated project for the curation tests: varied statuses, origins, runs, ratings, tags, lengths."""
from __future__ import annotations

import random
import time

from studio.core.project import Project
from studio.core.samples import Origin, Sample, Status

# No word is a substring of another, so LIKE '%word%' and FTS agree in the cross-checks.
VOCAB = ("zebra", "quartz", "maple", "harbor", "violin", "copper", "meadow", "lantern",
         "orbit", "pepper", "glacier", "saddle", "tundra", "walnut", "ember", "image")


def fill(project: Project, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    now = time.time()
    project.conn.executemany(
        "INSERT INTO generation_runs (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
        [(1, "run one", now, now), (2, "run two", now, now)],
    )
    samples = []
    for i in range(n):
        words = lambda k: " ".join(rng.choice(VOCAB) for _ in range(k))  # noqa: E731
        samples.append(Sample(
            instruction=f"{words(rng.randint(1, 12))} task{i}",
            input=words(rng.randint(0, 3)),
            output=words(rng.randint(1, 40)),
            status=rng.choice(list(Status)),
            origin=rng.choice([Origin.GENERATED, Origin.IMPORTED, Origin.MANUAL]),
            run_id=rng.choice([None, 1, 2]),
            rating=rng.choice([None, None, 1, 3, 5]),
            tags=rng.choice([[], [], ["math"], ["math", "style"], ["style"]]),
            teacher_model=rng.choice([None, "gpt-x"]),
        ))
    project.samples.add_many(samples)
