"""Teacher-driven sample generation (teacher calls go through the shared client, ``studio.core.llm``).

    prompts.py      Alpaca prompt builder and the forgiving numbered-batch parser
    filters.py      the quality checks (SAMPLE_FILTERS entries) with reason codes; the near-duplicate index is injected
    config.py       RunConfig (saved with the run, never with the key), its validation, the cost estimate
    modes.py        a mode builds prompts and judges answers (GENERATION_MODES: Alpaca; self_instruct.py, four stages)
    repository.py   the repository of runs, requests, rejected candidates; a request's outcome commits in one transaction
    writer.py       the thread that commits judged answers
    engine.py       asyncio worker pool: budget, target, pause/stop, events; the start's pre-check (prepare_run)
    backends.py     how requests are sent (GENERATION_BACKENDS): live calls; a plugin's batch API (openai-batch)
    backend_jobs.py a backend's provider jobs and the requests each holds, committed before anything is uploaded
    events.py       the dataclasses the engine reports through (no Qt)
    cli_support.py  `distill-studio generate` and its text progress bar
"""
