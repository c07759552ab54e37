"""The OCI image (Containerfile) built with Podman on a Debian base made without a registry,
then the workflow run inside it on host folders. Opt-in (SOUNDCLF_CONTAINER_TESTS=1): the
build takes minutes and gigabytes, more than the CI budget leaves (docs/containers.md).

    SOUNDCLF_CONTAINER_TESTS=1 .venv/bin/python -m pytest tests/test_container.py

Needs podman and runc (Debian: apt-get install podman runc mmdebstrap). SOUNDCLF_BASE_IMAGE
names a base image to use instead of building one with mmdebstrap; SOUNDCLF_BUILD_OPTS adds
`podman build` options (e.g. volumes with a pip.conf for a proxy or a local package index)."""
import os
import shlex
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO
from test_workflow import SMALL, planned_jobs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("SOUNDCLF_CONTAINER_TESTS") != "1", reason="opt-in: SOUNDCLF_CONTAINER_TESTS=1"),
    pytest.mark.skipif(not shutil.which("podman"), reason="podman is not installed (apt-get install podman runc)"),
]
# runc: crun fails on hybrid cgroups; ulimits no higher than the host's
PODMAN = ["podman", "--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def podman(*args, timeout=1800):
    result = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"podman {' '.join(args[:3])} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    base = os.environ.get("SOUNDCLF_BASE_IMAGE")
    if not base:
        tar = tmp_path_factory.mktemp("base") / "base.tar"
        subprocess.run(["mmdebstrap", "--variant=minbase", "bookworm", str(tar)], check=True, capture_output=True)
        base = "localhost/soundclf-test-base"
        podman("import", str(tar), base)
    podman("build", *LIMITS, "--build-arg", f"BASE_IMAGE={base}", *shlex.split(os.environ.get("SOUNDCLF_BUILD_OPTS", "")),
           "-t", "localhost/soundclf-test", "-f", str(REPO / "Containerfile"), str(REPO))
    return "localhost/soundclf-test"


def test_the_workflow_runs_in_the_image_on_host_folders(image, tmp_path, tiny_dataset):
    work = tmp_path / "work"
    work.mkdir()
    config = {"data": {"layout": "metadata", "audio_dir": "/data/train_audio", "metadata_csv": "/data/train_metadata.csv"},
              "predict": {"audio_dir": "/data/soundscapes", "labels_csv": "/data/soundscape_labels.csv"}} | SMALL
    (work / "c.yaml").write_text(yaml.safe_dump(config))

    def run(*args):
        return podman("run", "--rm", *LIMITS, "--user", f"{os.getuid()}:{os.getgid()}", "-v", f"{work}:/work",
                      "-v", f"{tiny_dataset}:/data:ro", image, "--configfile", "c.yaml", *args)

    assert planned_jobs(run("-n"))["train_fold"] == 2
    run()
    submission = work / "results/experiments/base/predictions/submission.csv"
    assert submission.is_file() and (work / "results/experiments/base/oof/cv_metrics.json").is_file()
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in (work / "results").rglob("*")}
    assert owners == {(os.getuid(), os.getgid())}  # the host user's files
    assert planned_jobs(run("-n")) == {}  # a second plan inside finds everything up to date
