"""The recipe's network: a timm backbone applied to 5 s segments of a 30 s crop, segment
feature maps re-joined along time, then GeM pooling and one linear head, or an SED-style
attention head over time; saving and loading a fold's model (this one, or BirdNET V2.4
fine-tuned: embedding/birdnet/classifier.py)."""

from __future__ import annotations

import json

import torch
from torch import nn

from .activations import probabilities
from .atomic import atomic_path
from .config import BIRDNET_BACKBONE


class GeM(nn.Module):
    """Generalised-mean pooling over frequency and time with a learnable exponent."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(p))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(-2, -1)).pow(1.0 / self.p)


class GeMHead(nn.Module):
    """The recipe's head: GeM over frequency and time, one linear layer."""

    def __init__(self, in_features: int, n_classes: int):
        super().__init__()
        self.pool = GeM()
        self.linear = nn.Linear(in_features, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.pool(features))


class AttentionHead(nn.Module):
    """Sound-event-detection head (PANNs' attention block, as the BirdCLEF 2023-25 winners
    use): the feature map averaged over frequency, smoothed over time (max + mean pooling of
    3 frames), then per time step class logits and attention weights (softmax over time of
    tanh scores); the clip's logits are the attention-weighted sum of the frame logits."""

    def __init__(self, in_features: int, n_classes: int):
        super().__init__()
        self.attention = nn.Conv1d(in_features, n_classes, 1)
        self.classify = nn.Conv1d(in_features, n_classes, 1)

    def frame_logits(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(attention weights, class logits), each (B, classes, time)."""
        x = features.mean(dim=2)
        x = nn.functional.max_pool1d(x, 3, 1, 1) + nn.functional.avg_pool1d(x, 3, 1, 1)
        return torch.softmax(torch.tanh(self.attention(x)), dim=-1), self.classify(x)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        weights, logits = self.frame_logits(features)
        return (weights * logits).sum(dim=-1)


HEADS = {"gem": GeMHead, "attention": AttentionHead}


def split_segments(x: torch.Tensor, n_segments: int) -> torch.Tensor:
    """(B, C, mels, n*t) -> (B*n, C, mels, t): each segment becomes its own image."""
    b, c, m, total = x.shape
    if total % n_segments:
        raise ValueError(f"{total} frames do not split into {n_segments} equal segments")
    t = total // n_segments
    return x.reshape(b, c, m, n_segments, t).permute(0, 3, 1, 2, 4).reshape(b * n_segments, c, m, t)


def join_segments(x: torch.Tensor, n_segments: int) -> torch.Tensor:
    """(B*n, C, f, t) -> (B, C, f, n*t): inverse of split_segments, re-joined along time."""
    bn, c, f, t = x.shape
    b = bn // n_segments
    return x.reshape(b, n_segments, c, f, t).permute(0, 2, 3, 1, 4).reshape(b, c, f, n_segments * t)


class SoundClassifier(nn.Module):
    """Log-mel input (B, 1, mels, frames) -> class logits (B, classes).

    Training passes a 30 s crop with n_segments=6; inference passes one 5 s window with
    n_segments=1: the same backbone sees 5 s images either way.
    """

    def __init__(self, backbone: str, n_classes: int, pretrained: bool = False,
                 pretrained_path: str | None = None, drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 activation: str = "sigmoid", head: str = "gem"):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, not {head!r}")
        if activation not in ("sigmoid", "softmax"):
            raise ValueError(f"activation must be sigmoid or softmax, not {activation!r}")
        self.activation = activation  # what turns logits into probabilities (matches the training loss)
        import timm

        overlay = {"file": pretrained_path} if pretrained_path else None
        self.backbone = timm.create_model(
            backbone, pretrained=pretrained or bool(pretrained_path), pretrained_cfg_overlay=overlay,
            in_chans=1, num_classes=0, global_pool="", drop_rate=drop_rate, drop_path_rate=drop_path_rate,
        )
        self.head_kind = head
        self.head = HEADS[head](self.backbone.num_features, n_classes)

    def forward(self, x: torch.Tensor, n_segments: int = 1, per_segment: bool = False):
        """Logits (B, classes) of each crop; with `per_segment` also each segment's own logits
        (B, n_segments, classes), the head applied to that segment's feature map (what a
        segment with strong labels is trained against)."""
        # forward_features: the feature map before any timm head (some nets, e.g. MobileNetV3,
        # keep a conv head after their pooling), with `num_features` channels
        features = self.backbone.forward_features(split_segments(x, n_segments))
        logits = self.head(join_segments(features, n_segments))
        if not per_segment:
            return logits
        if n_segments == 1:
            return logits, logits[:, None]
        return logits, self.head(features).view(x.shape[0], n_segments, -1)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return probabilities(logits, self.activation)


def mixup(x: torch.Tensor, weights: torch.Tensor, alpha: float, generator: torch.Generator | None = None):
    """Mix every crop (all its segments together) with a random other crop of the batch, one
    Beta(alpha, alpha) coefficient per crop, applied alike to inputs and loss weights ->
    (inputs, weights, coefficients, partners). The training loop mixes the two sources'
    losses with the same coefficients (for BCE: the loss against the mixed targets), so a
    weak and a strongly labelled crop each keep their own kind of target."""
    b = x.shape[0]
    perm = torch.randperm(b, generator=generator)
    lam = torch.distributions.Beta(alpha, alpha).sample((b,)).to(x.device)
    lam_x = lam.view(b, *([1] * (x.dim() - 1)))
    return lam_x * x + (1 - lam_x) * x[perm], lam * weights + (1 - lam) * weights[perm], lam, perm


def save_model(path, model: SoundClassifier, meta: dict) -> None:
    """A fold's kept model: weights plus the JSON metadata that rebuilds it (backbone, class
    names, mel parameters, window length, output activation, head), written atomically."""
    meta = {**meta, "activation": model.activation, "head": model.head_kind}
    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "meta": json.dumps(meta)}, tmp)


def load_model(path, device: torch.device | str = "cpu") -> tuple[SoundClassifier, dict]:
    """Rebuild a saved model in eval mode. Loads with weights_only=True: a file that would
    run code when unpickled is refused. Models saved before the activation was recorded
    were trained with BCE (sigmoid) and evaluated short windows padded."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    meta = json.loads(state["meta"])
    meta.setdefault("activation", "sigmoid")
    meta.setdefault("short_clip", "pad")
    meta.setdefault("head", "gem")
    if meta["backbone"] == BIRDNET_BACKBONE:
        from .embedding.birdnet.classifier import BirdNetClassifier

        model = BirdNetClassifier(len(meta["classes"]), meta["segment_frames"], activation=meta["activation"])
    else:
        model = SoundClassifier(meta["backbone"], len(meta["classes"]), activation=meta["activation"], head=meta["head"])
    model.load_state_dict(state["model"])
    return model.to(device).eval(), meta
