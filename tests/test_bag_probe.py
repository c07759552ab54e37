"""The bag probe (model.probe_examples: bags): trained on a recording's windows, scored by
their max as evaluation scores a recording, so a call heard in one window of many counts."""
import numpy as np
import torch

from soundclf.embedding.probe import Examples, Probe, example_logits, fit_anchored, fit_probe

DIM, WINDOWS = 16, 48  # 48 windows of 5 s: a 4-minute recording


def site_recordings(n_per_class: int, sites: list[int], rng: np.random.Generator, same_site: float = 1.0):
    """Recordings of two classes, each a bag of WINDOWS window embeddings: a site's background
    in every window (unit strength) and the class's call, four times stronger, in one window.
    A recording of class c is made at site sites[c] with probability `same_site`, else at the
    other: in training most of a class's recordings come from one site, so a recording's mean
    says more about where it was made than what called in it."""
    x, bags, labels = [], [], []
    for c in (0, 1):
        for _ in range(n_per_class):
            windows = rng.normal(0, 0.3, (WINDOWS, DIM))
            site = sites[c] if rng.random() < same_site else sites[1 - c]
            windows[:, 2 + site] += 1.0  # the site's background
            windows[rng.integers(WINDOWS), c] += 4.0  # the call, in one window
            bags += [len(labels)] * WINDOWS
            x.append(windows)
            labels.append(np.eye(2)[c])
    return np.concatenate(x).astype(np.float32), np.array(bags), np.array(labels, np.float32)


def recording_scores(probe: Probe, x: np.ndarray, bags: np.ndarray) -> np.ndarray:
    """As evaluation scores a recording: the max of its windows' probabilities."""
    with torch.no_grad():
        p = torch.sigmoid(probe(torch.from_numpy(x))).numpy()
    return np.stack([p[bags == b].max(0) for b in np.unique(bags)])


def test_a_call_in_one_window_of_a_long_recording_is_scored_by_the_bag_probe_not_the_mean_probe():
    rng = np.random.default_rng(0)
    x, bags, y = site_recordings(20, [0, 1], rng, same_site=0.8)
    means = np.stack([x[bags == b].mean(0) for b in np.unique(bags)])
    mean_probe = fit_probe(Examples(means, y, np.ones(len(y))), "linear", "bce", 1e-3)
    bag_probe = fit_probe(Examples(x, y, np.ones(len(y)), bags=bags), "linear", "bce", 1e-3)
    test_x, test_bags, test_y = site_recordings(10, [1, 0], rng)  # each class heard at the other's site
    truth = test_y.argmax(1)
    bag_right = (recording_scores(bag_probe, test_x, test_bags).argmax(1) == truth).mean()
    mean_right = (recording_scores(mean_probe, test_x, test_bags).argmax(1) == truth).mean()
    assert bag_right >= 0.9 and mean_right <= 0.5, (bag_right, mean_right)


def test_a_bag_is_scored_by_a_smooth_max_of_its_windows_for_each_class():
    x = np.array([[1.0, 0.0], [0.0, 1.0], [30.0, 0.0], [0.0, 0.0]], np.float32)
    probe = Probe(2, 2)
    with torch.no_grad():
        probe.body.weight.copy_(torch.eye(2))
        probe.body.bias.zero_()
    examples = Examples(x, np.eye(2, dtype=np.float32), np.ones(2), bags=np.array([0, 0, 1, 1]))
    x_t, _, _, bags = examples.tensors()
    with torch.no_grad():
        logits = example_logits(probe, x_t, bags, 2)
    middle = np.log((np.e + 1) / 2)  # one window at 1, one at 0: between their mean and their max
    np.testing.assert_allclose(logits.numpy(), [[middle, middle], [30 - np.log(2), 0.0]], atol=1e-5)
    kept = examples.subset(np.array([False, True]))
    assert kept.x.tolist() == [[30.0, 0.0], [0.0, 0.0]] and kept.bags.tolist() == [0, 0]
    assert kept.y.tolist() == [[0.0, 1.0]]


def test_the_anchored_probe_trains_on_bags_too():
    rng = np.random.default_rng(1)
    x, bags, y = site_recordings(15, [0, 1], rng, same_site=0.8)
    prior = Probe(DIM, 2)
    with torch.no_grad():
        prior.body.weight.zero_()
        prior.body.bias.fill_(-2.0)
    probe = fit_anchored(Examples(x, y, np.ones(len(y)), bags=bags), prior, np.array([True, False]), 1e-3, "bce",
                         unmapped_decay=1e-3)
    test_x, test_bags, test_y = site_recordings(10, [1, 0], rng)
    assert (recording_scores(probe, test_x, test_bags).argmax(1) == test_y.argmax(1)).mean() >= 0.9
