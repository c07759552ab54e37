"""Prediction over a large archive (issue 43, item 5): how long Snakemake plans the prediction
of 100 000 small files in 500 folders, and how long one prediction shard job takes from its
start to its first predicted file.

    python bench/archive_scale.py [--repo CHECKOUT] [--root /tmp/scale] [--unique-names]
                                  [--files 100000] [--folders 500] [--shards 100] [--repeats 2]
                                  [--label before] [--record]

`--repo` is the checkout whose Snakefile and `src/` are measured (default: this one), so that a
worktree of an older commit is measured with the same script; the script's own results go to
this checkout's bench/results.json.

**The archive** (`ROOT/archive`, kept between runs; `ROOT/archive.json` says its layout) is
`--files` hard links, in `--folders` folders `site_000/ … site_499/`, to one WAV of 1 s of noise
at 32 kHz (PCM 16, 64 kB; one copy per 10 000 links, ext4 allowing 65 000 links to a file):
the disk holds 10 such files, the folders 100 000 directory entries.
Names are AudioMoth's, a start time every 30 min (`20240501_000000.WAV`, …), the same names in
every folder as on recorders' cards; `--unique-names` prefixes the folder
(`site_007_20240501_000000.WAV`, the Song Meter form), for code that refuses repeated names.

**The work directory** (`ROOT/work`, kept) holds the tests' tiny dataset (`soundclf.demo`,
3 species × 4 recordings, metadata layout) and `config.bench.yaml`: the tests' tiny training
(2 folds, lcnet_050, 1 epoch, 32 mels), predict.audio_dir the archive, predict.n_shards
`--shards`, no window truth. The two fold models are trained once (the first run) and reused:
only prediction keys differ between runs, and they retrain nothing.

**What is timed** (wall clock, `time.time()` of this process; the file system cache is warm: a
first, untimed `snakemake -n` walks the archive and writes the manifests before any timing):

- `plan_seconds`: `snakemake -n --cores 1 results/experiments/base/predictions/submission.csv`
  from process start to exit, models present: it plans the `--shards` predict_shard jobs and
  predict_recordings (the job counts are checked and printed). The median of `--repeats` runs.
- `first_window_seconds`: ONE shard job (`--shard`, default 0) run as the local equivalent of a
  cluster job, `snakemake --cores 1 results/experiments/base/predictions/shards/shard_0.csv`,
  from that process's start (Snakemake parses the Snakefile, lists the archive, checks the
  manifests, builds the DAG, starts the job; the job's script imports torch, lists what it
  lists, loads the models, decodes and scores its first batch) to the timestamp of the job log's
  first `<file>: N windows` line, which the job writes as it commits that file's part (when the
  log has none: the earliest mtime of a file under the shard's parts path). The run is then
  stopped (SIGINT to its process group) and its shard output and parts removed, so every repeat
  starts from nothing. The median of `--repeats` runs. Printed beside it, from the same runs:
  the time to Snakemake's job line (`rule predict_shard`: planning done) and to the job log's
  first line (the script's logging set up: interpreter and torch imported).
- `first_window_seconds_remote`: the same, with the command a cluster executor runs in the job
  (`snakemake --target-jobs predict_shard:exp=base,pshard=0 --allowed-rules predict_shard
  --cores 1 --force --nolock --ignore-incomplete --max-inventory-time 0 … --mode remote`, as
  snakemake.spawn_jobs writes it; srun and the job script aside): Snakemake re-parses the
  Snakefile as a job (`workflow.is_main_process` false) and builds the DAG of that one job.
- Beside each, `…cpu_seconds`: the CPU time (user + system, from getrusage of the finished
  children) of the processes timed, Snakemake and the job's script; for a shard job up to its
  stop just after the first file, its shutdown included. On a machine shared with other work
  the wall times vary by half from run to run (load average 2-8 on 2 cores); the CPU times by
  5 %.

With `--record` the figures go to bench/results.json as `archive.100k[.LABEL].plan_seconds`,
`….first_window_seconds`, `….first_window_seconds_remote` and their `…cpu_seconds` (100k:
`--files` in thousands), the single runs beside them (`…_runs`), the first plan's wall time
(`….first_plan_seconds`), the load average at the start and the commit measured
(`….commit`, `+`: with uncommitted changes)."""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from common import REPO, markdown_table, record_figures

SAMPLE_RATE = 32000
LINKS_PER_COPY = 10_000
EXP = "results/experiments/base"
PLAN_TARGET = f"{EXP}/predictions/submission.csv"
# the tests' tiny dataset (tests/conftest.py TINY_DEMO) and training (tests/test_workflow.py SMALL)
TINY_DEMO = {"n_species": 3, "recordings_per_species": 4, "min_seconds": 3.0, "max_seconds": 8.0,
             "n_soundscapes": 1, "soundscape_seconds": 10, "n_authors": 4, "n_unlabeled_soundscapes": 3}
SMALL = {"folds": {"n_folds": 2}, "mel": {"n_mels": 32, "n_fft": 1024, "hop_length": 512}, "cache": {"n_shards": 4},
         "model": {"backbone": "lcnet_050"}, "train": {"epochs": 1, "crop_seconds": 10, "batch_size": 4, "num_workers": 0}}
# a log line of the job (a tqdm bar may precede it on the same line)
STAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: "
WINDOWS_LINE = re.compile(STAMP + r"(.+?): (\d+) windows\s*$")
ANY_LINE = re.compile(STAMP)
# how a cluster executor starts a job (snakemake_interface_executor_plugins format_job_exec and
# snakemake.spawn_jobs general_args: the arguments that apply here), srun and the like aside
REMOTE_ARGS = ["--cores", "1", "--force", "--target-files-omit-workdir-adjustment", "--max-inventory-time", "0",
               "--retries", "0", "--nocolor", "--no-hooks", "--nolock", "--ignore-incomplete", "--mode", "remote"]


def build_archive(archive: Path, n_files: int, n_folders: int, unique_names: bool) -> None:
    """n_files hard links to one 1 s WAV in n_folders folders (kept when the layout matches)."""
    layout = {"files": n_files, "folders": n_folders, "unique_names": unique_names, "seconds": 1.0,
              "sample_rate": SAMPLE_RATE}
    described = archive.with_suffix(".json")
    if archive.is_dir() and described.is_file() and json.loads(described.read_text()) == layout:
        return
    shutil.rmtree(archive, ignore_errors=True)
    described.unlink(missing_ok=True)
    archive.mkdir(parents=True)
    source = archive.parent / "source.wav"  # outside the archive: only the links are listed
    noise = 0.05 * np.random.default_rng(0).standard_normal(SAMPLE_RATE)
    sf.write(source, noise.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
    copies = []
    for j in range(-(-n_files // LINKS_PER_COPY)):
        copies.append(archive.parent / f"source_{j}.wav")
        shutil.copyfile(source, copies[-1])
    start = datetime(2024, 5, 1)
    per_folder = -(-n_files // n_folders)
    for i in range(n_files):
        folder = f"site_{i // per_folder:03d}"
        name = (start + timedelta(minutes=30 * (i % per_folder))).strftime("%Y%m%d_%H%M%S") + ".WAV"
        target = archive / folder / (f"{folder}_{name}" if unique_names else name)
        if i % per_folder == 0:
            target.parent.mkdir()
        os.link(copies[i // LINKS_PER_COPY], target)
    for path in [source, *copies]:  # the links keep the data
        path.unlink()
    described.write_text(json.dumps(layout))


def snakemake_command(repo: Path, work: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(work),
            "--configfile", str(work / "config.bench.yaml"), *args]


def environment(repo: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(repo / "src"))


def prepare_work(repo: Path, work: Path, archive: Path, n_shards: int) -> None:
    """The tiny dataset, the config, the two fold models (trained once)."""
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "data/train_metadata.csv").is_file():
        code = ("import sys; from pathlib import Path; from soundclf.demo import DemoConfig, generate; "
                f"generate(Path(sys.argv[1]), DemoConfig(seed=3, **{TINY_DEMO!r}), progress=False)")
        subprocess.run([sys.executable, "-c", code, str(work / "data")], check=True, env=environment(repo))
    config = {"data": {"layout": "metadata", "audio_dir": "data/train_audio", "metadata_csv": "data/train_metadata.csv"},
              "predict": {"audio_dir": str(archive), "labels_csv": None, "n_shards": n_shards}} | SMALL
    text = yaml.safe_dump(config)
    if not (work / "config.bench.yaml").is_file() or (work / "config.bench.yaml").read_text() != text:
        (work / "config.bench.yaml").write_text(text)
    models = [f"{EXP}/models/fold{k}/model.pt" for k in range(SMALL["folds"]["n_folds"])]
    if not all((work / m).is_file() for m in models):
        started = time.time()
        subprocess.run(snakemake_command(repo, work, "--cores", "2", *models), check=True, env=environment(repo),
                       capture_output=True)
        print(f"trained the {len(models)} fold models in {time.time() - started:.0f} s", flush=True)


def planned_jobs(text: str) -> dict[str, int]:
    """Job counts of a dry run's 'Job stats' table ({} when nothing is to be done)."""
    if "Job stats:" not in text:
        return {}
    table = text.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children and theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def plan(repo: Path, work: Path) -> tuple[float, float, dict[str, int]]:
    """Wall and CPU seconds of `snakemake -n` of the prediction, and the jobs it plans."""
    cpu, started = children_cpu(), time.time()
    result = subprocess.run(snakemake_command(repo, work, "-n", "--cores", "1", PLAN_TARGET), env=environment(repo),
                            capture_output=True, text=True)
    seconds, cpu = time.time() - started, children_cpu() - cpu
    if result.returncode != 0:
        raise SystemExit(f"snakemake -n failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return seconds, cpu, planned_jobs(result.stdout + result.stderr)


def log_time(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def clean_shard(work: Path, shard: int) -> None:
    shards = work / EXP / "predictions/shards"
    for path in [shards / f"shard_{shard}.csv", *shards.glob(f"shard_{shard}.*")]:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    (work / f"results/logs/predict_shard/base/shard_{shard}.log").unlink(missing_ok=True)


def first_parts_mtime(work: Path, shard: int, since: float) -> float | None:
    times = [p.stat().st_mtime for p in (work / EXP / "predictions/shards").glob(f"shard_{shard}.*/**/*")
             if p.is_file() and p.stat().st_mtime >= since]
    return min(times, default=None)


def first_window(repo: Path, work: Path, shard: int, timeout: float, remote: bool = False) -> dict:
    """One shard job from its process's start to its first predicted file (seconds), then
    stopped: `snakemake --cores 1 <its csv>`, or (remote) the command a cluster job runs."""
    clean_shard(work, shard)
    log = work / f"results/logs/predict_shard/base/shard_{shard}.log"
    target = f"{EXP}/predictions/shards/shard_{shard}.csv"
    how = (["--target-jobs", f"predict_shard:exp=base,pshard={shard}", "--allowed-rules", "predict_shard", *REMOTE_ARGS]
           if remote else ["--cores", "1", target])
    marks: dict[str, float] = {}
    cpu, started = children_cpu(), time.time()
    proc = subprocess.Popen(snakemake_command(repo, work, *how), env=environment(repo),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            output.append(line)
            if "predict_shard" in line and "rule" in line:
                marks.setdefault("job_line", time.time())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    found = None
    while time.time() - started < timeout and proc.poll() is None:
        if log.is_file():
            lines = log.read_text(errors="replace").splitlines()
            if lines and ANY_LINE.search(lines[0]):
                marks.setdefault("script_log", log_time(ANY_LINE.search(lines[0])[1]))
            hit = next((m for m in map(WINDOWS_LINE.search, lines) if m), None)
            if hit:
                found = log_time(hit[1])
                marks["first_file"] = hit[2]
                break
        time.sleep(0.05)
    if found is None:
        found = first_parts_mtime(work, shard, started)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)  # its own session: Snakemake and the job's script
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    cpu = children_cpu() - cpu
    reader.join(5)
    if (work / ".snakemake/locks").is_dir() and any((work / ".snakemake/locks").iterdir()):
        subprocess.run(snakemake_command(repo, work, "--unlock"), env=environment(repo), capture_output=True)
    clean_shard(work, shard)
    # Snakemake's mark of the job it was stopped in (read for outputs that exist, which this has not)
    (work / ".snakemake/incomplete" / base64.b64encode(target.encode()).decode()).unlink(missing_ok=True)
    if found is None:
        raise SystemExit(f"shard {shard}: no predicted file within {timeout:g} s (exit {proc.returncode}):\n"
                         + "".join(output[-40:]))
    return {"first_window_s": found - started, "cpu_s": cpu, "job_line_s": marks.get("job_line", float("nan")) - started,
            "script_log_s": marks.get("script_log", float("nan")) - started, "first_file": marks.get("first_file")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout measured (its Snakefile and src/)")
    parser.add_argument("--root", type=Path, default=Path("/tmp/scale"), help="archive/ and work/ go here")
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--folders", type=int, default=500)
    parser.add_argument("--shards", type=int, default=100)
    parser.add_argument("--shard", type=int, default=0, help="the shard job of first_window_seconds")
    parser.add_argument("--unique-names", action="store_true", help="<folder>_<time>.WAV: no name repeats")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600, help="seconds a shard job may take to its first file")
    parser.add_argument("--label", default="", help="e.g. before / after: archive.100k.<label>.* in results.json")
    parser.add_argument("--record", action="store_true", help="write the figures into bench/results.json")
    args = parser.parse_args()
    repo, root = args.repo.resolve(), args.root.resolve()
    bench_started = time.time()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    archive = root / "archive"
    started = time.time()
    build_archive(archive, args.files, args.folders, args.unique_names)
    print(f"archive {archive}: {args.files} files in {args.folders} folders ({time.time() - started:.1f} s)", flush=True)
    prepare_work(repo, root / "work", archive, args.shards)
    work = root / "work"
    shutil.rmtree(work / EXP / "predictions", ignore_errors=True)  # every shard to plan
    warm, warm_cpu, jobs = plan(repo, work)  # lists the archive into the file system cache, writes the manifests
    print(f"first (untimed) snakemake -n: {warm:.1f} s ({warm_cpu:.1f} s CPU), jobs {jobs}", flush=True)
    expected = {"predict_shard": args.shards, "predict_recordings": 1}
    if {k: v for k, v in jobs.items() if k != "total"} != expected:
        print(f"WARNING: the plan is not prediction alone ({expected}): {jobs}", flush=True)
    plans, plan_cpus = zip(*(plan(repo, work)[:2] for _ in range(args.repeats)))
    print("plan_seconds runs:", ", ".join(f"{s:.2f}" for s in plans), flush=True)
    shards = [first_window(repo, work, args.shard, args.timeout) for _ in range(args.repeats)]
    print("first_window_seconds runs:", ", ".join(f"{s['first_window_s']:.2f}" for s in shards), flush=True)
    remote = [first_window(repo, work, args.shard, args.timeout, remote=True) for _ in range(args.repeats)]
    print("first_window_seconds_remote runs:", ", ".join(f"{s['first_window_s']:.2f}" for s in remote), flush=True)
    label = f"{args.label} " if args.label else ""
    print(f"\n{label}at {commit}{' (+ uncommitted changes)' if dirty else ''}: {args.files:,} files in "
          f"{args.folders} folders, {args.shards} prediction shards, {'unique' if args.unique_names else 'repeated'} "
          f"names; median of {args.repeats} runs (each run); load average before: {load}\n")
    each = lambda values: f"{statistics.median(values):.2f} s ({', '.join(f'{v:.2f}' for v in values)})"  # noqa: E731
    rows = [[f"`snakemake -n` of the prediction ({jobs.get('predict_shard', '?')} predict_shard + "
             f"{jobs.get('predict_recordings', '?')} predict_recordings planned): plan_seconds", each(plans)],
            ["… its CPU time (user + system): plan_cpu_seconds", each(plan_cpus)],
            ["the first `snakemake -n` on this work directory (untimed above; writes what planning writes), wall / CPU",
             f"{warm:.2f} s / {warm_cpu:.2f} s"]]
    for runs, how, key in ((shards, "`snakemake --cores 1 <its csv>`", "first_window_seconds"),
                           (remote, "as a cluster job: `snakemake --target-jobs … --mode remote`",
                            "first_window_seconds_remote")):
        rows += [[f"one shard job (shard {args.shard}, {how}): start to its first predicted file: {key}",
                  each([s["first_window_s"] for s in runs])],
                 ["… of which: start to Snakemake's `rule predict_shard` line (parse, list, manifests, DAG)",
                  each([s["job_line_s"] for s in runs])],
                 ["… start to the job log's first line (script started, torch imported)",
                  each([s["script_log_s"] for s in runs])],
                 ["… CPU time of its processes to the stop (just after the first file, shutdown included)",
                  each([s["cpu_s"] for s in runs])]]
    print(markdown_table(["what", "wall time"], rows))
    print(f"\nfirst predicted file: {shards[0]['first_file']}\nbench run: {time.time() - bench_started:.0f} s")
    if args.record:
        prefix = f"archive.{args.files // 1000}k" + (f".{args.label}" if args.label else "")
        figures = {f"{prefix}.plan_seconds": plans, f"{prefix}.plan_cpu_seconds": plan_cpus,
                   f"{prefix}.first_window_seconds": [s["first_window_s"] for s in shards],
                   f"{prefix}.first_window_cpu_seconds": [s["cpu_s"] for s in shards],
                   f"{prefix}.first_window_seconds_remote": [s["first_window_s"] for s in remote],
                   f"{prefix}.first_window_cpu_seconds_remote": [s["cpu_s"] for s in remote]}
        record_figures({key: round(statistics.median(values), 2) for key, values in figures.items()}
                       | {f"{key}_runs": ", ".join(f"{v:.2f}" for v in values) for key, values in figures.items()}
                       | {f"{prefix}.first_plan_seconds": round(warm, 2), f"{prefix}.load_average": load,
                          f"{prefix}.commit": commit + ("+" if dirty else "")})

if __name__ == "__main__":
    main()
