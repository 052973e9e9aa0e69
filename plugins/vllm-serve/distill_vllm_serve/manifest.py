"""The plugin's manifest: plain data, read by Distill Studio without importing this package."""

MANIFEST = {
    "name": "vllm-serve",
    "version": "0.1.0",
    "studio": ">=0.1,<0.2",
    "title": "vLLM serving",
    "description": "Serve the base model and the runs' adapters with `vllm serve --enable-lora` (a GPU box).",
    "contributions": {
        "serving_backends": [
            {"key": "vllm", "target": "distill_vllm_serve.backend:VLLM_BACKEND", "title": "vLLM",
             "help": "vllm serve BASE --enable-lora --lora-modules name=path ..., tensor parallel over the GPUs present."},
        ],
    },
}
