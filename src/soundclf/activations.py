"""Class probabilities from logits, with the activation that matches the training loss: one
place for every model kind (the recipe's CNN, BirdNET fine-tuned, the embedding probes)."""

from __future__ import annotations

import torch


def probabilities(logits: torch.Tensor, activation: str) -> torch.Tensor:
    """Softmax for cross-entropy, sigmoid for BCE and focal (training.activation_for)."""
    logits = logits.float()
    return torch.softmax(logits, dim=-1) if activation == "softmax" else torch.sigmoid(logits)
