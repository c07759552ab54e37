# Cross-validation folds: one fold number per indexed recording.


rule assign_folds:
    input:
        recordings=INDEX_TABLE,
    output:
        folds=FOLDS_TABLE,
    params:
        folds=config["folds"],
        given_fold_values=GIVEN_FOLD_VALUES,
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/assign_folds.log",
    benchmark:
        f"{BENCHMARKS}/assign_folds.tsv"
    script:
        "../workflow_scripts/assign_folds.py"
