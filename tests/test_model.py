"""The network's pieces: segment reshape, mixup, GeM, a learning step."""
import pytest
import torch

from soundclf.model import GeM, SoundClassifier, join_segments, mixup, split_segments


def test_segments_round_trip_and_keep_time_order():
    x = torch.arange(2 * 1 * 4 * 30, dtype=torch.float32).reshape(2, 1, 4, 30)
    seg = split_segments(x, 6)
    assert seg.shape == (12, 1, 4, 5)
    assert torch.equal(seg[1], x[0, :, :, 5:10]) and torch.equal(seg[6], x[1, :, :, 0:5])
    assert torch.equal(join_segments(seg, 6), x)
    with pytest.raises(ValueError):
        split_segments(x, 7)


def test_mixup_uses_one_coefficient_for_inputs_and_weights_and_mixed_bce_losses_equal_mixed_targets():
    from soundclf.training import per_sample_loss

    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    x = torch.randn(8, 1, 4, 12)
    targets = torch.eye(5)[torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])]
    weights = torch.linspace(0.5, 1.5, 8)
    mx, mw, lam, perm = mixup(x, weights, alpha=0.4, generator=g)
    for i in range(8):
        assert torch.allclose(mx[i], lam[i] * x[i] + (1 - lam[i]) * x[perm[i]], atol=1e-6)
        assert torch.allclose(mw[i], lam[i] * weights[i] + (1 - lam[i]) * weights[perm[i]])
    assert ((lam > 0) & (lam < 1)).all()
    logits = torch.randn(8, 5)
    mixed_losses = lam * per_sample_loss(logits, targets, "bce") + (1 - lam) * per_sample_loss(logits, targets[perm], "bce")
    mixed_targets = lam[:, None] * targets + (1 - lam[:, None]) * targets[perm]
    torch.testing.assert_close(mixed_losses, per_sample_loss(logits, mixed_targets, "bce"))


def test_gem_with_p1_is_mean_pooling():
    gem = GeM(p=1.0)
    x = torch.rand(2, 3, 4, 5)
    assert torch.allclose(gem(x), x.mean(dim=(-2, -1)), atol=1e-6)


def test_a_training_step_lowers_the_loss_on_a_tiny_batch():
    torch.manual_seed(0)
    model = SoundClassifier("resnet10t", n_classes=3)
    x = torch.randn(4, 1, 32, 60)
    y = torch.eye(3)[torch.tensor([0, 1, 2, 0])]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    losses = []
    for _ in range(8):
        loss = loss_fn(model(x, n_segments=6), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.8


def test_five_second_window_and_thirty_second_crop_share_the_backbone():
    model = SoundClassifier("resnet10t", n_classes=4).eval()
    crop = torch.randn(1, 1, 32, 60)
    with torch.no_grad():
        assert model(crop, n_segments=6).shape == (1, 4)
        assert model(crop[..., :10], n_segments=1).shape == (1, 4)


def test_pretrained_path_loads_a_local_weights_file_into_the_backbone(tmp_path):
    """Offline compute nodes: weights saved on a machine with internet (here: a timm model's
    state_dict, as `timm.create_model(name, pretrained=True).state_dict()` would give) load
    through model.pretrained_path; the 3-channel stem is summed to the 1-channel input."""
    import timm

    torch.manual_seed(1)
    source = timm.create_model("lcnet_050", pretrained=False)
    path = tmp_path / "lcnet_050.pth"
    torch.save(source.state_dict(), path)
    model = SoundClassifier("lcnet_050", n_classes=4, pretrained_path=str(path))
    saved, loaded = source.state_dict(), model.backbone.state_dict()
    stem = "conv_stem.weight"
    assert torch.allclose(loaded[stem], saved[stem].sum(dim=1, keepdim=True), atol=1e-6)
    shared = [k for k in loaded if k != stem and k in saved]
    assert len(shared) > 50 and all(torch.equal(loaded[k], saved[k]) for k in shared)
    fresh = SoundClassifier("lcnet_050", n_classes=4)
    assert not torch.equal(fresh.backbone.state_dict()["blocks.1.0.conv_dw.weight"], saved["blocks.1.0.conv_dw.weight"])


def test_attention_head_weights_frames_over_time_and_survives_saving(tmp_path):
    from soundclf.model import AttentionHead, load_model, save_model

    torch.manual_seed(0)
    model = SoundClassifier("resnet10t", n_classes=4, head="attention").eval()
    assert isinstance(model.head, AttentionHead)
    crop = torch.randn(2, 1, 32, 60)
    with torch.no_grad():
        assert model(crop, n_segments=6).shape == (2, 4) and model(crop[..., :10]).shape == (2, 4)
        features = model.backbone.forward_features(crop)
        weights, frame_logits = model.head.frame_logits(features)
        assert weights.shape == frame_logits.shape == (2, 4, features.shape[-1])
        assert torch.allclose(weights.sum(dim=-1), torch.ones(2, 4))
        assert torch.allclose(model.head(features), (weights * frame_logits).sum(-1))
    save_model(tmp_path / "m.pt", model, {"backbone": "resnet10t", "classes": list("abcd")})
    loaded, meta = load_model(tmp_path / "m.pt")
    assert meta["head"] == "attention"
    with torch.no_grad():
        assert torch.allclose(loaded(crop, n_segments=6), model(crop, n_segments=6), atol=1e-5)
    with pytest.raises(ValueError, match="head must be one of gem, attention"):
        SoundClassifier("resnet10t", n_classes=4, head="max")


@pytest.mark.parametrize("head", ["gem", "attention"])
def test_segment_logits_are_each_segment_seen_alone(head):
    torch.manual_seed(0)
    model = SoundClassifier("resnet10t", n_classes=4, head=head).eval()
    x = torch.randn(2, 1, 32, 3 * 40)
    with torch.no_grad():
        logits, segments = model(x, n_segments=3, per_segment=True)
        assert logits.shape == (2, 4) and segments.shape == (2, 3, 4)
        torch.testing.assert_close(logits, model(x, n_segments=3))
        for j in range(3):  # a segment's logits are those of its 5 s window at inference
            torch.testing.assert_close(segments[:, j], model(x[..., j * 40 : (j + 1) * 40]), atol=1e-5, rtol=1e-4)
