# Search by example (docs/search.md): the unlabeled archive (search.audio_dir) embedded with the
# embedding section's model at the archive's own hop, one HDF5 shard per job as the training
# caches are (a new recording re-embeds its shard alone), one vector index per shard (rebuilt
# only when its shard changes), and per label of search.queries the archive's windows most like
# its example calls: results/search/<label>/round0/candidates.csv, with the review set the review
# page serves from that folder (items.csv, review.json, clips/). Rounds r >= 1 train a probe on
# the marks so far and draw the next review set; a reviewed round's probe detects the call over
# the whole archive (round<r>/detections.csv).

SEARCH = config["search"]
SEARCH_DIR = f"{RESULTS}/search"
ARCHIVE_EMBEDDING = cache_params(config["embedding"]) | {"hop_seconds": SEARCH["hop_seconds"]}
ARCHIVE_DIGEST = embedding_digest({"embedding": ARCHIVE_EMBEDDING, "cache": {"n_shards": SEARCH["n_shards"]}})
ARCHIVE_EMBEDDINGS = f"{SEARCH_DIR}/embeddings/{ARCHIVE_DIGEST}"
ARCHIVE_INDEX = f"{SEARCH_DIR}/index/{ARCHIVE_DIGEST}"
ARCHIVE_SHARDS = [f"{s:03d}" for s in range(SEARCH["n_shards"])]


def archive_files():
    """Every recording of the archive, listed once (the demo's once its checkpoint has written
    it); an empty archive stops the plan."""
    if made_by_demo(SEARCH["audio_dir"]):
        checkpoints.make_demo.get()
    if "archive" not in _listing:
        _listing["archive"] = archive.list_archive(SEARCH["audio_dir"], SEARCH["extensions"])
    return _listing["archive"]


def archive_shard(shard):
    """(key, path) of one archive shard's recordings (key: the path under search.audio_dir)."""
    if "archive_shards" not in _listing:
        _listing["archive_shards"] = by_shard(archive_files(), SEARCH["n_shards"], key=lambda item: item[0])
    return _listing["archive_shards"][int(shard)]


def search_queries():
    """search.queries checked against the archive (files, formats, spans) before any job runs."""
    if "queries" not in _listing:
        _listing["queries"] = read_queries(SEARCH["queries"], SEARCH["audio_dir"], [p for _, p in archive_files()])
    return _listing["queries"]


def query_labels():
    """The labels of search.queries; the queries are checked against the archive here, before
    any job, unless the archive is the demo's (checked once its checkpoint has written it)."""
    if not (SEARCH["audio_dir"] and SEARCH["queries"]):
        return []
    table = read_query_table(SEARCH["queries"]) if made_by_demo(SEARCH["audio_dir"]) else search_queries()
    return sorted(set(table["label"]))


def checked_queries(wildcards):
    """search.queries as an input, checked against the archive first."""
    search_queries()
    return SEARCH["queries"]


SEARCH_LABELS = query_labels()
SEARCH_OUTPUTS = [f"{SEARCH_DIR}/{label}/round0/{name}" for label in SEARCH_LABELS
                  for name in ("candidates.csv", "items.csv")]


use rule embed_shard as archive_embed_shard with:
    input:
        manifest=lambda wc: audio_manifest(f"archive/shard_{wc.shard}", archive_shard(wc.shard)),
    output:
        f"{ARCHIVE_EMBEDDINGS}/shard_{{shard}}.h5",
    params:
        recordings=lambda wc: archive_shard(wc.shard),
        embedding=ARCHIVE_EMBEDDING,
        on_bad_audio=DATA["on_bad_audio"],
        backend=lambda wc, threads: config["embedding"]["backend"],  # derived: no rerun (rules/embeddings.smk)
        export_dir=lambda wc, threads: EMBED_EXPORT_DIR,
    log:
        f"{LOGS}/archive_embed_shard/{ARCHIVE_DIGEST}/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/archive_embed_shard/{ARCHIVE_DIGEST}/{{shard}}.tsv"


rule archive_index_shard:
    input:
        f"{ARCHIVE_EMBEDDINGS}/shard_{{shard}}.h5",
    output:
        f"{ARCHIVE_INDEX}/shard_{{shard}}.npz",
    wildcard_constraints:
        shard=r"\d{3}",
    threads: config["threads"]["mel"]
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/archive_index_shard/{ARCHIVE_DIGEST}/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/archive_index_shard/{ARCHIVE_DIGEST}/{{shard}}.tsv"
    script:
        "../workflow_scripts/archive_index_shard.py"


rule search_by_example:
    input:
        queries=checked_queries,
        embeddings=expand(f"{ARCHIVE_EMBEDDINGS}/shard_{{shard}}.h5", shard=ARCHIVE_SHARDS),
        index=expand(f"{ARCHIVE_INDEX}/shard_{{shard}}.npz", shard=ARCHIVE_SHARDS),
    output:
        candidates=f"{SEARCH_DIR}/{{label}}/round0/candidates.csv",
        review_items=f"{SEARCH_DIR}/{{label}}/round0/items.csv",
        meta=f"{SEARCH_DIR}/{{label}}/round0/review.json",
        clips=directory(f"{SEARCH_DIR}/{{label}}/round0/clips"),
    params:
        queries=lambda wc: search_queries().query("label == @wc.label").to_dict("records"),
        paths=lambda wc: dict(archive_files()),
        embedding=ARCHIVE_EMBEDDING,
        embeddings_dir=ARCHIVE_EMBEDDINGS,
        settings=SEARCH,
        audio=config["audio"],
        mel=config["mel"],
    wildcard_constraints:
        label="|".join(map(re.escape, SEARCH_LABELS)) or "$^",
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/search_by_example/{{label}}.log",
    benchmark:
        f"{BENCHMARKS}/search_by_example/{{label}}.tsv"
    script:
        "../workflow_scripts/search_by_example.py"


def marks_files(label, rounds):
    """The marks.csv files of the label's `rounds` that exist."""
    folder = Path(SEARCH_DIR) / label
    return [str(folder / f"round{r}" / "marks.csv") for r in rounds if (folder / f"round{r}" / "marks.csv").is_file()]


def earlier_marks(wildcards):
    """The marks.csv of every earlier round of the label; round r-1's must exist (the person
    reviewed it), or the plan stops with what to do."""
    folder = Path(SEARCH_DIR) / wildcards.label
    reviewed_marks(folder / f"round{int(wildcards.sround) - 1}", "Review that round first", "docs/search.md")
    return marks_files(wildcards.label, range(int(wildcards.sround)))


rule search_round:
    input:
        queries=checked_queries,
        marks=earlier_marks,
        embeddings=expand(f"{ARCHIVE_EMBEDDINGS}/shard_{{shard}}.h5", shard=ARCHIVE_SHARDS),
    output:
        probe=f"{SEARCH_DIR}/{{label}}/round{{sround}}/probe.json",
        scores=f"{SEARCH_DIR}/{{label}}/round{{sround}}/scores.parquet",
        candidates=f"{SEARCH_DIR}/{{label}}/round{{sround}}/candidates.csv",
        review_items=f"{SEARCH_DIR}/{{label}}/round{{sround}}/items.csv",
        meta=f"{SEARCH_DIR}/{{label}}/round{{sround}}/review.json",
        clips=directory(f"{SEARCH_DIR}/{{label}}/round{{sround}}/clips"),
    params:
        queries=lambda wc: search_queries().query("label == @wc.label").to_dict("records"),
        paths=lambda wc: dict(archive_files()),
        embedding=ARCHIVE_EMBEDDING,
        embeddings_dir=ARCHIVE_EMBEDDINGS,
        draw=SEARCH["round"],
        context_seconds=SEARCH["context_seconds"],
        audio=config["audio"],
        mel=config["mel"],
    wildcard_constraints:
        label="|".join(map(re.escape, SEARCH_LABELS)) or "$^",
        sround=r"[1-9]\d*",
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/search_round/{{label}}/round{{sround}}.log",
    benchmark:
        f"{BENCHMARKS}/search_round/{{label}}/round{{sround}}.tsv"
    script:
        "../workflow_scripts/search_round.py"


def round_marks(wildcards):
    """Round r's own marks.csv: its review set, drawn after its probe was fitted, calibrates it."""
    return reviewed_marks(Path(SEARCH_DIR) / wildcards.label / f"round{wildcards.sround}",
                          "Detections are calibrated on the round's own review set", "docs/search.md")


rule search_detections:
    input:
        scores=f"{SEARCH_DIR}/{{label}}/round{{sround}}/scores.parquet",
        review_items=f"{SEARCH_DIR}/{{label}}/round{{sround}}/items.csv",
        marks=round_marks,
        # every window marked so far: yes is a detection, no never is
        all_marks=lambda wc: marks_files(wc.label, range(int(wc.sround) + 1)),
    output:
        detections=f"{SEARCH_DIR}/{{label}}/round{{sround}}/detections.csv",
        calibration=f"{SEARCH_DIR}/{{label}}/round{{sround}}/calibration.csv",
        curves=f"{SEARCH_DIR}/{{label}}/round{{sround}}/calibration.png",
        raven=directory(f"{SEARCH_DIR}/{{label}}/round{{sround}}/raven"),
        audacity=directory(f"{SEARCH_DIR}/{{label}}/round{{sround}}/audacity"),
    params:
        window_seconds=ARCHIVE_EMBEDDING["window_seconds"],
        target_probability=SEARCH["target_probability"],
        targets=config["review"]["target_probability"],
        min_marks=config["review"]["min_marks"],
        bootstrap=config["review"]["bootstrap"],
    wildcard_constraints:
        label="|".join(map(re.escape, SEARCH_LABELS)) or "$^",
        sround=r"[1-9]\d*",
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/search_detections/{{label}}/round{{sround}}.log",
    benchmark:
        f"{BENCHMARKS}/search_detections/{{label}}/round{{sround}}.tsv"
    script:
        "../workflow_scripts/search_detections.py"
