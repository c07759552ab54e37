# Self-training (self_training.audio_dir): the unlabeled recordings get their own mel cache
# (results/mels/<digest>/unlabeled/, sharded like the training cache); each fold model of a
# round's teacher scores their windows; the scores become pseudo-labels
# (results/pseudo/round<r>/fold<k>.csv); round r's student (an experiment, <teacher>-st<r>)
# trains fold k on the labelled crops and fold k's pseudo-labels. Fold k's pseudo-labels come
# from fold k's teacher alone, which never saw fold k: the student's OOF scores stay honest.

TEACHER_OF_ROUND = {r["round"]: r["teacher"] for r in STUDENTS.values()}


def unlabeled_dir(digest):
    return f"{mel_dir(digest)}/unlabeled"


def list_unlabeled():
    """(key, path) of every unlabeled recording (key: the path under audio_dir)."""
    audio_dir = SELF_TRAINING["audio_dir"]
    files = sources.list_audio_files(audio_dir, DATA["extensions"])
    if not files:
        raise sources.DataSourceError(f"self_training.audio_dir: folder '{audio_dir}' holds no audio file "
                                      f"({', '.join(DATA['extensions'])}); add the unlabeled recordings or set it to null")
    return [(sources.relative_key(path, audio_dir), path) for path in files]


def unlabeled_shard(shard):
    """(key, path) of one shard's unlabeled recordings (listed and grouped once); the demo's
    exist after its checkpoint."""
    if made_by_demo(SELF_TRAINING["audio_dir"]):
        checkpoints.make_demo.get()
    if "unlabeled" not in _listing:
        _listing["unlabeled"] = by_shard(list_unlabeled(), N_SHARDS, key=lambda item: item[0])
    return _listing["unlabeled"][int(shard)]


def unlabeled_mels(exp):
    return [f"{unlabeled_dir(MEL_DIGESTS[exp])}/shard_{s:03d}.h5" for s in range(N_SHARDS)]


def student_pseudo_labels(wildcards):
    """A student's fold's pseudo-labels: [] or [its path] (only students have them)."""
    student = STUDENTS.get(wildcards.exp)
    return [f"{RESULTS}/pseudo/round{student['round']}/fold{wildcards.fold}.csv"] if student else []


def uses_unlabeled(exp):
    """Whether an experiment trains on windows of the unlabeled recordings: a self-training
    student, or a student distilled with self_training.audio_dir given."""
    return exp in STUDENTS or distilled_on_unlabeled(exp)


def student_unlabeled_mels(wildcards):
    return unlabeled_mels(wildcards.exp) if uses_unlabeled(wildcards.exp) else []


def unlabeled_embedding_dir(exp):
    return f"{RESULTS}/embeddings/{EMBED_DIGESTS[exp]}/unlabeled"


def unlabeled_embeddings(exp):
    return [f"{unlabeled_embedding_dir(exp)}/shard_{s:03d}.h5" for s in range(N_SHARDS)]


use rule mel_shard as unlabeled_mel_shard with:
    input:
        manifest=lambda wc: audio_manifest(f"unlabeled/shard_{wc.shard}", unlabeled_shard(wc.shard)),
    output:
        f"{RESULTS}/mels/{{digest}}/unlabeled/shard_{{shard}}.h5",
    params:
        recordings=lambda wc: unlabeled_shard(wc.shard),
        sample_rate=lambda wc: MEL_CACHES[wc.digest]["sample_rate"],
        mel=lambda wc: MEL_CACHES[wc.digest]["mel"],
        cache=lambda wc: MEL_CACHES[wc.digest]["cache"],
        on_bad_audio=DATA["on_bad_audio"],
    log:
        f"{LOGS}/unlabeled_mel_shard/{{digest}}/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/unlabeled_mel_shard/{{digest}}/{{shard}}.tsv"


use rule embed_shard as unlabeled_embed_shard with:
    input:
        manifest=lambda wc: audio_manifest(f"unlabeled/shard_{wc.shard}", unlabeled_shard(wc.shard)),
    output:
        f"{RESULTS}/embeddings/{{edigest}}/unlabeled/shard_{{shard}}.h5",
    params:
        recordings=lambda wc: unlabeled_shard(wc.shard),
        embedding=lambda wc: EMBED_CACHES[wc.edigest],
        on_bad_audio=DATA["on_bad_audio"],
        backend=lambda wc, threads: EMBED_BACKENDS[wc.edigest],  # derived: no rerun (rules/embeddings.smk)
        export_dir=lambda wc, threads: EMBED_EXPORT_DIR,
    log:
        f"{LOGS}/unlabeled_embed_shard/{{edigest}}/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/unlabeled_embed_shard/{{edigest}}/{{shard}}.tsv"


# A CNN teacher scores the unlabeled recordings' log-mels, an embedding-probe teacher (of a
# distilled student) their embeddings.
rule teacher_scores:
    wildcard_constraints:
        exp="|".join(re.escape(name) for name in EXPERIMENTS if name not in PROBES) or "none",
    input:
        model=f"{MODEL_DIR}/fold{{fold}}/model.pt",
        unlabeled=lambda wc: unlabeled_mels(wc.exp),
    output:
        f"{EXP_DIR}/{{exp}}/unlabeled/fold{{fold}}.csv",
    params:
        unlabeled_dir=lambda wc: unlabeled_dir(MEL_DIGESTS[wc.exp]),
        n_shards=N_SHARDS,
        batch_size=lambda wc: EXPERIMENTS[wc.exp]["evaluate"]["batch_size"],
    threads: config["threads"]["evaluate"]
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/teacher_scores/{{exp}}/fold{{fold}}.log",
    benchmark:
        f"{BENCHMARKS}/teacher_scores/{{exp}}/fold{{fold}}.tsv"
    script:
        "../workflow_scripts/teacher_scores.py"


use rule teacher_scores as probe_teacher_scores with:
    wildcard_constraints:
        exp="|".join(re.escape(name) for name in PROBES) or "none",
    input:
        model=f"{MODEL_DIR}/fold{{fold}}/model.pt",
        unlabeled=lambda wc: unlabeled_embeddings(wc.exp),
    params:
        unlabeled_dir=lambda wc: unlabeled_embedding_dir(wc.exp),
        n_shards=N_SHARDS,
        batch_size=lambda wc: EXPERIMENTS[wc.exp]["evaluate"]["batch_size"],
    log:
        f"{LOGS}/probe_teacher_scores/{{exp}}/fold{{fold}}.log",
    benchmark:
        f"{BENCHMARKS}/probe_teacher_scores/{{exp}}/fold{{fold}}.tsv"


# Seconds of work: on a cluster it runs where Snakemake runs.
localrules:
    pseudo_labels,


def round_teachers(round_):
    """The experiments whose fold-k scores make round r's fold-k pseudo-labels: the round's
    teacher, or (teacher `ensemble`) every candidate member, weighted by ensemble.json."""
    teacher = TEACHER_OF_ROUND[int(round_)]
    return ENSEMBLE_CANDIDATES if teacher == ENSEMBLE else [teacher]


rule pseudo_labels:
    input:
        scores=lambda wc: [f"{EXP_DIR}/{exp}/unlabeled/fold{wc.fold}.csv" for exp in round_teachers(wc.round)],
        ensemble=lambda wc: [f"{ENSEMBLE_DIR}/ensemble.json"] if TEACHER_OF_ROUND[int(wc.round)] == ENSEMBLE else [],
        classes=CLASSES_TABLE,
    output:
        f"{RESULTS}/pseudo/round{{round}}/fold{{fold}}.csv",
    params:
        transform=SELF_TRAINING["transform"],
        members=lambda wc: round_teachers(wc.round),
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/pseudo_labels/round{{round}}/fold{{fold}}.log",
    benchmark:
        f"{BENCHMARKS}/pseudo_labels/round{{round}}/fold{{fold}}.tsv"
    script:
        "../workflow_scripts/pseudo_labels.py"
