"""Deployment (chapter 6): storage formats, export and robustness checks.

``compress`` (dense, CSR, bitmask, int8 and gzip storage of a pruned model, with exact
byte counts), ``export`` (``torch.export`` of the classifier with padded inputs, and
safe loading of an exported file), ``robustness`` (accuracy under typos and dropped
words), ``sparse`` (the recurrence on CSR weights: unstructured zeros that save time) and
``onnx_runtime`` (export to ONNX and a checked ONNX Runtime session; needs the optional
``deploy`` extra, imported only when used).
The names of ``export`` are also available here: ``deploy.export_classifier``.
"""

from . import compress, export, onnx_runtime, robustness, sparse
from .export import (
    MAX_EXPORT_BYTES,
    ExportError,
    InferenceClassifier,
    check_padded_inputs,
    compare_outputs,
    export_classifier,
    exported_module,
    exported_seq_len,
    load_exported,
    pad_to,
    quantize_int8,
    save_exported,
)

__all__ = [
    "compress",
    "export",
    "onnx_runtime",
    "robustness",
    "sparse",
    "ExportError",
    "InferenceClassifier",
    "MAX_EXPORT_BYTES",
    "check_padded_inputs",
    "compare_outputs",
    "export_classifier",
    "exported_module",
    "exported_seq_len",
    "load_exported",
    "pad_to",
    "quantize_int8",
    "save_exported",
]
