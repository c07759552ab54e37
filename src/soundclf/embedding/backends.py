"""BirdNET V2.4 embeddings computed by the torch module (soundclf.embedding.birdnet) or by
onnxruntime on its ONNX export, instead of the LiteRT interpreter (model.Embedder): the same
batches of 3 s windows in, the same (batch, 1024) float32 embeddings out.

The three agree to ~1e-5 (LiteRT vs torch 1.3e-5, ONNX vs torch 1e-5 on noise windows; the
module's test holds it to 5e-5 on real audio), below the cache's float16 step (~1e-3 at the
embeddings' largest values, ~2): a cached value differs by at most one float16 step. So the
backend is a setting of how a cache is computed, not of what it holds: it is not in the
cache's digest, and caches written by one backend stay valid under another.

The ONNX file is derived at run time from the installed wheel's TFLite weights (CC BY-NC-SA
4.0, as the model), into the run's results folder (``export_dir``) or a temporary folder, and
checked against the torch module before use; it is never part of the repository.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path
from .model import BIRDNET_FILE, EmbeddingModelError, EmbeddingSpec, Embedder

log = logging.getLogger(__name__)

BACKENDS = ("litert", "torch", "onnx")
DEFAULT_BACKEND = "onnx"  # measured fastest per core (docs/models.md, bench/RESULTS.md section 10)
OPSET = 17
MAX_DIFFERENCE = 1e-4  # the largest embedding difference to torch an ONNX export may show
EXPORT_REVISION = 1  # raised when the export changes: older exports are not reused


def birdnet_problem(spec: EmbeddingSpec, backend: str) -> str | None:
    """Why `backend` cannot compute `spec`'s embeddings (None: it can). The torch and onnx
    backends are BirdNET V2.4's module: other TFLite models run with litert only."""
    if backend not in BACKENDS:
        return f"embedding.backend '{backend}' is none of {', '.join(BACKENDS)}"
    if backend == "litert":
        return None
    default = EmbeddingSpec()
    custom = spec.model_path and not str(spec.model_path).endswith(BIRDNET_FILE)
    if custom or (spec.sample_rate, spec.window_seconds, spec.output_tensor) != (
            default.sample_rate, default.window_seconds, default.output_tensor):
        return (f"embedding.backend {backend} runs BirdNET V2.4 (48 kHz, 3 s windows, the tensor before its "
                "classifier) only; set embedding.backend: litert for another model or tensor")
    return None


def make_embedder(spec: EmbeddingSpec, backend: str = DEFAULT_BACKEND, threads: int = 1, batch_size: int = 32,
                  export_dir: str | Path | None = None, device: str | torch.device | None = None):
    """An embedder of `spec` by `backend` (litert, torch or onnx): windows (n, samples) -> (n, dim)."""
    problem = birdnet_problem(spec, backend)
    if problem:
        raise EmbeddingModelError(problem)
    if backend == "litert":
        return Embedder(spec, threads=threads, batch_size=batch_size)
    if backend == "torch":
        return TorchEmbedder(spec, threads=threads, batch_size=batch_size, device=device)
    return OnnxEmbedder(spec, threads=threads, batch_size=batch_size, export_dir=export_dir)


class _Embedding(torch.nn.Module):
    """The module's embedding as its forward (what is exported)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.model.embed(audio)


def _birdnet(spec: EmbeddingSpec) -> torch.nn.Module:
    from .birdnet import load_birdnet_v24

    return _Embedding(load_birdnet_v24(spec.resolved_path())).eval()


class TorchEmbedder:
    """BirdNET V2.4's torch module, on the GPU where there is one (training.pick_device) and
    otherwise on `threads` CPU threads of the job (torch.set_num_threads is the caller's)."""

    def __init__(self, spec: EmbeddingSpec, threads: int = 1, batch_size: int = 32,
                 device: str | torch.device | None = None):
        from ..training import pick_device

        self.spec, self.threads, self.batch_size = spec, threads, batch_size
        self.device = torch.device(device) if device else pick_device()
        self.module = _birdnet(spec).to(self.device)
        log.info("embeddings by the torch module on %s", self.device)

    @torch.inference_mode()
    def __call__(self, windows: np.ndarray) -> np.ndarray:
        out = [self.module(torch.from_numpy(np.ascontiguousarray(windows[i : i + self.batch_size], np.float32))
                           .to(self.device)).float().cpu().numpy()
               for i in range(0, len(windows), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def export_name(spec: EmbeddingSpec) -> str:
    """The export's file name: the TFLite file it comes from (path, size, mtime), torch's
    version and the export's revision, so that a changed wheel or exporter exports anew."""
    path = spec.resolved_path()
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{torch.__version__}|{OPSET}|{EXPORT_REVISION}"
    return f"birdnet_v2_4_{hashlib.sha1(key.encode()).hexdigest()[:10]}.onnx"


def export_birdnet_onnx(spec: EmbeddingSpec, path: str | Path, batch: int = 2) -> float:
    """The torch module's embedding as ONNX (TorchScript exporter, dynamic batch), checked
    against torch on noise windows; returns the largest difference (above MAX_DIFFERENCE the
    export is refused)."""
    import onnxruntime as ort

    module = _birdnet(spec)
    x = (0.1 * torch.randn(batch, spec.window_samples, generator=torch.Generator().manual_seed(0)))
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes taken as constants
        torch.onnx.export(module, (x,), tmp, dynamo=False, opset_version=OPSET, input_names=["audio"],
                          output_names=["embedding"], dynamic_axes={"audio": {0: "batch"}, "embedding": {0: "batch"}})
        with torch.no_grad():
            expected = module(x).numpy()
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        difference = float(np.abs(session.run(None, {"audio": x.numpy()})[0] - expected).max())
        if difference > MAX_DIFFERENCE:
            raise EmbeddingModelError(f"the ONNX export of BirdNET V2.4 differs from the torch module by "
                                      f"{difference:.2g} (> {MAX_DIFFERENCE:g}); set embedding.backend: torch")
    log.info("BirdNET V2.4 exported to %s (largest difference to torch %.2g); like the model it is CC BY-NC-SA 4.0",
             path, difference)
    return difference


class OnnxEmbedder:
    """onnxruntime on BirdNET V2.4's ONNX export, `threads` intra-op threads (one inter-op).
    The export is made once into `export_dir` and reused (checked by name: export_name), or
    made into a temporary folder when there is none."""

    def __init__(self, spec: EmbeddingSpec, threads: int = 1, batch_size: int = 32,
                 export_dir: str | Path | None = None):
        import onnxruntime as ort

        self.spec, self.threads, self.batch_size = spec, threads, batch_size
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(export_dir or scratch) / export_name(spec)
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                export_birdnet_onnx(spec, path)
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        log.info("embeddings by onnxruntime on %s, %d thread(s)", path.name, threads)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        out = [self.session.run(None, {"audio": np.ascontiguousarray(windows[i : i + self.batch_size], np.float32)})[0]
               for i in range(0, len(windows), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
