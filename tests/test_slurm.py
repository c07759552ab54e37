"""The workflow on a real SLURM scheduler: a one-node cluster on localhost started by
tools/local_slurm.sh (slurm-wlm + munge, installed from Debian when missing), driven through
profiles/slurm with the test overrides of tests/slurm_profile."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from conftest import REPO, TINY_DEMO, run_snakemake
from test_workflow import planned_jobs

BASE = "results/experiments/base"  # the demo config is one experiment

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

LOCAL_SLURM = REPO / "tools/local_slurm.sh"
TINY = {
    "demo": TINY_DEMO,
    "folds": {"n_folds": 2},
    "mel": {"n_mels": 32, "n_fft": 1024, "hop_length": 512},
    "cache": {"n_shards": 2},
    "model": {"backbone": "lcnet_050"},
    "train": {"epochs": 1, "crop_seconds": 10, "batch_size": 4, "num_workers": 0},
    "predict": {"n_shards": 2},
}


def daemon_pids(state):
    return {p.stem: int(p.read_text()) for p in (state / "run").glob("*.pid")}


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """SLURM_CONF of a running one-node cluster; its daemons are stopped (by PID) afterwards."""
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(["bash", str(LOCAL_SLURM), "start", str(state)], capture_output=True, text=True,
                             timeout=600)
    assert started.returncode == 0, f"local SLURM did not start:\n{started.stdout}\n{started.stderr}"
    pids = daemon_pids(state)
    assert set(pids) == {"munged", "slurmctld", "slurmd"}
    yield {"SLURM_CONF": str(state / "etc/slurm.conf"), "state": state}
    subprocess.run(["bash", str(LOCAL_SLURM), "stop", str(state)], timeout=120, check=True)
    assert not any(alive(pid) for pid in pids.values()), "a SLURM daemon outlived the fixture"


def slurm_command(cluster, workdir, *args, timeout=900):
    """(command, environment) of a Snakemake run through profiles/slurm + the test overrides;
    `timeout -k` ends it even if it hangs (a hung Snakemake ignores SIGTERM)."""
    cmd = ["timeout", "-k", "10", str(timeout), sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
           "-d", str(workdir), "--profile", str(REPO / "profiles/slurm"),
           "--workflow-profile", str(REPO / "tests/slurm_profile"), *args, "--configfile", "c.yaml"]
    env = dict(os.environ, SLURM_CONF=cluster["SLURM_CONF"], PYTHONPATH=str(REPO / "src"),
               PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    return cmd, env


def run_on_slurm(cluster, workdir, *args):
    cmd, env = slurm_command(cluster, workdir, *args)
    result = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"snakemake on SLURM failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result.stdout + result.stderr


def submitted(log: str) -> dict[str, list[int]]:
    """Rule -> SLURM job ids, from Snakemake's 'submitted with SLURM jobid' lines."""
    jobs: dict[str, list[int]] = {}
    for slurm_id, rule in re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+?)/", log):
        jobs.setdefault(rule, []).append(int(slurm_id))
    return jobs


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm_run")
    (workdir / "c.yaml").write_text(yaml.safe_dump(TINY))
    started = time.monotonic()
    log = run_on_slurm(cluster, workdir)
    print(f"SLURM end-to-end run: {time.monotonic() - started:.0f} s; jobs {submitted(log)}")
    return workdir, log


def test_the_workflow_runs_through_sbatch(slurm_run):
    workdir, log = slurm_run
    jobs = submitted(log)
    assert len(jobs.get("train_fold", [])) == 2 and len(jobs.get("evaluate_fold", [])) == 2
    assert len(jobs.get("predict_shard", [])) == 2  # the prediction spread over 2 shard jobs
    assert {"make_demo", "index_audio", "assign_folds", "mel_shard", "aggregate_oof", "predict_recordings"} <= set(jobs)
    for rule in ("train_fold", "evaluate_fold"):
        for slurm_id in jobs[rule]:  # SLURM's own log of each job
            assert any((workdir / f".snakemake/slurm_logs/rule_{rule}").glob(f"**/{slurm_id}.log"))
    results = workdir / BASE
    expected = ["models/fold0/model.pt", "models/fold1/history.csv", "oof/fold1/windows.csv",
                "oof/oof_windows.csv", "oof/cv_metrics.json", "oof/per_class.csv",
                "predictions/submission.csv", "predictions/metrics.json"]
    assert all((results / path).is_file() for path in expected)
    train_log = workdir / "results/logs/train_fold/base/fold0.log"
    assert "device cpu" in train_log.read_text()  # GPU granted, none usable
    # the demo layout, built through its checkpoint (this is the suite's end-to-end run of the demo)
    folds = pd.read_csv(workdir / "results/folds/folds.csv")
    assert len(folds) == TINY_DEMO["n_species"] * TINY_DEMO["recordings_per_species"]
    labels = pd.read_csv(workdir / "results/demo/soundscape_labels.csv")
    submission = pd.read_csv(results / "predictions/submission.csv")
    assert submission["row_id"].tolist() == labels["row_id"].tolist()  # soundscape_00_5, _10
    assert "padded_cmap" in json.loads((results / "predictions/metrics.json").read_text())
    assert planned_jobs(run_snakemake(workdir, "-n", "--configfile", "c.yaml")) == {}  # nothing left after the checkpoint


def test_deleting_one_fold_resubmits_only_that_fold_and_what_follows(cluster, slurm_run):
    workdir, _ = slurm_run
    shutil.rmtree(workdir / f"{BASE}/models/fold1")
    shutil.rmtree(workdir / f"{BASE}/oof/fold1")
    jobs = submitted(run_on_slurm(cluster, workdir))
    assert {rule: len(ids) for rule, ids in jobs.items()} == {
        "train_fold": 1, "evaluate_fold": 1, "aggregate_oof": 1, "predict_shard": 2, "predict_recordings": 1}
    assert (workdir / f"{BASE}/models/fold1/model.pt").is_file()


def test_a_requeued_training_job_resumes_from_its_checkpoint(cluster, slurm_run, tmp_path):
    workdir, _ = slurm_run
    # long enough to be requeued mid-run: an epoch of the tiny data takes ~0.05 s on an idle machine
    epochs = 100
    config = TINY | {"train": TINY["train"] | {"epochs": epochs}}
    (workdir / "c.yaml").write_text(yaml.safe_dump(config))
    cmd, env = slurm_command(cluster, workdir, f"{BASE}/models/fold0/model.pt")
    runner = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    checkpoint = workdir / f"{BASE}/models/fold0/work/last.pt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists():  # at least one epoch done
        assert runner.poll() is None and time.monotonic() < deadline, "training ended before it could be requeued"
        time.sleep(0.1)
    squeue = subprocess.run(["squeue", "-h", "-o", "%i %j"], env=env, capture_output=True, text=True, check=True)
    job_id = squeue.stdout.split()[0]
    subprocess.run(["scontrol", "requeue", job_id], env=env, check=True)
    out, _ = runner.communicate(timeout=900)
    assert runner.returncode == 0, out[-4000:]
    log = (workdir / "results/logs/train_fold/base/fold0.log").read_text()
    resumed = re.search(r"resumed from \S+ after epoch (\d+)", log)
    assert resumed and int(resumed[1]) >= 1, log[-3000:]
    history = pd.read_csv(workdir / f"{BASE}/models/fold0/history.csv")
    assert history["epoch"].tolist() == list(range(1, epochs + 1))
