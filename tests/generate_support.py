"""The project the Generate panel tests open: five short seed tasks, behind one ProjectContext."""
from __future__ import annotations

from collections.abc import Iterator

from studio.core.project import Project
from studio.core.seeds import Instance, SeedTask
from studio.ui.project_context import ProjectContext


def five_seed_context(project: Project) -> Iterator[ProjectContext]:
    """Fixture body (each test file binds it as ``context``): five seeds, the context closed after."""
    project.seeds.add_many([SeedTask(f"Give an example of seed topic number {i} for a student.",
                                     [Instance("", f"Example {i}.")]) for i in range(5)])
    ctx = ProjectContext(project)
    yield ctx
    ctx.close()
