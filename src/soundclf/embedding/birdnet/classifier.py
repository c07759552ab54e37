"""BirdNET V2.4 as the backbone of the recipe (`model.backbone: birdnet_v24`): the pretrained
network fine-tuned per fold on 48 kHz waveform crops, with a head over the project's classes.

The recipe cuts a crop into segments (5 s by default) and scores windows of the same length;
BirdNET sees 3 s. A segment is framed as ceil(segment / 3 s) windows of 3 s spread evenly
from its start to its end (5 s: 0-3 s and 2-5 s), their embeddings averaged: every sample
of the segment is seen, the model never sees padding. A crop's logits are the max over its
segments' logits (a call in one segment of a weakly labelled crop is not averaged away), as
the evaluation's max over windows scores a recording.

The head starts from BirdNET's own classifier rows for the classes that map to its labels
(as the anchored probe does: zero_shot.match_classes), so at step 0 a mapped class scores
what BirdNET says; the others start with zero weights and the bias of a 1 % prior (as
RetinaNet's new classes do: absent at first, without the large early loss of a 0.5 start).
BirdNET's own biases are near 0: its classes are told absent by their weights."""

from __future__ import annotations

import math

import torch
from torch import nn

from ...activations import probabilities
from .frontend import SAMPLE_RATE, WINDOW_SAMPLES
from .network import EMBEDDING_DIM, BirdNetV24

UNMAPPED_PRIOR = 0.01  # the starting probability of a class BirdNET has no label for


def window_starts(segment_samples: int) -> list[int]:
    """The first sample of each 3 s window that frames one segment (see the module's docstring)."""
    if segment_samples < WINDOW_SAMPLES:
        raise ValueError(f"a segment of {segment_samples / SAMPLE_RATE:g} s is shorter than BirdNET's 3 s window; "
                         "set train.segment_seconds to 3 or more")
    n = math.ceil(segment_samples / WINDOW_SAMPLES - 1e-9)
    if n == 1:
        return [0]
    step = (segment_samples - WINDOW_SAMPLES) / (n - 1)
    return [round(i * step) for i in range(n)]


class BirdNetClassifier(nn.Module):
    """Waveform input (B, 1, 1, samples) at 48 kHz -> class logits (B, classes), with the
    interface of model.SoundClassifier (n_segments, per_segment, probabilities)."""

    def __init__(self, n_classes: int, segment_samples: int, activation: str = "sigmoid",
                 backbone: BirdNetV24 | None = None, backbone_lr_scale: float = 1.0):
        super().__init__()
        self.activation = activation
        self.backbone_lr_scale = backbone_lr_scale
        self.head_kind = "linear"
        self.segment_samples = segment_samples
        self.starts = window_starts(segment_samples)
        self.backbone = backbone if backbone is not None else BirdNetV24()
        del self.backbone.classifier  # the 6522 classes: only their rows of the project's classes are kept
        self.head = nn.Linear(EMBEDDING_DIM, n_classes)

    def init_head(self, weight: torch.Tensor, bias: torch.Tensor, rows: list[int | None]) -> None:
        """The head from BirdNET's classifier (weight (6522, 1024), bias (6522,)): class c takes
        row rows[c], an unmapped class zero weights and the bias of UNMAPPED_PRIOR."""
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.fill_(math.log(UNMAPPED_PRIOR / (1 - UNMAPPED_PRIOR)))
            for c, row in enumerate(rows):
                if row is not None:
                    self.head.weight[c] = weight[row]
                    self.head.bias[c] = bias[row]

    def segment_embeddings(self, x: torch.Tensor, n_segments: int) -> torch.Tensor:
        """(B, 1, 1, n * segment) -> (B, n, 1024): each segment's windows embedded and averaged."""
        b = x.shape[0]
        segments = x.reshape(b * n_segments, self.segment_samples)
        windows = torch.stack([segments[:, s : s + WINDOW_SAMPLES] for s in self.starts], dim=1)
        embedded = self.backbone.embed(windows.reshape(-1, WINDOW_SAMPLES).float())
        return embedded.view(b, n_segments, len(self.starts), -1).mean(dim=2)

    def forward(self, x: torch.Tensor, n_segments: int = 1, per_segment: bool = False):
        segment_logits = self.head(self.segment_embeddings(x, n_segments))  # (B, n, classes)
        logits = segment_logits.amax(dim=1)
        return (logits, segment_logits) if per_segment else logits

    def parameter_groups(self, lr: float) -> list[dict]:
        """AdamW groups: the pretrained backbone at backbone_lr_scale x the head's rate."""
        return [{"params": list(self.backbone.parameters()), "lr": lr * self.backbone_lr_scale},
                {"params": list(self.head.parameters()), "lr": lr}]

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return probabilities(logits, self.activation)
