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
    # -- sample filters: a check (candidate, settings) -> FilterVerdict, in this order ---------------
    "sample_filters": [],
    # -- LLM endpoint kinds: a studio.core.llm.EndpointPreset ----------------------------------------
    "endpoint_kinds": [],
    # -- for the next issues -------------------------------------------------------------------------
    "trainers": [],
    "model_exporters": [],
    "judges": [],
    # -- panels: a studio.ui.panels.Panel subclass (imported by the UI only, on first visit) ---------
    "panels": [
        {"key": "seeds", "target": "studio.ui.seeds_panel:SeedsPanel", "title": "Seeds", "icon": "seeds.svg"},
        {"key": "generate", "target": "studio.ui.generate_panel:GeneratePanel", "title": "Generate",
         "icon": "generate.svg"},
        {"key": "curate", "target": "studio.ui.curate_panel:CuratePanel", "title": "Curate", "icon": "curate.svg"},
    ],
}
