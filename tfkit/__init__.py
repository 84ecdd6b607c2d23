"""tfkit: the classic Keras examples as fast, reproducible recipes.

tfkit writes what goes around `fit()`: data, callbacks, optimizer set-up, run folder,
export. It never hides `fit()`. The public API is below; each name is imported from
its module on first use, so `python -m tfkit list` starts without TensorFlow.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC_API = {
    # Configuration and the command line.
    "TrainConfig": "tfkit.config",
    "ClassifierConfig": "tfkit.config",
    "flag": "tfkit.config",
    "parse_config": "tfkit.cli",
    "DataError": "tfkit.errors",
    "TrainingStopped": "tfkit.signals",
    # Data.
    "Splits": "tfkit.data.splits",
    "load_imdb": "tfkit.data.imdb",
    "adapt_vectorizer": "tfkit.data.text",
    "text_datasets": "tfkit.data.text",
    "imdb_text_datasets": "tfkit.data.text",
    "epoch_batches": "tfkit.data.order",
    "load_picture_classes": "tfkit.data.pictures",
    "tf_idf": "tfkit.data.ngrams",
    # Training set-up.
    "get_optimizer": "tfkit.optim",
    "optimizer_from_config": "tfkit.optim",
    "class_weight_from_labels": "tfkit.optim",
    "binary_metrics": "tfkit.metrics",
    "evaluate_classifier": "tfkit.metrics",
    "text_baseline": "tfkit.baseline",
    "pixel_baseline": "tfkit.baseline",
    "standard_callbacks": "tfkit.callbacks",
    "ExactBackupAndRestore": "tfkit.backup",
    "set_mixed_precision": "tfkit.hardware",
    "use_jit_compile": "tfkit.hardware",
    # Diagnostics and the modes that replace a training.
    "GradientHealth": "tfkit.diagnostics.gradients",
    "LRRangeTest": "tfkit.diagnostics.lr_find",
    "diagnose": "tfkit.diagnostics.verdict",
    "run_mode": "tfkit.modes",
    "write_report": "tfkit.report",
    # Runs and export.
    "start_run": "tfkit.runs",
    "finish_run": "tfkit.runs",
    "export_text_classifier": "tfkit.export",
    "export_for_serving": "tfkit.export",
    "export_image_classifier": "tfkit.export",
    "predict": "tfkit.predict",
    "write_json": "tfkit.files",
    "atomic_path": "tfkit.files",
}

__all__ = sorted(_PUBLIC_API)


def __getattr__(name):
    if name not in _PUBLIC_API:
        raise AttributeError(f"module 'tfkit' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC_API[name]), name)
