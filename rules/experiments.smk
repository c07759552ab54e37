# The experiments side by side: a comparison table and figure (paired per-fold differences
# against a reference), and with two or more experiments the ensemble chosen on their OOF
# scores, whose predictions are the weighted mean of the members' calibrated predictions;
# and the nested ensemble (fold k's chosen on the other folds alone), a row of the table.

localrules:
    compare_experiments,
    select_ensemble,
    ensemble_predictions,
    nested_ensemble_fold,
    nested_ensemble,


rule compare_experiments:
    input:
        cv_metrics=for_experiments(f"{OOF_DIR}/cv_metrics.json"),
        models=for_experiments(f"{MODEL_DIR}/fold{{fold}}/model.pt", fold=FOLDS),
        nested=[NESTED_CV] if len(ENSEMBLE_CANDIDATES) > 1 else [],
    output:
        table=COMPARISON,
        figure=report(f"{EXP_DIR}/comparison.png", caption="../report/comparison.rst", category="5. Experiments"),
    params:
        experiments=EXP_NAMES,
        compare=config["compare"],
        # written by each training job as it ends (not an output Snakemake can depend on)
        benchmarks=[[f"{BENCHMARKS}/train_fold/{exp}/fold{k}.tsv" for k in FOLDS] for exp in EXP_NAMES],
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/compare_experiments.log",
    benchmark:
        f"{BENCHMARKS}/compare_experiments.tsv"
    script:
        "../workflow_scripts/compare_experiments.py"


rule select_ensemble:
    input:
        oof=expand(f"{OOF_DIR}/oof_windows.csv", exp=ENSEMBLE_CANDIDATES),
        folds=FOLDS_TABLE,
        classes=CLASSES_TABLE,
    output:
        f"{ENSEMBLE_DIR}/ensemble.json",
    params:
        experiments=ENSEMBLE_CANDIDATES,
        ensemble=config["ensemble"],
        nocall_threshold=config["evaluate"]["nocall_threshold"],
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/select_ensemble.log",
    benchmark:
        f"{BENCHMARKS}/select_ensemble.tsv"
    script:
        "../workflow_scripts/select_ensemble.py"


rule ensemble_predictions:
    input:
        ensemble=f"{ENSEMBLE_DIR}/ensemble.json",
        submissions=expand(f"{PREDICTIONS_DIR}/submission.csv", exp=ENSEMBLE_CANDIDATES),
        labels=lambda wc: labels_of(ENSEMBLE_CANDIDATES[0]),
    output:
        submission=f"{ENSEMBLE_DIR}/predictions/submission.csv",
        metrics=f"{ENSEMBLE_DIR}/predictions/metrics.json",
    params:
        experiments=ENSEMBLE_CANDIDATES,
        nocall_threshold=config["evaluate"]["nocall_threshold"],
        truth=truth_of(ENSEMBLE_CANDIDATES[0]),
        window_seconds=EXPERIMENTS[ENSEMBLE_CANDIDATES[0]]["train"]["segment_seconds"],  # members share it
        annotations=DATA["annotations"],
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/ensemble_predictions.log",
    benchmark:
        f"{BENCHMARKS}/ensemble_predictions.tsv"
    script:
        "../workflow_scripts/ensemble_predictions.py"


def candidate_windows(folds):
    """The ensemble candidates' window tables of `folds`, experiment by experiment."""
    return [f"{EXP_DIR}/{exp}/oof/fold{j}/windows.csv" for exp in ENSEMBLE_CANDIDATES for j in folds]


rule nested_ensemble_fold:
    input:
        # never fold k's own windows: its members, weights and calibration see the other folds only
        windows=lambda wc: candidate_windows([j for j in FOLDS if j != int(wc.fold)]),
        folds=FOLDS_TABLE,
        classes=CLASSES_TABLE,
    output:
        f"{ENSEMBLE_DIR}/nested/fold{{fold}}.json",
    params:
        experiments=ENSEMBLE_CANDIDATES,
        ensemble=config["ensemble"],
        nocall_threshold=config["evaluate"]["nocall_threshold"],
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/nested_ensemble_fold/fold{{fold}}.log",
    benchmark:
        f"{BENCHMARKS}/nested_ensemble_fold/fold{{fold}}.tsv"
    script:
        "../workflow_scripts/nested_ensemble_fold.py"


rule nested_ensemble:
    input:
        choices=expand(f"{ENSEMBLE_DIR}/nested/fold{{fold}}.json", fold=FOLDS),
        windows=candidate_windows(FOLDS),
        folds=FOLDS_TABLE,
        classes=CLASSES_TABLE,
    output:
        NESTED_CV,
    params:
        experiments=ENSEMBLE_CANDIDATES,
        nocall_threshold=config["evaluate"]["nocall_threshold"],
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/nested_ensemble.log",
    benchmark:
        f"{BENCHMARKS}/nested_ensemble.tsv"
    script:
        "../workflow_scripts/nested_ensemble.py"
