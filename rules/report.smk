# Figures for `snakemake --report report.html` (matplotlib, drawn from the workflow's tables).
# Captions live in report/*.rst; categories order the report's sections. The figures take
# seconds: on a cluster they run where Snakemake runs instead of waiting in the queue.

localrules:
    plot_index,
    plot_training,
    plot_oof,
    plot_predictions,


rule plot_index:
    input:
        summary=INDEX_SUMMARY,
    output:
        report(f"{REPORT_DIR}/input_data.png", caption="../report/input_data.rst", category="0. Input data"),
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/plot_index.log",
    benchmark:
        f"{BENCHMARKS}/plot_index.tsv"
    script:
        "../workflow_scripts/plot_index.py"


rule plot_training:
    input:
        histories=expand(f"{MODEL_DIR}/fold{{fold}}/history.csv", fold=FOLDS),
    output:
        report(REPORT_OUTPUTS[0], caption="../report/training_curves.rst", category="1. Training"),
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/plot_training.log",
    benchmark:
        f"{BENCHMARKS}/plot_training.tsv"
    script:
        "../workflow_scripts/plot_training.py"


rule plot_oof:
    input:
        oof=OOF_OUTPUTS[0],
        cv_metrics=OOF_OUTPUTS[1],
        per_class=OOF_OUTPUTS[2],
        folds=FOLDS_TABLE,
        classes=CLASSES_TABLE,
        shards=MEL_SHARDS,
    output:
        cv_table=report(REPORT_OUTPUTS[1], caption="../report/cv_metrics.rst", category="2. Cross-validation"),
        per_class=report(OOF_FIGURES["per_class"], caption="../report/per_class.rst", category="2. Cross-validation"),
        confusion=report(OOF_FIGURES["confusion"], caption="../report/confusion.rst", category="2. Cross-validation"),
        pr_curves=report(OOF_FIGURES["pr_curves"], caption="../report/pr_curves.rst", category="2. Cross-validation"),
        examples=report(OOF_FIGURES["examples"], caption="../report/examples.rst", category="3. Examples"),
    params:
        sample_rate=config["audio"]["sample_rate"],
        mel=config["mel"],
        segment_seconds=config["train"]["segment_seconds"],
        mel_dir=MEL_DIR,
        n_shards=N_SHARDS,
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/plot_oof.log",
    benchmark:
        f"{BENCHMARKS}/plot_oof.tsv"
    script:
        "../workflow_scripts/plot_oof.py"


rule plot_predictions:
    input:
        submission=f"{PREDICTIONS_DIR}/submission.csv",
        labels=prediction_labels,
    output:
        report(f"{REPORT_DIR}/prediction_timeline.png", caption="../report/timeline.rst", category="4. Prediction"),
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/plot_predictions.log",
    benchmark:
        f"{BENCHMARKS}/plot_predictions.tsv"
    script:
        "../workflow_scripts/plot_predictions.py"
