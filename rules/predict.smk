# Prediction on unlabelled long recordings with the mean of an experiment's fold models. Only
# prediction keys enter here, so changing one retrains nothing.


rule predict_recordings:
    input:
        models=expand(f"{MODEL_DIR}/fold{{fold}}/model.pt", fold=FOLDS, allow_missing=True),
        audio=prediction_audio,
        labels=prediction_labels,
    output:
        submission=f"{PREDICTIONS_DIR}/submission.csv",
        metrics=f"{PREDICTIONS_DIR}/metrics.json",
    params:
        predict=lambda wc: PREDICT[wc.exp],
        kind=lambda wc: EXPERIMENTS[wc.exp]["model"]["kind"],
        nocall_threshold=lambda wc: EXPERIMENTS[wc.exp]["evaluate"]["nocall_threshold"],
        truth=lambda wc: truth_of(wc.exp),
        window_seconds=lambda wc: EXPERIMENTS[wc.exp]["train"]["segment_seconds"],
        annotations=DATA["annotations"],
        on_bad_audio=DATA["on_bad_audio"],
    threads: config["threads"]["predict"]
    resources:
        gpu=GPU_REQUEST,
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/predict_recordings/{{exp}}.log",
    benchmark:
        f"{BENCHMARKS}/predict_recordings/{{exp}}.tsv"
    script:
        "../workflow_scripts/predict_recordings.py"
