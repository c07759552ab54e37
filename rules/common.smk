# Paths and input functions shared by the rules.

INDEX_TABLE = f"{RESULTS}/index/recordings.csv"
CLASSES_TABLE = f"{RESULTS}/index/classes.csv"
REJECTED_TABLE = f"{RESULTS}/index/rejected.csv"
INDEX_SUMMARY = f"{RESULTS}/index/summary.json"
FOLDS_TABLE = f"{RESULTS}/folds/folds.csv"
MEL_DIR = f"{RESULTS}/mels"
N_SHARDS = config["cache"]["n_shards"]
MEL_SHARDS = [f"{MEL_DIR}/shard_{s:03d}.h5" for s in range(N_SHARDS)]
# What the cached values depend on: top_db is applied per segment when the cache is read.
MEL_CACHE_PARAMS = {k: v for k, v in config["mel"].items() if k != "top_db"}

LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"

_listing = {}


def recordings():
    """Every recording the data config names; waits for the demo checkpoint when the data is
    the generated demo (its audio does not exist when the Snakefile is parsed)."""
    if DATA["layout"] == "demo":
        checkpoints.make_demo.get()
    if "all" not in _listing:
        _listing["all"] = sources.list_recordings(DATA)
    return _listing["all"]


def metadata_input(wildcards):
    if DATA["layout"] == "folders":
        return []
    if DATA["layout"] == "demo":
        return checkpoints.make_demo.get().output.metadata
    return DATA["metadata_csv"]


def existing_recordings():
    # Missing files are the index's to report (as rejected rows), not a DAG error.
    if "existing" not in _listing:
        _listing["existing"] = [r for r in recordings() if Path(r.path).is_file()]
    return _listing["existing"]


def all_audio(wildcards):
    return [r.path for r in existing_recordings()]


def shard_recordings(shard):
    """The existing recordings of one shard (grouped once for all shards)."""
    if "by_shard" not in _listing:
        by_shard = {s: [] for s in range(N_SHARDS)}
        for r in existing_recordings():
            by_shard[sources.shard_of(r.key, N_SHARDS)].append(r)
        _listing["by_shard"] = by_shard
    return _listing["by_shard"][int(shard)]


# GPU jobs ask for one GPU where this machine has one, so that the local profile's `gpu`
# budget keeps two folds off one GPU; on a CPU-only machine they ask for none and folds run
# side by side. SLURM profiles set the request themselves (set-resources).
GPU_REQUEST = 1 if any(Path("/dev").glob("nvidia[0-9]*")) else 0

MODEL_DIR = f"{RESULTS}/models"
OOF_DIR = f"{RESULTS}/oof"
PREDICTIONS_DIR = f"{RESULTS}/predictions"
# folds given by a metadata column (folds.column), in fold order; None: computed
GIVEN_FOLD_VALUES = sources.given_fold_values(DATA, config["folds"])
FOLDS = list(range(len(GIVEN_FOLD_VALUES) if GIVEN_FOLD_VALUES else config["folds"]["n_folds"]))
FOLD_MODELS = [f"{MODEL_DIR}/fold{k}/model.pt" for k in FOLDS]
# every fold's own outputs, named in `rule all` so that deleting one fold's files rebuilds it
# (Snakemake does not regenerate a missing intermediate file whose consumers are up to date)
FOLD_OUTPUTS = FOLD_MODELS + [
    f"{OOF_DIR}/fold{k}/{name}" for k in FOLDS for name in ("windows.csv", "metrics.json")
]
OOF_OUTPUTS = [f"{OOF_DIR}/{name}" for name in ("oof_windows.csv", "cv_metrics.json", "per_class.csv")]
PREDICT = effective_predict(config)
PREDICTION_OUTPUTS = (
    [f"{PREDICTIONS_DIR}/submission.csv"]
    + ([f"{PREDICTIONS_DIR}/metrics.json"] if PREDICT["labels_csv"] else [])
    if PREDICT["audio_dir"]
    else []
)


def prediction_audio(wildcards):
    """The recordings to classify; the demo soundscapes exist only after the checkpoint."""
    if DATA["layout"] == "demo" and PREDICT["audio_dir"] == str(demo_dir(config) / "soundscapes"):
        return checkpoints.make_demo.get().output.soundscapes
    return sources.list_audio_files(PREDICT["audio_dir"], PREDICT["extensions"])


def prediction_labels(wildcards):
    if DATA["layout"] == "demo" and PREDICT["labels_csv"] == str(demo_dir(config) / "soundscape_labels.csv"):
        return checkpoints.make_demo.get().output.soundscape_labels
    return PREDICT["labels_csv"] or []

REPORT_DIR = f"{RESULTS}/report"
OOF_FIGURES = {name: f"{REPORT_DIR}/{name}.png" for name in ("per_class", "confusion", "pr_curves", "examples")}
REPORT_OUTPUTS = (
    [f"{REPORT_DIR}/training_curves.png", f"{REPORT_DIR}/cv_metrics.csv", *OOF_FIGURES.values()]
    + ([f"{REPORT_DIR}/prediction_timeline.png"] if PREDICTION_OUTPUTS else [])
    + [f"{REPORT_DIR}/input_data.png"]
)
