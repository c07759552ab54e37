# Figures for `snakemake --report report.html` (matplotlib, drawn from the workflow's tables).
# Captions live in report/*.rst; categories order the report's sections and each experiment is
# a subcategory. The figures take seconds: on a cluster they run where Snakemake runs instead
# of waiting in the queue.

localrules:
    plot_index,
    plot_training,
    plot_oof,
    plot_predictions,
    plot_detections,


rule plot_index:
    input:
        summary=INDEX_SUMMARY,
    output:
        report(f"{RESULTS}/report/input_data.png", caption="../report/input_data.rst", category="0. Input data"),
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
        histories=expand(f"{MODEL_DIR}/fold{{fold}}/history.csv", fold=FOLDS, allow_missing=True),
    output:
        report(f"{REPORT_DIR}/training_curves.png", caption="../report/training_curves.rst", category="1. Training",
               subcategory="{exp}"),
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/plot_training/{{exp}}.log",
    benchmark:
        f"{BENCHMARKS}/plot_training/{{exp}}.tsv"
    script:
        "../workflow_scripts/plot_training.py"


rule plot_oof:
    input:
        oof=f"{OOF_DIR}/oof_windows.csv",
        cv_metrics=f"{OOF_DIR}/cv_metrics.json",
        per_class=f"{OOF_DIR}/per_class.csv",
        folds=FOLDS_TABLE,
        classes=CLASSES_TABLE,
        shards=exp_mel_shards,
    output:
        cv_table=report(f"{REPORT_DIR}/cv_metrics.csv", caption="../report/cv_metrics.rst",
                        category="2. Cross-validation", subcategory="{exp}"),
        per_class=report(f"{REPORT_DIR}/per_class.png", caption="../report/per_class.rst",
                         category="2. Cross-validation", subcategory="{exp}"),
        confusion=report(f"{REPORT_DIR}/confusion.png", caption="../report/confusion.rst",
                         category="2. Cross-validation", subcategory="{exp}"),
        pr_curves=report(f"{REPORT_DIR}/pr_curves.png", caption="../report/pr_curves.rst",
                         category="2. Cross-validation", subcategory="{exp}"),
        examples=report(f"{REPORT_DIR}/examples.png", caption="../report/examples.rst", category="3. Examples",
                        subcategory="{exp}"),
    params:
        sample_rate=lambda wc: model_input(EXPERIMENTS[wc.exp])[0],  # 48 kHz audio for BirdNET fine-tuning
        mel=lambda wc: model_input(EXPERIMENTS[wc.exp])[1],
        segment_seconds=lambda wc: EXPERIMENTS[wc.exp]["train"]["segment_seconds"],
        mel_dir=lambda wc: mel_dir(MEL_DIGESTS[wc.exp]),
        n_shards=N_SHARDS,
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/plot_oof/{{exp}}.log",
    benchmark:
        f"{BENCHMARKS}/plot_oof/{{exp}}.tsv"
    script:
        "../workflow_scripts/plot_oof.py"


rule plot_predictions:
    input:
        submission=f"{PREDICTIONS_DIR}/submission.csv",
        labels=prediction_labels,
    output:
        report(f"{REPORT_DIR}/prediction_timeline.png", caption="../report/timeline.rst", category="4. Prediction",
               subcategory="{exp}"),
    params:
        truth=lambda wc: truth_of(wc.exp),
        window_seconds=lambda wc: EXPERIMENTS[wc.exp]["train"]["segment_seconds"],
        annotations=DATA["annotations"],
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/plot_predictions/{{exp}}.log",
    benchmark:
        f"{BENCHMARKS}/plot_predictions/{{exp}}.tsv"
    script:
        "../workflow_scripts/plot_predictions.py"


rule plot_detections:
    input:
        detections=f"{PREDICTIONS_DIR}/detections.parquet",
    output:
        report(f"{REPORT_DIR}/detection_activity.png", caption="../report/detection_activity.rst",
               category="4. Prediction", subcategory="{exp}"),
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/plot_detections/{{exp}}.log",
    benchmark:
        f"{BENCHMARKS}/plot_detections/{{exp}}.tsv"
    script:
        "../workflow_scripts/plot_detections.py"
