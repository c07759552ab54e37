# Held-out evaluation on 5 s windows per fold, then the out-of-fold aggregation.


rule evaluate_fold:
    input:
        model=f"{MODEL_DIR}/fold{{fold}}/model.pt",
        folds=FOLDS_TABLE,
        mels=MEL_SHARDS,
    output:
        windows=f"{OOF_DIR}/fold{{fold}}/windows.csv",
        metrics=f"{OOF_DIR}/fold{{fold}}/metrics.json",
    params:
        evaluate=config["evaluate"],
        mel_dir=MEL_DIR,
        n_shards=N_SHARDS,
    wildcard_constraints:
        fold=r"\d+",
    # one thread per job: on a CPU, parallel folds use the cores better than threads
    # inside one job; on a GPU the DataLoader workers are separate processes
    threads: 1
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/evaluate_fold/fold{{fold}}.log",
    benchmark:
        f"{BENCHMARKS}/evaluate_fold/fold{{fold}}.tsv"
    script:
        "../workflow_scripts/evaluate_fold.py"


rule aggregate_oof:
    input:
        windows=expand(f"{OOF_DIR}/fold{{fold}}/windows.csv", fold=FOLDS),
        metrics=expand(f"{OOF_DIR}/fold{{fold}}/metrics.json", fold=FOLDS),
        folds=FOLDS_TABLE,
        classes=CLASSES_TABLE,
    output:
        oof=OOF_OUTPUTS[0],
        cv_metrics=OOF_OUTPUTS[1],
        per_class=OOF_OUTPUTS[2],
    params:
        nocall_threshold=config["evaluate"]["nocall_threshold"],
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/aggregate_oof.log",
    benchmark:
        f"{BENCHMARKS}/aggregate_oof.tsv"
    script:
        "../workflow_scripts/aggregate_oof.py"
