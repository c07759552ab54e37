"""A job's output: progress bars and INFO lines in its log only; warnings and errors also on
the terminal that side-by-side jobs share."""
import subprocess
import sys

from conftest import REPO

JOB = """
import logging, time
from tqdm import tqdm
from soundclf.logs import setup_logging
log = setup_logging({log!r})
log.info("step one done")
for _ in tqdm(range(3), desc="epoch 1/1"):
    time.sleep(0.01)
log.warning("3 files skipped")
raise ValueError("data.audio_dir: no such folder; set it")
"""


def test_bars_and_info_go_to_the_log_and_errors_to_both(tmp_path):
    log = tmp_path / "logs/job.log"
    result = subprocess.run([sys.executable, "-c", JOB.format(log=str(log))], capture_output=True, text=True,
                            env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    terminal, written = result.stderr, log.read_text()
    assert "3 files skipped" in terminal and "ValueError: data.audio_dir: no such folder; set it" in terminal
    assert "step one done" not in terminal and "epoch 1/1" not in terminal
    for line in ("step one done", "epoch 1/1", "3 files skipped", "ValueError: data.audio_dir: no such folder"):
        assert line in written
