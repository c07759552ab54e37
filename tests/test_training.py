"""The training loop: learning, resume from the saved epoch with the same optimizer state,
safe checkpoint loading."""
import pickle

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from soundclf.model import SoundClassifier, load_model
from soundclf.training import TrainConfig, cosine_with_warmup, load_checkpoint, train


def tiny_loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 1, 16, 24, generator=g)
    y = torch.eye(2)[torch.tensor([0, 1] * 4)]
    x[y[:, 0] == 1, :, :8] += 2.0  # class 0 is louder in the low bins: learnable
    segments = y[:, None].expand(-1, 2, -1)  # weak targets on each of the 2 segments
    return DataLoader(TensorDataset(x, segments, torch.ones(8), torch.zeros(8, dtype=torch.bool)), batch_size=4,
                      shuffle=False)


def config(epochs):
    return TrainConfig(epochs=epochs, lr=3e-3, warmup_epochs=0.5, mixup_prob=0.0, n_segments=2, seed=1)


def new_model():
    torch.manual_seed(0)
    return SoundClassifier("resnet10t", n_classes=2)


def test_loss_falls_and_history_is_written(tmp_path):
    history = train(new_model(), tiny_loader(), config(6), tmp_path / "ckpt.pt", tmp_path / "h.csv",
                    device=torch.device("cpu"))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert pd.read_csv(tmp_path / "h.csv")["epoch"].tolist() == list(range(1, 7))


class Killed(Exception):
    pass


def test_resume_continues_from_the_saved_epoch_with_the_same_optimizer_state(tmp_path):
    cpu = torch.device("cpu")
    calls = []

    def validate_then_die_in_epoch_3(model):
        calls.append(1)
        if len(calls) == 3:  # the job is killed before epoch 3's checkpoint is written
            raise Killed
        return {"valid_metric": 0.0}

    with pytest.raises(Killed):
        train(new_model(), tiny_loader(), config(3), tmp_path / "ckpt.pt", tmp_path / "h.csv",
              validate=validate_then_die_in_epoch_3, device=cpu)
    saved = load_checkpoint(tmp_path / "ckpt.pt")
    assert saved["epoch"] == 2
    resumed = train(new_model(), tiny_loader(), config(3), tmp_path / "ckpt.pt", tmp_path / "h.csv",
                    validate=lambda m: {"valid_metric": 1.0}, device=cpu)
    assert [row["epoch"] for row in resumed] == [1, 2, 3]
    assert [row["valid_metric"] for row in resumed] == [0.0, 0.0, 1.0]  # only epoch 3 ran again
    after = load_checkpoint(tmp_path / "ckpt.pt")
    assert after["optimizer"]["state"][0]["step"] == saved["optimizer"]["state"][0]["step"] + len(tiny_loader())
    # the resumed run ends where an uninterrupted run ends (CPU, fixed seeds)
    train(new_model(), tiny_loader(), config(3), tmp_path / "straight.pt", tmp_path / "h2.csv",
          validate=lambda m: {"valid_metric": 1.0}, device=cpu)
    straight = load_checkpoint(tmp_path / "straight.pt")
    for name, value in straight["model"].items():
        assert torch.allclose(value.float(), after["model"][name].float(), atol=1e-5), name


def test_checkpoint_of_another_config_is_not_resumed(tmp_path):
    cpu = torch.device("cpu")
    train(new_model(), tiny_loader(), config(1), tmp_path / "ckpt.pt", tmp_path / "h.csv", device=cpu)
    history = train(new_model(), tiny_loader(), config(2), tmp_path / "ckpt.pt", tmp_path / "h.csv", device=cpu)
    assert [row["epoch"] for row in history] == [1, 2]


class Exploit:
    """Unpickling this runs code: it would create the file `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("loader", ["checkpoint", "model", "pretrained_path"])
@pytest.mark.parametrize("container", ["torch.save", "raw pickle"])
def test_a_malicious_pickle_is_refused_wherever_weights_are_loaded(tmp_path, loader, container):
    """Training checkpoints, fold models and a backbone's local weights all load with
    weights_only=True: the pickle is refused and its code never runs."""
    marker, path = tmp_path / "code_ran", tmp_path / "evil.pt"
    payload = {"model": Exploit(marker), "meta": "{}"}
    if container == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    load = {"checkpoint": load_checkpoint, "model": load_model,
            "pretrained_path": lambda p: SoundClassifier("lcnet_050", 2, pretrained_path=str(p))}[loader]
    with pytest.raises((pickle.UnpicklingError, RuntimeError), match="(?i)weights.only"):  # timm wraps torch's error
        load(path)
    assert not marker.exists()


def test_cosine_schedule_warms_up_then_decays_to_zero():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = cosine_with_warmup(opt, warmup_steps=4, total_steps=20)
    lrs = []
    for _ in range(20):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0) and lrs[-1] < 0.02
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))


# --- train.loss: bce | ce | focal -------------------------------------------------------

from soundclf.training import activation_for, per_sample_loss  # noqa: E402


def test_each_loss_matches_its_definition_on_soft_targets():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, -2.0]])
    targets = torch.tensor([[0.7, 0.3, 0.0], [0.005, 0.995, 0.005]])  # mixed row; smoothed row
    bce = per_sample_loss(logits, targets, "bce")
    assert torch.allclose(bce, torch.nn.functional.binary_cross_entropy_with_logits(
        logits, targets, reduction="none").mean(dim=1))
    ce = per_sample_loss(logits, targets, "ce")
    dist = targets / targets.sum(dim=1, keepdim=True)  # rows normalised to a distribution
    assert torch.allclose(ce, -(dist * torch.log_softmax(logits, dim=1)).sum(dim=1))
    assert torch.allclose(ce[1], torch.nn.functional.cross_entropy(logits[1:], dist[1:]))
    focal = per_sample_loss(logits, targets, "focal")
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    element = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    assert torch.allclose(focal, (element * (1 - p_t) ** 2).mean(dim=1))
    assert (focal < bce).all()  # focal down-weights what is already fairly right
    with pytest.raises(ValueError, match="unknown loss"):
        per_sample_loss(logits, targets, "hinge")


@pytest.mark.parametrize("loss", ["bce", "ce", "focal"])
def test_each_loss_trains_and_the_saved_model_applies_the_matching_activation(tmp_path, loss):
    cfg = TrainConfig(epochs=4, lr=3e-3, warmup_epochs=0.5, mixup_prob=0.0, n_segments=2, seed=1, loss=loss)
    model = SoundClassifier("resnet10t", n_classes=2, activation=activation_for(loss))
    history = train(model, tiny_loader(), cfg, tmp_path / "ckpt.pt", tmp_path / "h.csv", device=torch.device("cpu"))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    from soundclf.model import save_model
    save_model(tmp_path / "m.pt", model, {"backbone": "resnet10t", "classes": ["a", "b"]})
    loaded, meta = load_model(tmp_path / "m.pt")
    assert meta["activation"] == loaded.activation == ("softmax" if loss == "ce" else "sigmoid")
    x = torch.randn(3, 1, 16, 12)
    with torch.no_grad():
        p = loaded.probabilities(loaded(x))
    if loss == "ce":
        assert torch.allclose(p.sum(dim=1), torch.ones(3), atol=1e-5)
    else:
        assert torch.allclose(p, torch.sigmoid(loaded(x)), atol=1e-6)


def test_ema_follows_the_warmed_up_moving_average():
    from soundclf.training import weight_average

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = weight_average(model, 0.95)
    expected = None
    for n in range(40):
        with torch.no_grad():
            model[0].weight.add_(torch.randn(4, 3))
        model(torch.randn(8, 3))  # train mode: BatchNorm's running stats move too
        ema.update_parameters(model)
        current = model[0].weight.detach().clone()
        decay = min(0.95, (1 + n) / (10 + n))  # n: updates before this one
        expected = current if expected is None else decay * expected + (1 - decay) * current
        assert torch.allclose(ema.module[0].weight, expected, atol=1e-5)
    assert int(ema.module[1].num_batches_tracked) == 40
    assert weight_average(model, 0.0) is None


def test_training_with_ema_keeps_and_checkpoints_the_average(tmp_path):
    model = new_model()
    cfg = TrainConfig(**{**config(3).__dict__, "ema_decay": 0.999})
    train(model, tiny_loader(), cfg, tmp_path / "ema.pt", tmp_path / "ema.csv", device=torch.device("cpu"))
    state = load_checkpoint(tmp_path / "ema.pt")
    assert int(state["ema"]["n_averaged"]) == 3 * len(tiny_loader())
    averaged = {k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")}
    assert all(torch.equal(model.state_dict()[k], averaged[k]) for k in model.state_dict())
    assert any(not torch.equal(state["model"][k], averaged[k]) for k in averaged if averaged[k].is_floating_point())


def test_crop_loss_scores_strong_crops_per_segment_and_weak_crops_as_a_whole():
    from soundclf.training import crop_loss

    logits = torch.tensor([[2.0, -1.0], [0.5, 0.5]])
    segment_logits = torch.tensor([[[3.0, -3.0], [-3.0, 3.0]], [[1.0, 0.0], [0.0, 1.0]]])
    targets = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])
    loss = crop_loss(logits, segment_logits, targets, torch.tensor([True, False]), "bce")
    strong = per_sample_loss(segment_logits[0], targets[0], "bce").mean()
    weak = per_sample_loss(logits[1:], targets[1:, 0], "bce")[0]
    torch.testing.assert_close(loss, torch.stack([strong, weak]))
    none_strong = crop_loss(logits, segment_logits, targets, torch.tensor([False, False]), "bce")
    torch.testing.assert_close(none_strong, per_sample_loss(logits, targets[:, 0], "bce"))
