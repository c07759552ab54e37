"""BirdNET V2.4's spectrogram front end as a torch module: 3 s of 48 kHz audio -> two
96-band compressed mel spectrograms of 511 frames, stacked as channels.

What the TFLite graph does, op by op, and how this module does the same:

1. Each window is scaled to [-1, 1] by its own minimum and maximum
   (``(x - min) / (max - min + 1e-6) * 2 - 1``): BirdNET is blind to the recording's gain.
2. Two STFT branches, frame length / hop 2048 / 278 and 1024 / 280 samples (both give 511
   frames of a 144 000-sample window, no centre padding), each frame times a periodic Hann
   window, then RFFT2D.
3. The complex RFFT is *cast* to float: TensorFlow's cast keeps the real part, so the
   spectrum the model sees is ``frame @ C`` with ``C[n, k] = cos(2 pi n k / N)``, not a
   magnitude. That makes the whole linear part of the branch one matrix: window, cosine and
   mel filter bank fold into a single ``(n_fft, 96)`` projection, computed once in float64
   (exact in arithmetic; the FFT of the interpreter rounds differently in the last bits).
4. The mel value is squared, raised to a learnt exponent (~0.23 and ~0.19: a compressive
   magnitude scale rather than a log), the 96 bands are flipped (high frequencies first,
   as in an image of a spectrogram) and put on the height axis, time on the width axis.

The constants (windows, mel banks, exponents) are buffers, not parameters: they are the
feature definition, and the exponent's gradient at a zero band (``log 0``) is not finite.
"""

from __future__ import annotations

import math

import torch
from torch import nn

SAMPLE_RATE = 48_000
WINDOW_SAMPLES = 144_000  # 3 s
N_MELS = 96


class MelBranch(nn.Module):
    """One STFT branch: frames -> real part of the windowed DFT -> mel -> square -> power ->
    flipped bands. Output (batch, 96, frames)."""

    def __init__(self, n_fft: int, hop: int, n_mels: int = N_MELS):
        super().__init__()
        self.n_fft, self.hop, self.n_mels = n_fft, hop, n_mels
        n = torch.arange(n_fft, dtype=torch.float64)
        # defaults only: the TFLite constants replace them (weights.load_tflite_weights)
        self.register_buffer("window", (0.5 - 0.5 * torch.cos(2 * math.pi * n / n_fft)).float())
        self.register_buffer("mel", torch.zeros(n_mels, n_fft // 2 + 1))
        self.register_buffer("exponent", torch.tensor(0.25))
        # window * cosine * mel in one matrix; derived, so not saved in the state_dict
        self.register_buffer("projection", torch.zeros(n_fft, n_mels), persistent=False)
        self.fold()

    @torch.no_grad()
    def fold(self) -> None:
        """Recompute ``projection`` from window and mel (after loading them)."""
        n = torch.arange(self.n_fft, dtype=torch.float64)
        k = torch.arange(self.n_fft // 2 + 1, dtype=torch.float64)
        cosine = torch.cos(2 * math.pi * torch.outer(n, k).remainder(self.n_fft) / self.n_fft)  # (n_fft, bins)
        folded = self.window.double()[:, None] * (cosine @ self.mel.double().T)
        self.projection.copy_(folded.to(self.projection.dtype))

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self.fold()

    def n_frames(self, n_samples: int) -> int:
        return (n_samples - self.n_fft) // self.hop + 1

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        # the frames gathered by index rather than by unfold: the same values, and an ONNX
        # export that loads (the exported unfold did not, with a dynamic batch); a strided
        # conv1d instead of the matmul moved the embeddings 5x further from LiteRT's
        starts = torch.arange(self.n_frames(audio.shape[-1]), device=audio.device) * self.hop
        frames = audio[:, starts[:, None] + torch.arange(self.n_fft, device=audio.device)]  # (batch, frames, n_fft)
        mel = frames @ self.projection.to(frames.dtype)  # (batch, frames, n_mels)
        compressed = (mel * mel).pow(self.exponent)
        return compressed.flip(-1).transpose(1, 2)  # (batch, n_mels, frames), high bands first


class BirdNetFrontend(nn.Module):
    """(batch, 144000) audio at 48 kHz -> (batch, 2, 96, 511) spectrogram image.

    Channel 0 is the 2048-sample branch (finer in frequency), channel 1 the 1024-sample
    branch (finer in time)."""

    def __init__(self):
        super().__init__()
        self.branches = nn.ModuleList([MelBranch(2048, 278), MelBranch(1024, 280)])

    @staticmethod
    def normalize(audio: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        """Each window to [-1, 1] by its own range, as the graph does before the STFT."""
        low = audio.amin(dim=-1, keepdim=True)
        shifted = audio - low
        return (shifted / (shifted.amax(dim=-1, keepdim=True) + eps) - 0.5) * 2.0

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        audio = self.normalize(audio)
        return torch.stack([branch(audio) for branch in self.branches], dim=1)
