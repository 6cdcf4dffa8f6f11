"""Sharing trained models: ONNX export, a self-contained safetensors folder (with a model card), and the
Hugging Face Hub (`push`, `ganforge.load("hf:OWNER/NAME")`).

The exported folder is a minimal run folder (config.json, one generator-only checkpoint, the last sample
grid, metrics.jsonl and a README.md model card), so every reader of run folders (`ganforge.load`,
`generate`, `info`, `report`, the web studio's runs directory) accepts it unchanged. Heavy dependencies
(onnx, onnxruntime, huggingface_hub) are imported lazily, inside the functions that need them.
"""

from __future__ import annotations
