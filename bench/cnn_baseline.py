"""The plain supervised baseline of bench/quality.py, written simply: timm resnet18 on the
64-mel log-mels of a fixed-length clip, softmax CE, mixup 0.2, light SpecAugment, AdamW with
a one-cycle schedule, 10 epochs, on the folds given with the features.

    python bench/cnn_baseline.py results/bench/quality/esc10/features.npz OUT.json
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np
import timm
import torch
import torch.nn.functional as F


def run(features: str, epochs: int = 10, batch: int = 32, seed: int = 0) -> dict:
    data = np.load(features)
    x = torch.from_numpy(data["x"].astype(np.float32))[:, None]
    x = (x - x.mean()) / x.std()
    y, fold = torch.from_numpy(data["y"]).long(), data["fold"]
    n_classes = int(y.max()) + 1
    device = "cuda" if torch.cuda.is_available() else "cpu"
    np.random.seed(seed)
    accuracies, start = [], time.perf_counter()
    for k in sorted(set(fold.tolist())):
        torch.manual_seed(seed)
        train, test = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        model = timm.create_model("resnet18", pretrained=False, in_chans=1, num_classes=n_classes).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
        steps = epochs * -(-len(train) // batch)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
        for _ in range(epochs):
            model.train()
            order = np.random.permutation(train)
            for i in range(0, len(train), batch):
                idx = torch.from_numpy(order[i : i + batch])
                xb, yb = x[idx].to(device), F.one_hot(y[idx], n_classes).float().to(device)
                lam = float(np.random.beta(0.2, 0.2))
                perm = torch.randperm(len(xb), device=device)
                xb, yb = lam * xb + (1 - lam) * xb[perm], lam * yb + (1 - lam) * yb[perm]
                for _ in range(2):  # light SpecAugment: one frequency and one time mask
                    f0, t0 = np.random.randint(0, xb.shape[2] - 8), np.random.randint(0, xb.shape[3] - 20)
                    xb[:, :, f0 : f0 + np.random.randint(0, 8)] = 0
                    xb[:, :, :, t0 : t0 + np.random.randint(0, 20)] = 0
                loss = -(yb * F.log_softmax(model(xb), 1)).sum(1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(x[test[i:i + 128]].to(device)).argmax(1).cpu() for i in range(0, len(test), 128)])
        accuracies.append(float((pred == y[test]).float().mean()))
        print(f"fold {k}: {accuracies[-1]:.3f}", flush=True)
    return {"mean": float(np.mean(accuracies)), "std": float(np.std(accuracies)), "folds": accuracies,
            "seconds": time.perf_counter() - start, "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu"}


if __name__ == "__main__":
    result = run(sys.argv[1])
    with open(sys.argv[2], "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result))
