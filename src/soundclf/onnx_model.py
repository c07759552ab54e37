"""Fold models as ONNX for prediction with onnxruntime on CPU: exported once per fold (dynamic
batch, the model's activation included), checked against torch, and run as a scorer of
window batches like the torch model."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_path
from .model import SoundClassifier, load_model

log = logging.getLogger(__name__)
OPSET = 17
MAX_DIFFERENCE = 1e-4  # the largest probability difference to torch an exported model may show


class WindowProbabilities(torch.nn.Module):
    """A fold model as prediction uses it: one 5 s window per row -> class probabilities."""

    def __init__(self, model: SoundClassifier):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.probabilities(self.model(x, n_segments=1))


def export_onnx(model_path: str | Path, onnx_path: str | Path, batch: int = 8) -> float:
    """Export a saved fold model to ONNX (TorchScript exporter, dynamic batch) and check that
    onnxruntime gives torch's probabilities on a random batch; returns the largest difference
    (an export above MAX_DIFFERENCE is refused)."""
    model, meta = load_model(model_path, "cpu")
    module = WindowProbabilities(model).eval()
    x = torch.randn(batch, 1, meta["mel_params"]["n_mels"], meta["segment_frames"], generator=torch.Generator().manual_seed(0))
    with atomic_path(onnx_path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on tracing and its own deprecation
        torch.onnx.export(module, (x,), tmp, dynamo=False, opset_version=OPSET, input_names=["x"],
                          output_names=["probabilities"],
                          dynamic_axes={"x": {0: "batch"}, "probabilities": {0: "batch"}})
        with torch.no_grad():
            expected = module(x).numpy()
        difference = float(np.abs(OnnxScorer(tmp)(x) - expected).max())
        if difference > MAX_DIFFERENCE:
            raise RuntimeError(f"{model_path}: the ONNX export differs from torch by {difference:.2g} "
                               f"(> {MAX_DIFFERENCE:g}); predict with predict.backend: torch")
    log.info("%s -> %s: largest difference to torch %.2g", model_path, onnx_path, difference)
    return difference


class OnnxScorer:
    """Probabilities of a batch of windows (B, 1, mels, frames) from an exported fold model."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        return self.session.run(None, {"x": x.numpy()})[0]
