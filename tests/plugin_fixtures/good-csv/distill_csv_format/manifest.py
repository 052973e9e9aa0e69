"""What this plugin adds. Plain data only: Distill Studio reads it without importing anything."""

MANIFEST = {
    "name": "csv-format",  # the plugin's id: the entry point's name in pyproject.toml
    "version": "1.0.0",
    "studio": ">=0.1,<0.2",  # the Distill Studio versions it works with (PEP 440)
    "title": "CSV files",
    "description": "Import and export seed tasks and samples as CSV with instruction, input and output columns.",
    "contributions": {
        "dataset_formats": [
            {
                "key": "csv",  # what --format and saved settings say
                "target": "distill_csv_format.csv_format:CSV_FORMAT",  # imported on first use
                "title": "CSV",
                "help": "A header row instruction,input,output, then one record per row.",
                "extensions": [".csv"],  # what the file dialogs offer, read without importing the plugin
            },
        ],
    },
}
