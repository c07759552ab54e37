# Paths and input functions shared by the rules.

INDEX_TABLE = f"{RESULTS}/index/recordings.csv"
CLASSES_TABLE = f"{RESULTS}/index/classes.csv"
REJECTED_TABLE = f"{RESULTS}/index/rejected.csv"
FOLDS_TABLE = f"{RESULTS}/folds/folds.csv"
MEL_DIR = f"{RESULTS}/mels"
N_SHARDS = config["cache"]["n_shards"]
MEL_SHARDS = [f"{MEL_DIR}/shard_{s:03d}.h5" for s in range(N_SHARDS)]

LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"

_recordings_cache = []


def recordings():
    """Every recording the data config names; waits for the demo checkpoint when the data is
    the generated demo (its audio does not exist when the Snakefile is parsed)."""
    if DATA["layout"] == "demo":
        checkpoints.make_demo.get()
    if not _recordings_cache:
        _recordings_cache.extend(sources.list_recordings(DATA))
    return _recordings_cache


def metadata_input(wildcards):
    if DATA["layout"] == "folders":
        return []
    if DATA["layout"] == "demo":
        return checkpoints.make_demo.get().output.metadata
    return DATA["metadata_csv"]


def existing_audio(recs):
    # Missing files are the index's to report (as rejected rows), not a DAG error.
    return [r.path for r in recs if Path(r.path).is_file()]


def all_audio(wildcards):
    return existing_audio(recordings())


def shard_recordings(shard):
    return [r for r in recordings() if sources.shard_of(r.key, N_SHARDS) == int(shard)]
