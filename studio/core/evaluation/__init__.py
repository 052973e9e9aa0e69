"""Evaluate: Alpaca's blind pairwise comparison, with a human or an LLM judge (no Qt, no torch).

    model.py        the plain data: prompts, systems, settings, judge, evaluations, outcomes
    prompt_sets.py  evaluation-only prompt sets (``project.prompt_sets``)
    prompt_files.py reading a prompt set file (self-instruct JSONL, Alpaca JSON, prompt/messages JSONL)
    prompt_cli.py   the ``eval prompts`` commands
    guard.py        the wall: Generate and Train refuse evaluation prompts; pre-flight warns on near ones
    store.py        evaluations and the answer / judgment caches (``project.evaluations``)
    systems.py      a system spec to a client: endpoints, and the studio's base and runs via its server
    judge.py        the pairwise template and reading its verdict
    engine.py       answers and verdicts, concurrently, cached, with retries and a budget
    votes.py        blind human votes (``project.votes``)
    stats.py        win rates, intervals, length control, Bradley–Terry, export
    lost.py         the prompts a system lost, back into seeds and Curate
"""
