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
             "title": "OpenAI Batch API (half price, within 24 h)",
             "help": "The run's requests go into one batch job at a time; answers arrive within 24 hours at 50% of "
                     "the live price. Closing the app or a crash never pays twice: the run picks the batch up again.",
             "options": []},
        ],
    },
}
