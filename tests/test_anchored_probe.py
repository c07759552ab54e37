"""The anchored probe: the embedding model's classifier refitted on the labels with an L2 pull
towards it, its strength chosen inside the training folds."""
import numpy as np
import torch

from soundclf.embedding.probe import Examples, Probe, choose_strength, fit_anchored, fit_probe


def prior_and_data(n=240, dim=12, classes=3, seed=0, prior_is_right=True):
    rng = np.random.default_rng(seed)
    prior = Probe(dim, classes)
    with torch.no_grad():
        prior.body.weight.copy_(torch.from_numpy(rng.normal(0, 1.0, (classes, dim)).astype(np.float32)))
        prior.body.bias.copy_(torch.tensor([-1.0, 0.0, 0.5]))
    x = rng.normal(0, 1, (n, dim)).astype(np.float32)
    truth = prior if prior_is_right else Probe(dim, classes)  # a random head: the prior is wrong
    with torch.no_grad():
        p = torch.sigmoid(truth(torch.from_numpy(x))).numpy()
    y = (rng.random(p.shape) < p).astype(np.float32)  # noisy: not separable
    return prior, x, y, Examples(x, y, np.ones(n))


def scores(probe, x):
    with torch.no_grad():
        return torch.sigmoid(probe(torch.from_numpy(x))).numpy()


def test_an_infinite_anchor_gives_the_prior_and_none_an_unanchored_probe():
    prior, x, y, examples = prior_and_data()
    mapped = np.array([True, True, True])
    anchored = fit_anchored(examples, prior, mapped, strength=1e6, loss="bce")
    np.testing.assert_allclose(scores(anchored, x), scores(prior, x), atol=1e-3)
    free = fit_anchored(examples, prior, mapped, strength=0.0, loss="bce")
    plain = fit_probe(examples, "linear", "bce", weight_decay=0.0, unit_length=False)
    np.testing.assert_allclose(scores(free, x), scores(plain, x), atol=5e-3)
    assert np.abs(scores(free, x) - scores(prior, x)).max() > 0.05  # the labels moved it


def test_an_unmapped_class_starts_from_zero_with_its_own_penalty():
    prior, x, y, examples = prior_and_data()
    mapped = np.array([True, True, False])
    held = fit_anchored(examples, prior, mapped, strength=100.0, loss="bce", unmapped_decay=100.0)
    weight, bias = held.body.weight.detach(), held.body.bias.detach()
    assert weight[2].abs().max() < 0.01  # its weights held near zero, not at the prior's...
    assert abs(np.log(y[:, 2].mean() / (1 - y[:, 2].mean())) - float(bias[2])) < 0.05  # ...its bias free
    np.testing.assert_allclose(scores(held, x)[:, :2], scores(prior, x)[:, :2], atol=0.01)
    free = fit_anchored(examples, prior, mapped, strength=100.0, loss="bce", unmapped_decay=0.0)
    assert free.body.weight.detach()[2].abs().max() > 0.1  # a weak penalty lets it learn from the labels
    np.testing.assert_allclose(scores(free, x)[:, :2], scores(prior, x)[:, :2], atol=0.01)


def test_the_strength_chosen_on_training_folds_follows_whether_the_prior_is_right():
    strengths = [1e-4, 1e-2, 1.0, 100.0]
    for right, expect_strong in ((True, True), (False, False)):
        prior, x, y, examples = prior_and_data(n=300, seed=1, prior_is_right=right)
        groups = np.arange(len(x)) % 3
        chosen, losses = choose_strength(examples, groups, prior, np.ones(3, bool), strengths, "bce")
        assert set(losses) == set(strengths)
        assert (chosen >= 1.0) == expect_strong, (right, chosen, losses)


def test_softmax_ce_trains_from_the_prior_too():
    prior, x, y, examples = prior_and_data()
    y = np.eye(3, dtype=np.float32)[y.argmax(1)]
    probe = fit_anchored(Examples(x, y, examples.weights), prior, np.ones(3, bool), strength=1e-3, loss="ce")
    with torch.no_grad():
        accuracy = (probe(torch.from_numpy(x)).argmax(1).numpy() == y.argmax(1)).mean()
    assert np.isfinite(probe.final_loss) and accuracy > 0.5
