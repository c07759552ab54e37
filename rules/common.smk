# Paths and input functions shared by the rules.

INDEX_TABLE = f"{RESULTS}/index/recordings.csv"
CLASSES_TABLE = f"{RESULTS}/index/classes.csv"
REJECTED_TABLE = f"{RESULTS}/index/rejected.csv"
INDEX_SUMMARY = f"{RESULTS}/index/summary.json"
FOLDS_TABLE = f"{RESULTS}/folds/folds.csv"
ANNOTATIONS_TABLE = f"{RESULTS}/index/annotations.csv"
ANNOTATED = any(DATA["annotations"][k] for k in ("table", "negatives", "raven_dir"))
N_SHARDS = config["cache"]["n_shards"]

# Experiments: each one's whole config; its mel cache is the folder of its mel digest, so
# experiments with equal mel parameters share one cache.
EXPERIMENTS = experiment_configs(config)
EXP_NAMES = list(EXPERIMENTS)
# self-training (rules/self_training.smk): student experiment -> its round and teacher
SELF_TRAINING = config["self_training"]
STUDENTS = self_training_students(config)
# With the ensemble as self-training teacher it is chosen among the other experiments (its
# students learn from it, so they cannot be in it); otherwise among all.
ENSEMBLE_CANDIDATES = [n for n in EXP_NAMES if n not in STUDENTS] if SELF_TRAINING["teacher"] == ENSEMBLE else EXP_NAMES
EXP_DIR = f"{RESULTS}/experiments"
MEL_DIGESTS = {name: mel_digest(cfg) for name, cfg in EXPERIMENTS.items()}
TRAINING_PARAMS = {name: training_params(cfg) for name, cfg in EXPERIMENTS.items()}
MEL_CACHES = {MEL_DIGESTS[name]: mel_cache_params(cfg) for name, cfg in EXPERIMENTS.items()}


PROBES = [name for name, cfg in EXPERIMENTS.items() if cfg["model"]["kind"] == "embedding_probe"]
EMBED_DIGESTS = {name: embedding_digest(EXPERIMENTS[name]) for name in PROBES}
EMBED_CACHES = {EMBED_DIGESTS[name]: cache_params(EXPERIMENTS[name]["embedding"]) for name in PROBES}
EMBED_BACKENDS = {EMBED_DIGESTS[name]: EXPERIMENTS[name]["embedding"]["backend"] for name in PROBES}
EMBED_EXPORT_DIR = f"{RESULTS}/embeddings/onnx"  # embedding.backend onnx: BirdNET's export, derived at run time


# Background noise (train.noise_dir) of CNN experiments: one cached file per folder beside
# the experiment's mel cache, rebuilt when a noise recording is added or changes.
NOISE_DIRS = {noise_digest(cfg): cfg["train"]["noise_dir"] for cfg in EXPERIMENTS.values() if noise_digest(cfg)}


def mel_dir(digest):
    return f"{RESULTS}/mels/{digest}"


def mel_shards(digest):
    return [f"{mel_dir(digest)}/shard_{s:03d}.h5" for s in range(N_SHARDS)]


def exp_mel_shards(wildcards):
    return mel_shards(MEL_DIGESTS[wildcards.exp])


def features_dir(exp):
    """Where an experiment's model reads its input: its mel cache, or its embedding cache."""
    if exp in PROBES:
        return f"{RESULTS}/embeddings/{EMBED_DIGESTS[exp]}"
    return mel_dir(MEL_DIGESTS[exp])


def exp_features(wildcards):
    return [f"{features_dir(wildcards.exp)}/shard_{s:03d}.h5" for s in range(N_SHARDS)]


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


MANIFESTS = f"{RESULTS}/index/manifests"


def audio_manifest(name, recordings):
    """results/index/manifests/<name>.tsv listing `recordings` (key, path): what a shard job
    depends on instead of its audio files (soundclf.manifests); written by the main process."""
    return manifests.write_manifest(f"{MANIFESTS}/{name}.tsv", recordings, write=workflow.is_main_process)


def shard_manifest(shard):
    return audio_manifest(f"shard_{int(shard):03d}", [(r.key, r.path) for r in shard_recordings(shard)])


def all_manifests(wildcards):
    """Every training shard's manifest: the index reruns when any recording changes."""
    return [shard_manifest(s) for s in range(N_SHARDS)]


def text_files(folder):
    """The .txt files under a folder (Raven selection tables), sorted."""
    return sorted(str(p) for p in Path(folder).rglob("*.txt"))


def annotation_sources(wildcards):
    """The annotation files data.annotations names (the demo's tables once written)."""
    annotations = DATA["annotations"]
    files = [annotations[k] for k in ("table", "negatives") if annotations[k]]
    if DATA["layout"] == "demo":
        return files + [checkpoints.make_demo.get().output.annotations]
    if annotations["raven_dir"]:
        files += text_files(annotations["raven_dir"])
    return files


def annotations_input(wildcards):
    """The checked annotations training and evaluation read: [] or [its path]."""
    return [ANNOTATIONS_TABLE] if ANNOTATED else []


def noise_recordings(noise):
    """(key, path) of the recordings of one noise folder, listed once."""
    if noise not in _listing:
        _listing[noise] = sources.noise_recordings(NOISE_DIRS[noise], DATA["extensions"])
    return _listing[noise]


def exp_noise_mels(wildcards):
    """The cached noise folder an experiment mixes into its crops: [] or [its path]."""
    noise = noise_digest(EXPERIMENTS[wildcards.exp])
    return [f"{mel_dir(MEL_DIGESTS[wildcards.exp])}/noise_{noise}.h5"] if noise else []


def by_shard(listed, n_shards, key=lambda item: item.key):
    """{shard: the items of `listed` whose key hashes to it}, every shard present."""
    grouped = {s: [] for s in range(n_shards)}
    for item in listed:
        grouped[sources.shard_of(key(item), n_shards)].append(item)
    return grouped


def shard_recordings(shard):
    """The existing recordings of one shard (grouped once for all shards)."""
    if "by_shard" not in _listing:
        _listing["by_shard"] = by_shard(existing_recordings(), N_SHARDS)
    return _listing["by_shard"][int(shard)]


# folds given by a metadata column (folds.column), in fold order; None: computed
GIVEN_FOLD_VALUES = sources.given_fold_values(DATA, config["folds"])
FOLDS = list(range(len(GIVEN_FOLD_VALUES) if GIVEN_FOLD_VALUES else config["folds"]["n_folds"]))

# Per-experiment output paths: {exp} is the experiment's name.
MODEL_DIR = f"{EXP_DIR}/{{exp}}/models"
OOF_DIR = f"{EXP_DIR}/{{exp}}/oof"
PREDICTIONS_DIR = f"{EXP_DIR}/{{exp}}/predictions"
REPORT_DIR = f"{EXP_DIR}/{{exp}}/report"
OOF_NAMES = ("oof_windows.csv", "cv_metrics.json", "per_class.csv", "thresholds.csv")
OOF_FIGURES = ("per_class", "confusion", "pr_curves", "examples")


def for_experiments(pattern, **kw):
    """`pattern` (with {exp} and maybe {fold}) for every experiment (and fold)."""
    return expand(pattern, exp=EXP_NAMES, **kw)


PREDICT = {name: effective_predict(cfg) for name, cfg in EXPERIMENTS.items()}
PREDICTING = [name for name in EXP_NAMES if PREDICT[name]["audio_dir"]]


def prediction_files(exp):
    return [f"{EXP_DIR}/{exp}/predictions/{f}" for f in ("submission.csv", "windows.parquet", "metrics.json",
                                                          "detections.csv", "detections.parquet")]


# every fold's own outputs, named in `rule all` so that deleting one fold's files rebuilds it
# (Snakemake does not regenerate a missing intermediate file whose consumers are up to date)
FOLD_OUTPUTS = for_experiments(f"{MODEL_DIR}/fold{{fold}}/model.pt", fold=FOLDS) + for_experiments(
    f"{OOF_DIR}/fold{{fold}}/{{name}}", fold=FOLDS, name=("windows.csv", "metrics.json"))
OOF_OUTPUTS = for_experiments(f"{OOF_DIR}/{{name}}", name=OOF_NAMES)
PREDICTION_OUTPUTS = [f for exp in PREDICTING for f in prediction_files(exp)]
REPORT_OUTPUTS = (
    for_experiments(f"{REPORT_DIR}/{{name}}", name=["training_curves.png", "cv_metrics.csv"]
                    + [f"{n}.png" for n in OOF_FIGURES])
    + [f"{EXP_DIR}/{exp}/report/{name}.png" for exp in PREDICTING for name in ("prediction_timeline", "detection_activity")]
    + [f"{RESULTS}/report/input_data.png"]
)
COMPARISON = f"{EXP_DIR}/comparison.csv"
COMPARISON_OUTPUTS = [COMPARISON, f"{EXP_DIR}/comparison.png"]
ENSEMBLE_DIR = f"{EXP_DIR}/ensemble"
NESTED_CV = f"{ENSEMBLE_DIR}/nested/cv_metrics.json"
ENSEMBLE_OUTPUTS = (
    [f"{ENSEMBLE_DIR}/ensemble.json", NESTED_CV] + [f"{ENSEMBLE_DIR}/nested/fold{k}.json" for k in FOLDS]
    + ([f"{ENSEMBLE_DIR}/predictions/{f}" for f in ("submission.csv", "metrics.json")]
       if set(ENSEMBLE_CANDIDATES) <= set(PREDICTING) else [])
    if len(ENSEMBLE_CANDIDATES) > 1 else []
)


def made_by_demo(folder):
    """Whether `folder` is one of the demo's soundscape folders: it exists, and is listed,
    only once the demo's checkpoint has run."""
    return DATA["layout"] == "demo" and Path(folder) in (demo_dir(config) / "soundscapes",
                                                          demo_dir(config) / "unlabeled_soundscapes",
                                                          demo_dir(config) / "archive")


def prediction_listing(exp):
    """The key under which the recordings of an experiment's predict.audio_dir are listed once."""
    return ("predict", PREDICT[exp]["audio_dir"], tuple(PREDICT[exp]["extensions"]))


def predicted_files(exp):
    """Every recording an experiment classifies, listed once for all its jobs."""
    predict = PREDICT[exp]
    if made_by_demo(predict["audio_dir"]):
        checkpoints.make_demo.get()
    if prediction_listing(exp) not in _listing:
        _listing[prediction_listing(exp)] = sources.list_audio_files(predict["audio_dir"], predict["extensions"])
    return _listing[prediction_listing(exp)]


# predict keys a prediction shard does not read (detections, window truth): changing one
# predicts nothing again
PREDICTION_ONLY_ELSEWHERE = ("threshold", "target_precision", "min_score", "labels_csv", "annotations_dir",
                             "neighbour_weight", "parquet_dtype", "review_set", "target_probability", "site_level")


def prediction_shards(exp, files):
    """{shard: (key, path) of its recordings} of an experiment's prediction (key: the path under
    predict.audio_dir, whose hash is the shard), computed once per listing of the folder: every
    shard's input function reads it (100 shards of 100 000 files: bench/archive_scale.py)."""
    cached = _listing.get(("predict_shards", exp))
    if cached is None or cached[0] is not files:
        audio_dir = PREDICT[exp]["audio_dir"]
        recordings = [(sources.relative_key(f, audio_dir), f) for f in files]
        cached = (files, by_shard(recordings, PREDICT[exp]["n_shards"], key=lambda r: r[0]))
        _listing[("predict_shards", exp)] = cached
    return cached[1]


def prediction_manifest_path(exp, shard):
    return f"{MANIFESTS}/predict/{exp}/shard_{shard}.tsv"


def prediction_manifest(wildcards):
    """A prediction shard's manifest: the list its job reads (soundclf.manifests.read_manifest).
    A job process (on a cluster: Snakemake re-parsing this file) takes it as the plan wrote it,
    without walking the archive again."""
    path = prediction_manifest_path(wildcards.exp, wildcards.pshard)
    if not workflow.is_main_process:
        return path
    shard = prediction_shards(wildcards.exp, predicted_files(wildcards.exp))[int(wildcards.pshard)]
    return manifests.write_manifest(path, shard)


def write_manifests_before_planning():
    """Every shard manifest whose recordings are on disk now, written before Snakemake plans:
    its cache of which files exist, filled while it plans, would miss a manifest first written
    by an input function then. (Input functions still write them after the demo's checkpoint,
    when Snakemake plans again without that cache.) Listings of data that is not the demo's
    are kept for the input functions, so that no folder is walked twice."""
    demo = DATA["layout"] == "demo"
    if not demo or Path(DATA["metadata_csv"]).is_file():
        listed = [r for r in sources.list_recordings(DATA) if Path(r.path).is_file()]
        if not demo:
            _listing["existing"] = listed
        for s, shard in by_shard(listed, N_SHARDS).items():
            audio_manifest(f"shard_{s:03d}", [(r.key, r.path) for r in shard])
    for exp in PREDICTING:
        audio_dir = PREDICT[exp]["audio_dir"]
        if Path(audio_dir).is_dir():
            files = _listing.get(prediction_listing(exp)) or sources.list_audio_files(audio_dir, PREDICT[exp]["extensions"])
            if not made_by_demo(audio_dir):
                _listing[prediction_listing(exp)] = files
            for s, shard in prediction_shards(exp, files).items():
                manifests.write_manifest(prediction_manifest_path(exp, s), shard)
    if STUDENTS and Path(SELF_TRAINING["audio_dir"]).is_dir():
        grouped = by_shard(list_unlabeled(), N_SHARDS, key=lambda item: item[0])
        if not made_by_demo(SELF_TRAINING["audio_dir"]):
            _listing["unlabeled"] = grouped
        for s, shard in grouped.items():
            audio_manifest(f"unlabeled/shard_{s:03d}", shard)
    archive_dir = SEARCH["audio_dir"]
    if archive_dir and (Path(archive_dir).is_dir() or not made_by_demo(archive_dir)):
        # the demo's archive may be written again by its checkpoint: listed for the manifests alone
        files = archive.list_archive(archive_dir, SEARCH["extensions"]) if made_by_demo(archive_dir) else archive_files()
        for s, shard in by_shard(files, SEARCH["n_shards"], key=lambda item: item[0]).items():
            audio_manifest(f"archive/shard_{s:03d}", shard)


def truth_of(exp):
    """Where the windows' truth of an experiment's prediction is: a labels table, a folder of
    Raven tables (predict.annotations_dir), or None."""
    return PREDICT[exp]["labels_csv"] or PREDICT[exp]["annotations_dir"]


def labels_of(exp):
    """The files truth_of(exp) reads (inputs: editing one reruns the metrics), or []; the
    demo's exist once its checkpoint has run."""
    truth = truth_of(exp)
    if not truth:
        return []
    if DATA["layout"] == "demo" and Path(truth) == demo_dir(config) / "soundscape_labels.csv":
        return checkpoints.make_demo.get().output.soundscape_labels
    if DATA["layout"] == "demo" and Path(truth) == demo_dir(config) / "soundscape_annotations":
        return checkpoints.make_demo.get().output.soundscape_annotations
    if Path(truth).is_dir():
        return text_files(truth)
    return truth


def prediction_labels(wildcards):
    return labels_of(wildcards.exp)


# Review sets (rules/review.smk): results/review/<name>/; a set's calibration is a target of
# `rule all` once its marks exist (a person writes them, in the review page).
REVIEW_SETS = review_sets(config, EXP_NAMES, PREDICTING)
check_review_marks(EXPERIMENTS, REVIEW_SETS)
REVIEW_ROOT = f"{RESULTS}/review"
REVIEW_DIR = f"{REVIEW_ROOT}/{{review}}"
REVIEW_OUTPUTS = [f"{REVIEW_ROOT}/{name}/items.csv" for name in REVIEW_SETS] + [
    f"{REVIEW_ROOT}/{name}/{f}" for name in REVIEW_SETS if Path(f"{REVIEW_ROOT}/{name}/marks.csv").is_file()
    for f in ("calibration.csv", "export/marks.csv")]


def calibration_set(exp):
    """The review set whose calibration gives an experiment's detection thresholds
    (predict.threshold: calibrated): predict.review_set, or the one set over the experiment."""
    named = PREDICT[exp]["review_set"]
    over = [name for name, s in REVIEW_SETS.items() if s["experiment"] == exp]
    if named and named not in REVIEW_SETS:
        raise ConfigError(f"experiments.{exp}: predict.review_set '{named}' is not a review set "
                          f"({', '.join(REVIEW_SETS) or 'review.sets is empty'})")
    if not named and len(over) != 1:
        raise ConfigError(f"experiments.{exp}: predict.threshold calibrated needs predict.review_set: the review set "
                          f"whose marks calibrate it ({len(over)} review sets are over this experiment: "
                          f"{', '.join(over) or 'none; add one under review.sets'})")
    return named or over[0]


def detection_thresholds(wildcards):
    """detect_events' thresholds: the OOF ones, and the calibration with threshold calibrated."""
    files = {"thresholds": f"{EXP_DIR}/{wildcards.exp}/oof/thresholds.csv"}
    if PREDICT[wildcards.exp]["threshold"] == "calibrated":
        files["calibration"] = f"{REVIEW_ROOT}/{calibration_set(wildcards.exp)}/calibration.csv"
    return files


def exp_review_labels(wildcards):
    """The strong labels of the review sets an experiment trains on (train.review_marks)."""
    return [f"{REVIEW_ROOT}/{name}/labels.csv" for name in EXPERIMENTS[wildcards.exp]["train"]["review_marks"]]


def exp_teacher_windows(wildcards):
    """A distilled student's fold: [its teacher's windows for that fold] or []."""
    teacher = EXPERIMENTS[wildcards.exp]["train"]["teacher"]
    return [f"{EXP_DIR}/{teacher}/teacher_windows/fold{wildcards.fold}.csv"] if teacher else []


def distilled_on_unlabeled(exp):
    """Whether a distilled student also learns its teacher's scores of the unlabeled recordings
    (train.teacher with self_training.audio_dir)."""
    return bool(EXPERIMENTS[exp]["train"]["teacher"] and SELF_TRAINING["audio_dir"])


def exp_teacher_unlabeled(wildcards):
    """A distilled student's fold: [its teacher's fold-k scores of the unlabeled recordings] or []."""
    teacher = EXPERIMENTS[wildcards.exp]["train"]["teacher"]
    return [f"{EXP_DIR}/{teacher}/unlabeled/fold{wildcards.fold}.csv"] if distilled_on_unlabeled(wildcards.exp) else []


def reviewed_marks(folder, what_first, doc):
    """`folder`/marks.csv, the file a person writes in the review page; none yet stops the plan
    with what to do first (`what_first`) and the page's command."""
    marks = Path(folder) / "marks.csv"
    if not marks.is_file():
        raise ValueError(f"{marks}: no marks yet. {what_first}: soundclf review {marks.parent} ({doc}), "
                         "then run this target again")
    return str(marks)
