"""Jobs killed with SIGKILL part-way (Snakemake and the job together, as when a node dies):
the rerun completes the cache without ever taking a half-written shard for complete, and
training resumes from its last checkpoint and ends exactly where an uninterrupted run does."""
import json
import os
import signal
import shutil
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import mel_cache_dir, run_snakemake, snakemake_command
from hostile_corpus import write_long_wav
from soundclf.mel_cache import MelCache, shard_path
from soundclf.model import load_model
from soundclf.sources import shard_of
from test_workflow import SMALL, write_config

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

BASE = "results/experiments/base"  # the one experiment of a config without `experiments`


def start_snakemake(workdir, *args):
    cmd, env = snakemake_command(workdir, *args)
    with open(workdir / "killed_run.log", "w") as output:
        process = subprocess.Popen(cmd, env=env, cwd=workdir, start_new_session=True, stdout=output, stderr=output)
    process.log_path = workdir / "killed_run.log"
    return process


def kill_when(process, condition, timeout=300):
    """SIGKILL the whole process group as soon as condition() holds. The group is stopped
    first and the condition read again, so the value returned is the state it was killed in."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            os.killpg(process.pid, signal.SIGSTOP)
            value = condition()
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return value
        assert process.poll() is None, f"the run ended before it was killed:\n{process.log_path.read_text()[-3000:]}"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError("the condition never held")


def test_killed_mel_job_leaves_no_shard_that_looks_complete(tmp_path, tiny_dataset):
    shutil.copytree(tiny_dataset, tmp_path / "data")
    long_key = "whistler/long field recording.wav"  # 30 minutes: its shard takes about a second
    write_long_wav(tmp_path / "data/train_audio" / long_key, 30 * 60)
    meta = pd.read_csv(tmp_path / "data/train_metadata.csv")
    meta.loc[len(meta)] = {"primary_label": "whistler", "secondary_labels": "[]", "filename": long_key,
                           "rating": 4.0, "author": "Recordist 01"}
    meta.to_csv(tmp_path / "data/train_metadata.csv", index=False)
    config = write_config(tmp_path)
    cache_dir = mel_cache_dir(tmp_path, config)
    mel_dir = tmp_path / cache_dir
    n_shards = SMALL["cache"]["n_shards"]
    long_shard = shard_path(mel_dir, shard_of(long_key, n_shards))
    temporary = f".{long_shard.name}.tmp-*"

    shards = [str(shard_path(cache_dir, s)) for s in range(n_shards)]
    run = start_snakemake(tmp_path, *shards, "--configfile", config)  # targets first: --configfile takes a list
    killed_in = kill_when(run, lambda: list(mel_dir.glob(temporary)))
    assert killed_in and not long_shard.exists()  # killed mid-write: only the temporary file is there

    run_snakemake(tmp_path, "--unlock", "--configfile", config)  # Snakemake itself was killed: its lock stays
    run_snakemake(tmp_path, *shards, "results/index/recordings.csv", "--configfile", config, "--rerun-incomplete")
    assert not list(mel_dir.glob(".*tmp-*"))
    index = pd.read_csv(tmp_path / "results/index/recordings.csv")
    cache = MelCache(mel_dir, n_shards)
    for key, duration in zip(index["key"], index["duration"]):
        mel = cache.full(key)
        assert np.isfinite(mel).all() and abs(mel.shape[1] - duration * 32000 / 512) <= 2, key
    assert cache.n_frames(long_key) == 1 + 30 * 60 * 32000 // 512
    cache.close()


def saved_epoch(checkpoint):
    """A condition for kill_when: the last epoch a training checkpoint holds (0 while there
    is none, or while it is being written)."""
    def epoch():
        try:
            return torch.load(checkpoint, weights_only=True)["epoch"]
        except (FileNotFoundError, RuntimeError, EOFError):
            return 0

    return epoch


@pytest.fixture(scope="module")
def trained_workdirs(tmp_path_factory, tiny_dataset):
    """Two identical working directories with the data stages done."""
    base = tmp_path_factory.mktemp("killtrain")
    shutil.copytree(tiny_dataset, base / "data")
    config = {"train": SMALL["train"] | {"epochs": 6}}
    (base / "epochs.yaml").write_text(yaml.safe_dump(config))
    cache_dir = mel_cache_dir(base, write_config(base), "epochs.yaml")
    run_snakemake(base, "results/folds/folds.csv", *(f"{cache_dir}/shard_{s:03d}.h5" for s in range(SMALL["cache"]["n_shards"])),
                  "--configfile", "config.test.yaml", "epochs.yaml")
    return base


def test_killed_training_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(trained_workdirs, tmp_path):
    target = [f"{BASE}/oof/fold0/metrics.json", "--configfile", "config.test.yaml", "epochs.yaml"]
    uninterrupted, killed = tmp_path / "uninterrupted", tmp_path / "killed"
    for workdir in (uninterrupted, killed):
        shutil.copytree(trained_workdirs, workdir, symlinks=True)
    run_snakemake(uninterrupted, *target)

    epoch_at_kill = kill_when(start_snakemake(killed, *target), saved_epoch(killed / f"{BASE}/models/fold0/work/last.pt"))
    assert 1 <= epoch_at_kill < 6 and not (killed / f"{BASE}/models/fold0/model.pt").exists()
    run_snakemake(killed, "--unlock", *target)
    run_snakemake(killed, *target, "--rerun-incomplete")

    log = (killed / "results/logs/train_fold/base/fold0.log").read_text()
    resumed = int(log.split("after epoch ")[1].split()[0])
    assert resumed >= epoch_at_kill  # at most the epoch in progress was lost
    history = pd.read_csv(killed / f"{BASE}/models/fold0/history.csv")
    assert history["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
    reference = pd.read_csv(uninterrupted / f"{BASE}/models/fold0/history.csv")
    pd.testing.assert_frame_equal(history, reference, check_exact=True)
    # CPU training here is deterministic (fixed seeds, the RNG state is in the checkpoint,
    # loader in the main process): the resumed run ends on the very same weights
    models = [load_model(w / f"{BASE}/models/fold0/model.pt", torch.device("cpu"))[0] for w in (uninterrupted, killed)]
    for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values()):
        assert torch.equal(a, b)
    metrics = [json.loads((w / f"{BASE}/oof/fold0/metrics.json").read_text()) for w in (uninterrupted, killed)]
    assert metrics[0] == metrics[1]


@pytest.fixture(scope="module")
def prediction_base(tmp_path_factory, tiny_dataset):
    """Trained fold models and an archive of 40 files in four folders, predicted one after another."""
    base = tmp_path_factory.mktemp("killpredict")
    shutil.copytree(tiny_dataset, base / "data")
    soundscape = next((base / "data/soundscapes").glob("*.ogg"))
    for i in range(40):
        (base / "archive" / f"site_{i % 4}").mkdir(parents=True, exist_ok=True)
        shutil.copy(soundscape, base / "archive" / f"site_{i % 4}" / f"rec_{i:02d}.ogg")
    config = write_config(base, {"predict": {"audio_dir": "archive", "labels_csv": None},
                                 "train": SMALL["train"] | {"epochs": 1}})
    run_snakemake(base, *(f"{BASE}/models/fold{k}/model.pt" for k in (0, 1)), "--configfile", config)
    return base


PREDICTED = f"{BASE}/predictions/submission.csv"
PARTS = f"{BASE}/predictions/shards/shard_0.parts"


def committed(parts):
    """A condition for kill_when: recordings committed to a shard's journal (0 before the first)."""
    def count():
        try:
            return len((parts / "done.jsonl").read_text().splitlines())
        except FileNotFoundError:
            return 0

    return count


def kill_prediction(workdir, *configs):
    """Start predicting, SIGKILL it once at least 3 of the 40 recordings are committed; how many were."""
    args = [a for c in configs for a in ("--configfile", c)]
    done_at_kill = kill_when(start_snakemake(workdir, PREDICTED, *args), lambda: committed(workdir / PARTS)() >= 3
                             and committed(workdir / PARTS)())
    assert 3 <= done_at_kill < 40 and not (workdir / f"{BASE}/predictions/shards/shard_0.csv").exists()
    run_snakemake(workdir, "--unlock", PREDICTED, *args)
    return done_at_kill


def test_killed_prediction_shard_resumes_and_matches_an_uninterrupted_run(prediction_base, tmp_path):
    uninterrupted, killed = tmp_path / "uninterrupted", tmp_path / "killed"
    for workdir in (uninterrupted, killed):
        shutil.copytree(prediction_base, workdir, symlinks=True)
    run_snakemake(uninterrupted, PREDICTED, "--configfile", "config.test.yaml")

    done_at_kill = kill_prediction(killed, "config.test.yaml")
    run_snakemake(killed, PREDICTED, "--configfile", "config.test.yaml", "--rerun-incomplete")
    log = (killed / "results/logs/predict_shard/base/shard_0.log").read_text()
    resumed = int(log.split("resumed: ")[1].split()[0])
    assert resumed >= done_at_kill  # every committed file was kept, none predicted twice
    assert not (killed / PARTS).exists()
    for name in ("shards/shard_0.csv", "submission.csv"):
        assert (killed / f"{BASE}/predictions/{name}").read_bytes() == (uninterrupted / f"{BASE}/predictions/{name}").read_bytes()


def test_a_killed_prediction_rerun_after_retraining_keeps_no_window_of_the_old_models(prediction_base, tmp_path):
    workdir = tmp_path / "w"
    shutil.copytree(prediction_base, workdir, symlinks=True)
    done_at_kill = kill_prediction(workdir, "config.test.yaml")
    (workdir / "seed.yaml").write_text(yaml.safe_dump({"train": SMALL["train"] | {"epochs": 1, "seed": 1}}))
    run_snakemake(workdir, PREDICTED, "--configfile", "config.test.yaml", "seed.yaml", "--rerun-incomplete")
    log = (workdir / "results/logs/predict_shard/base/shard_0.log").read_text()
    assert f"discarded {done_at_kill} recording(s)" in log and "resumed:" not in log
    after_kill = (workdir / PREDICTED).read_bytes()
    shutil.rmtree(workdir / f"{BASE}/predictions")  # a clean prediction with the retrained models
    run_snakemake(workdir, PREDICTED, "--configfile", "config.test.yaml", "seed.yaml")
    assert (workdir / PREDICTED).read_bytes() == after_kill
