# Prediction on unlabelled long recordings with the mean of the fold models. Only
# prediction keys enter here, so changing one retrains nothing.


rule predict_recordings:
    input:
        models=FOLD_MODELS,
        audio=prediction_audio,
        labels=prediction_labels,
    output:
        PREDICTION_OUTPUTS,
    params:
        predict=PREDICT,
        nocall_threshold=config["evaluate"]["nocall_threshold"],
        on_bad_audio=DATA["on_bad_audio"],
        submission=f"{PREDICTIONS_DIR}/submission.csv",
        metrics=f"{PREDICTIONS_DIR}/metrics.json" if PREDICT["labels_csv"] else None,
    threads: 2
    resources:
        gpu=GPU_REQUEST,
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/predict_recordings.log",
    benchmark:
        f"{BENCHMARKS}/predict_recordings.tsv"
    script:
        "../workflow_scripts/predict_recordings.py"
