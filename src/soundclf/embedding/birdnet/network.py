"""BirdNET V2.4 (Kahl et al. 2021, GLOBAL 6K) as named torch modules.

An EfficientNet-like network on the front end's (2, 96, 511) spectrogram image; the
BatchNorms of the released model are already folded into the convolutions before them, so
every convolution here has the bias the fold left (zero, and therefore absent, where the
original layer had neither a bias nor a BatchNorm after it):

- ``spec_norm``: the BatchNorm on the spectrogram, kept as a per-channel scale and shift
  (there is no convolution before it to fold it into);
- ``stem``: a 4x8 stride-2 convolution with ReLU, then max- and average-pooling over pairs
  of time frames side by side, merged back to 24 channels by a 1x1 convolution;
- ``stages``: four stages of inverted-residual (MBConv) blocks with SiLU, depth 3/4/5/4,
  widths 36/72/108/192, the first block of each halving height and width; squeeze-and-
  excitation from stage 2 on;
- ``head``: a BatchNorm (scale and shift) with ReLU, a 3x3 valid convolution to 1024
  channels with ReLU, and the global mean: the 1024-d embedding
  (``model/GLOBAL_AVG_POOL/Mean`` in the TFLite graph);
- ``classifier``: a dense layer to the 6522 species logits (the sigmoid is applied outside).

Tensors are NCHW: height = the 96 mel bands, width = time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .frontend import BirdNetFrontend

N_CLASSES = 6522
EMBEDDING_DIM = 1024


class ChannelAffine(nn.Module):
    """An inference-mode BatchNorm: ``x * weight + bias`` per channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class Conv2dSame(nn.Conv2d):
    """A convolution with TensorFlow's SAME padding: the output is ceil(input / stride), and
    where the padding is odd the extra row or column goes at the bottom / right (unlike
    torch's symmetric ``padding=``). Computed per call, so any input length works. The ceiling
    is ``(size + s - 1) // s``, not ``-(-size // s)``: traced for ONNX, a size is a tensor and
    ONNX's integer division truncates, so the negated form pads wrongly in an export."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max(((size + s - 1) // s - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class Stem(nn.Module):
    """Conv 4x8/2 + ReLU, then [max-pool, avg-pool] over pairs of frames, merged by a 1x1
    convolution (no activation): (2, 96, 511) -> (24, 48, 128)."""

    def __init__(self, in_channels: int = 2, channels: int = 24):
        super().__init__()
        self.conv = Conv2dSame(in_channels, channels, kernel_size=(4, 8), stride=2)
        self.max_pool = nn.MaxPool2d(kernel_size=(1, 2))
        self.avg_pool = nn.AvgPool2d(kernel_size=(1, 2))
        self.merge = nn.Conv2d(2 * channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x))
        return self.merge(torch.cat([self.max_pool(x), self.avg_pool(x)], dim=1))


class SqueezeExcite(nn.Module):
    """Channel gates from the block's global mean: reduce (SiLU) -> expand (sigmoid); the
    released model's SE convolutions have no bias."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, kernel_size=1, bias=False)
        self.expand = nn.Conv2d(reduced, channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(F.silu(self.reduce(gate))))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand (SiLU) -> 3x3 depthwise (SiLU) -> [SE] -> 1x1 project
    (linear, no bias), plus the input where shape allows. A stride-2 block pads one row and
    column on every side before a valid depthwise convolution (Keras' ZeroPadding2D), which
    is not TensorFlow's SAME for even sizes: kept as the graph has it."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, stride: int = 1,
                 se_channels: int | None = None):
        super().__init__()
        self.expand = nn.Conv2d(in_channels, mid_channels, kernel_size=1)
        self.pad = nn.ZeroPad2d(1) if stride > 1 else nn.Identity()
        self.dw = nn.Conv2d(mid_channels, mid_channels, kernel_size=3, stride=stride,
                            padding=0 if stride > 1 else 1, groups=mid_channels)
        self.se = SqueezeExcite(mid_channels, se_channels) if se_channels else nn.Identity()
        self.project = nn.Conv2d(mid_channels, out_channels, kernel_size=1, bias=False)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.silu(self.expand(x))
        y = F.silu(self.dw(self.pad(y)))
        y = self.project(self.se(y))
        return x + y if self.residual else y


@dataclass(frozen=True)
class StageSpec:
    depth: int
    mid_channels: int  # the expanded width, the same for every block of the stage
    out_channels: int
    se_channels: int | None


# read off the TFLite graph (BLOCK_<stage>-<block>_* layers)
STAGES = (StageSpec(3, 72, 36, None), StageSpec(4, 288, 72, 18),
          StageSpec(5, 864, 108, 27), StageSpec(4, 1536, 192, 48))


def make_stage(in_channels: int, spec: StageSpec) -> nn.Sequential:
    blocks = [MBConv(in_channels if i == 0 else spec.out_channels, spec.mid_channels, spec.out_channels,
                     stride=2 if i == 0 else 1, se_channels=spec.se_channels) for i in range(spec.depth)]
    return nn.Sequential(*blocks)


class Head(nn.Module):
    """BatchNorm (scale, shift) + ReLU -> 3x3 valid conv to 1024 + ReLU -> global mean."""

    def __init__(self, in_channels: int = 192, channels: int = EMBEDDING_DIM):
        super().__init__()
        self.norm = ChannelAffine(in_channels)
        self.conv = nn.Conv2d(in_channels, channels, kernel_size=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(F.relu(self.norm(x))))
        return x.mean(dim=(2, 3))


class BirdNetV24(nn.Module):
    """BirdNET GLOBAL 6K V2.4: (batch, 144000) float audio at 48 kHz -> (batch, 6522) logits.

    ``embed(audio)`` gives the 1024-d embedding; ``features(spectrogram)`` runs the network
    from the front end's output. Build it with weights through
    ``soundclf.embedding.birdnet.load_birdnet_v24()`` (the model's licence is CC BY-NC-SA 4.0)."""

    def __init__(self, stem_channels: int = 24, stages: tuple[StageSpec, ...] = STAGES,
                 n_classes: int = N_CLASSES):
        super().__init__()
        self.frontend = BirdNetFrontend()
        self.spec_norm = ChannelAffine(2)
        self.stem = Stem(2, stem_channels)
        widths = [stem_channels] + [s.out_channels for s in stages]
        self.stages = nn.Sequential(*[make_stage(w, s) for w, s in zip(widths, stages)])
        self.head = Head(widths[-1], EMBEDDING_DIM)
        self.classifier = nn.Linear(EMBEDDING_DIM, n_classes)

    def features(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """(batch, 2, 96, frames) -> (batch, 1024)."""
        return self.head(self.stages(self.stem(self.spec_norm(spectrogram))))

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        return self.features(self.frontend(audio))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(audio))
