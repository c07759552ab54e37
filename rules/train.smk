# Per-fold training: fold k's model is trained on every other fold and validated on fold k.
# Every training key enters as a param, so changing one retrains (and re-evaluates) without
# touching the index, the folds or the mel cache.


rule train_fold:
    input:
        folds=FOLDS_TABLE,
        classes=CLASSES_TABLE,
        mels=MEL_SHARDS,
    output:
        model=f"{MODEL_DIR}/fold{{fold}}/model.pt",
        history=f"{MODEL_DIR}/fold{{fold}}/history.csv",
    params:
        model=config["model"],
        train=config["train"],
        sample_rate=config["audio"]["sample_rate"],
        mel=config["mel"],
        mel_dir=MEL_DIR,
        n_shards=N_SHARDS,
        # the resumable checkpoint: not an output, so a killed job's checkpoint survives
        work_dir=lambda wc: f"{MODEL_DIR}/fold{wc.fold}/work",
    wildcard_constraints:
        fold=r"\d+",
    # one thread per job: on a CPU, parallel folds use the cores better than threads
    # inside one job; on a GPU the DataLoader workers are separate processes
    threads: 1
    resources:
        gpu=GPU_REQUEST,
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/train_fold/fold{{fold}}.log",
    benchmark:
        f"{BENCHMARKS}/train_fold/fold{{fold}}.tsv"
    script:
        "../workflow_scripts/train_fold.py"
