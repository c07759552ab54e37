# Held-out evaluation on 5 s windows per experiment and fold, then the out-of-fold aggregation.


rule evaluate_fold:
    input:
        model=f"{MODEL_DIR}/fold{{fold}}/model.pt",
        folds=FOLDS_TABLE,
        features=exp_features,
        annotations=annotations_input,
    output:
        windows=f"{OOF_DIR}/fold{{fold}}/windows.csv",
        metrics=f"{OOF_DIR}/fold{{fold}}/metrics.json",
    params:
        annotations=DATA["annotations"],
        evaluate=lambda wc: EXPERIMENTS[wc.exp]["evaluate"],
        kind=lambda wc: EXPERIMENTS[wc.exp]["model"]["kind"],
        features_dir=lambda wc: features_dir(wc.exp),
        n_shards=N_SHARDS,
    threads: config["threads"]["evaluate"]
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/evaluate_fold/{{exp}}/fold{{fold}}.log",
    benchmark:
        f"{BENCHMARKS}/evaluate_fold/{{exp}}/fold{{fold}}.tsv"
    script:
        "../workflow_scripts/evaluate_fold.py"


rule aggregate_oof:
    input:
        windows=expand(f"{OOF_DIR}/fold{{fold}}/windows.csv", fold=FOLDS, allow_missing=True),
        metrics=expand(f"{OOF_DIR}/fold{{fold}}/metrics.json", fold=FOLDS, allow_missing=True),
        folds=FOLDS_TABLE,
        classes=CLASSES_TABLE,
    output:
        oof=f"{OOF_DIR}/oof_windows.csv",
        cv_metrics=f"{OOF_DIR}/cv_metrics.json",
        per_class=f"{OOF_DIR}/per_class.csv",
    params:
        nocall_threshold=lambda wc: EXPERIMENTS[wc.exp]["evaluate"]["nocall_threshold"],
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/aggregate_oof/{{exp}}.log",
    benchmark:
        f"{BENCHMARKS}/aggregate_oof/{{exp}}.tsv"
    script:
        "../workflow_scripts/aggregate_oof.py"


# Per-class detection thresholds chosen on the OOF windows (against their window truth). Seconds
# of work: on a cluster it runs where Snakemake runs.
localrules:
    choose_thresholds,


rule choose_thresholds:
    input:
        oof=f"{OOF_DIR}/oof_windows.csv",
        folds=FOLDS_TABLE,
        classes=CLASSES_TABLE,
        annotations=annotations_input,
    output:
        thresholds=f"{OOF_DIR}/thresholds.csv",
    params:
        annotations=DATA["annotations"],
        target_precision=lambda wc: EXPERIMENTS[wc.exp]["predict"]["target_precision"],
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/choose_thresholds/{{exp}}.log",
    benchmark:
        f"{BENCHMARKS}/choose_thresholds/{{exp}}.tsv"
    script:
        "../workflow_scripts/choose_thresholds.py"
