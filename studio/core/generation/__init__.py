"""Teacher-driven sample generation.

    teacher.py      endpoint config, presets, API key lookup (keyring, then env var), plain-words errors
    prompts.py      Alpaca prompt builder and the forgiving numbered-batch parser
    filters.py      quality filters with reason codes; the near-duplicate index is injected
    config.py       RunConfig (saved with the run, never with the key), price table, cost estimate
    modes.py        a mode builds prompts and judges answers (Alpaca); self_instruct.py (four stages)
    store.py        runs, requests, rejected candidates; a request's outcome commits in one transaction
    engine.py       asyncio worker pool: retries, backoff, budget, pause/stop, events
    events.py       the dataclasses the engine reports through (no Qt)
    cli_support.py  `distill-studio generate` and its text progress bar
"""
