"""The plugin's manifest: plain data, read by Distill Studio without importing this package."""

MANIFEST = {
    "name": "openai-batch",
    "version": "0.1.0",
    "studio": ">=0.1,<0.2",
    "title": "OpenAI Batch API",
    "description": "Generate through the OpenAI Batch API: the same requests at half the price, answered within 24 hours.",
    "contributions": {
        "generation_backends": [
            {"key": "openai-batch", "target": "distill_openai_batch.backend:BATCH_BACKEND",
             "title": "OpenAI Batch API (half price, within 24 h)", "provider": "OpenAI",
             "help": "The run's requests go into one batch job at a time; answers arrive within 24 hours at 50% of "
                     "the live price. Closing the app or a crash never pays twice: the run picks the batch up again.",
             "options": [
                 {"key": "retry_failed", "title": "Retry failed lines", "type": "choice", "default": "batch",
                  "choices": [["batch", "in a follow-up batch (half price)"], ["live", "as live calls (at once)"]],
                  "help": "Lines the provider failed (server errors, rate limits) or an expired batch never ran: "
                          "send them again in a follow-up batch, or at once as live calls at the live price."},
                 {"key": "batch_size", "title": "Requests per batch", "type": "int", "default": 5000, "min": 1,
                  "max": 50000,
                  "help": "The most requests in one batch (OpenAI allows 50,000). The run's launch rules decide "
                          "how many exist at once, so a batch holds the run's next wave."},
                 {"key": "poll_s", "title": "Check every (s)", "type": "float", "default": 30.0, "min": 0.01,
                  "max": 3600.0, "help": "Seconds between status checks of a batch at the provider."},
                 {"key": "collect_s", "title": "Gather for (s)", "type": "float", "default": 2.0, "min": 0.0,
                  "max": 600.0,
                  "help": "A batch is sent once this many seconds pass without a new request (or it is full)."},
             ]},
        ],
    },
}
