"""The built-in contributions, written as plain data exactly as a plugin's manifest will be.

Each list belongs to one extension point of :mod:`studio.core.registry`; an item names its
code as ``"module:attr"`` and carries what a chooser shows (``title``, ``help``) plus any
metadata that point defines. Nothing here is imported until an entry is loaded.
"""
from __future__ import annotations

CONTRIBUTIONS: dict[str, list[dict]] = {
    # -- generation modes: a class taking a ModeContext (studio.core.generation.modes.Mode) --------
    "generation_modes": [
        {"key": "alpaca", "target": "studio.core.generation.modes:AlpacaMode", "title": "Alpaca",
         "help": "One prompt shows k example tasks and asks for a numbered batch of complete new tasks (Stanford Alpaca)."},
        {"key": "self-instruct", "target": "studio.core.generation.self_instruct:SelfInstructMode",
         "title": "Self-Instruct",
         "help": "Separate stages: new instructions, classification check, then instances for each (Wang et al.)."},
    ],
    # -- dataset formats: a studio.core.formats.DatasetFormat ----------------------------------------
    "dataset_formats": [
        {"key": "seed", "target": "studio.core.formats:SEED_FORMAT", "title": "Self-instruct seed JSONL"},
        {"key": "alpaca", "target": "studio.core.formats:ALPACA_FORMAT", "title": "Alpaca JSON"},
        {"key": "jsonl", "target": "studio.core.formats:PROMPT_COMPLETION_FORMAT", "title": "Prompt/completion JSONL"},
        {"key": "messages", "target": "studio.core.formats:MESSAGES_FORMAT", "title": "Chat messages JSONL"},
    ],
    # -- dataset exporters: a studio.core.exports.Exporter -------------------------------------------
    "dataset_exporters": [
        {"key": "alpaca", "target": "studio.core.exports:ALPACA_EXPORTER", "title": "Alpaca JSON"},
        {"key": "jsonl", "target": "studio.core.exports:JSONL_EXPORTER", "title": "Prompt/completion JSONL"},
        {"key": "messages", "target": "studio.core.exports:MESSAGES_EXPORTER", "title": "Chat messages JSONL"},
        {"key": "hf", "target": "studio.core.exports:HF_EXPORTER", "title": "Hugging Face dataset folder"},
        {"key": "parquet", "target": "studio.core.exports:PARQUET_EXPORTER", "title": "Parquet"},
    ],
    # -- sample filters: a check class (settings, index) -> check(candidate) -> FilterVerdict | None, run in
    #    this order (meta: reason code; indexes=True: runs last, adds kept instructions to the index;
    #    wall=True: also given the project's evaluation wall) -----------------------------------------------
    "sample_filters": [
        {"key": "empty_output", "target": "studio.core.generation.filters:EmptyOutput", "title": "Empty output",
         "reason": "empty_output", "help": "The task has no output (tasks without one teach nothing)."},
        {"key": "too_short", "target": "studio.core.generation.filters:TooShort", "title": "Too short",
         "reason": "too_short", "help": "The instruction has fewer words than the minimum (Alpaca: more than 3)."},
        {"key": "too_long", "target": "studio.core.generation.filters:TooLong", "title": "Too long",
         "reason": "too_long", "help": "The instruction has more words than the maximum (Alpaca: 150)."},
        {"key": "bad_start", "target": "studio.core.generation.filters:BadStart", "title": "Bad start",
         "reason": "bad_start", "help": "The instruction starts with punctuation or a non-ASCII character."},
        {"key": "program_task", "target": "studio.core.generation.filters:ProgramTask", "title": "Program task",
         "reason": "program_task", "help": "The instruction starts with 'Write a program' (over-produced by teachers)."},
        {"key": "blacklist", "target": "studio.core.generation.filters:Blacklisted", "title": "Blacklisted word",
         "reason": "blacklist", "help": "The instruction names something a text-only model cannot do (image, draw...)."},
        {"key": "eval_prompt", "target": "studio.core.generation.filters:EvalPromptCheck",
         "title": "Evaluation prompt", "reason": "eval_prompt", "wall": True,
         "help": "The task is, or is near (ROUGE-L), a prompt of an evaluation-only set: evaluations never grade copies."},
        {"key": "near_duplicate", "target": "studio.core.generation.filters:NearDuplicate", "title": "Near duplicate",
         "reason": "near_duplicate", "indexes": True,
         "help": "ROUGE-L against a seed or a kept instruction is above the threshold (Alpaca: 0.7)."},
    ],
    # -- LLM endpoint kinds: a studio.core.llm.EndpointPreset ----------------------------------------
    "endpoint_kinds": [
        {"key": "openai", "target": "studio.core.llm.endpoint:OPENAI", "title": "OpenAI"},
        {"key": "vllm", "target": "studio.core.llm.endpoint:VLLM", "title": "vLLM (local)"},
        {"key": "ollama", "target": "studio.core.llm.endpoint:OLLAMA", "title": "Ollama"},
        {"key": "llama-cpp", "target": "studio.core.llm.endpoint:LLAMA_CPP", "title": "llama.cpp server"},
        {"key": "lm-studio", "target": "studio.core.llm.endpoint:LM_STUDIO", "title": "LM Studio"},
        {"key": "distill-studio", "target": "studio.core.llm.endpoint:DISTILL_STUDIO", "title": "Distill Studio server"},
    ],
    # -- trainers: a function (config_path: Path) -> list[str], the argv of a child process that trains the
    #    run its config.json describes and speaks the training events protocol (studio.core.training.events) --
    "trainers": [
        {"key": "peft-lora", "target": "studio.core.training.launch:peft_lora_command", "title": "LoRA (peft)",
         "help": "The studio's own trainer: python -m studio.train CONFIG (transformers + peft, one GPU or the CPU)."},
    ],
    # -- model exporters: a studio.core.exporting.ModelExporter (a child process writes the files) ------
    "model_exporters": [
        {"key": "adapter", "target": "studio.core.exporting:ADAPTER_EXPORTER", "title": "Adapter (peft)",
         "help": "The LoRA adapter alone: a folder that loads with plain peft on the base model."},
        {"key": "merged", "target": "studio.core.exporting:MERGED_EXPORTER", "title": "Merged Hugging Face model",
         "help": "Base + adapter merged (merge_and_unload): safetensors, tokenizer, chat template, model card."},
        {"key": "gguf", "target": "studio.core.exporting:GGUF_EXPORTER", "title": "GGUF (llama.cpp, Ollama)",
         "help": "One GGUF file (f16, bf16, q8_0; q4_k_m with llama-cpp-python) plus an Ollama Modelfile."},
    ],
    # -- judges: a studio.core.evaluation.judge.Judge (reads a pairwise verdict from an LLM's answer) ---
    "judges": [
        {"key": "pairwise", "target": "studio.core.evaluation.judge:PAIRWISE_JUDGE", "title": "LLM judge, pairwise",
         "help": "An LLM compares two answers in both orders and names the better ([[A]], [[B]] or [[C]] for a tie)."},
    ],
    # -- generation backends: a studio.core.generation.backends.Backend (how requests reach the teacher) --
    "generation_backends": [
        {"key": "live", "target": "studio.core.generation.backends:LIVE_BACKEND", "title": "Live calls",
         "help": "Each request is sent at once and answered in seconds, at the endpoint's normal price."},
    ],
    # -- serving backends: a studio.core.serving.backends.ServingBackend (which server Start runs) --------
    "serving_backends": [
        {"key": "studio", "target": "studio.core.serving.backends:STUDIO_BACKEND", "title": "Studio server",
         "help": "The studio's own server (python -m studio.serve): the base model and the runs' adapters, "
                 "on the CPU or a GPU."},
    ],
    # -- panels: a studio.ui.panels.Panel subclass (imported by the UI only, on first visit) ---------
    "panels": [
        {"key": "seeds", "target": "studio.ui.seeds_panel:SeedsPanel", "title": "Seeds", "icon": "seeds.svg"},
        {"key": "generate", "target": "studio.ui.generate_panel:GeneratePanel", "title": "Generate",
         "icon": "generate.svg"},
        {"key": "curate", "target": "studio.ui.curate_panel:CuratePanel", "title": "Curate", "icon": "curate.svg"},
        {"key": "train", "target": "studio.ui.train_panel:TrainPanel", "title": "Train", "icon": "train.svg"},
        {"key": "chat", "target": "studio.ui.chat_panel:ChatPanel", "title": "Chat", "icon": "chat.svg"},
        {"key": "evaluate", "target": "studio.ui.evaluate_panel:EvaluatePanel", "title": "Evaluate",
         "icon": "evaluate.svg"},
    ],
}
