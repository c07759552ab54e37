# Per-fold training of each experiment: fold k's model is trained on every other fold and
# validated on fold k. Every key of the experiment's model/train/mel sections enters as a
# param, so changing one retrains that experiment (and re-evaluates it) without touching the
# index, the folds, the mel cache or any other experiment.


rule train_fold:
    input:
        folds=FOLDS_TABLE,
        classes=CLASSES_TABLE,
        features=exp_features,
        noise=exp_noise_mels,
        annotations=annotations_input,
        review_labels=exp_review_labels,  # train.review_marks: reviewed marks as strong labels
        # a self-training student's: its fold's pseudo-labels and the unlabeled recordings' mels
        pseudo_labels=student_pseudo_labels,
        unlabeled=student_unlabeled_mels,
        teacher_windows=exp_teacher_windows,  # train.teacher: fold k's windows scored by the teacher's fold k
        teacher_unlabeled=exp_teacher_unlabeled,  # ... and the unlabeled recordings' (self_training.audio_dir)
    output:
        model=f"{MODEL_DIR}/fold{{fold}}/model.pt",
        history=f"{MODEL_DIR}/fold{{fold}}/history.csv",
    params:
        annotations=DATA["annotations"],
        model=lambda wc: TRAINING_PARAMS[wc.exp]["model"],  # each kind's own keys: experiments.training_params
        train=lambda wc: TRAINING_PARAMS[wc.exp]["train"],
        sample_rate=lambda wc: TRAINING_PARAMS[wc.exp]["sample_rate"],
        mel=lambda wc: TRAINING_PARAMS[wc.exp]["mel"],
        embedding=lambda wc: TRAINING_PARAMS[wc.exp]["embedding"],
        features_dir=lambda wc: features_dir(wc.exp),
        n_shards=N_SHARDS,
        pseudo_share=lambda wc: SELF_TRAINING["pseudo_share"] if wc.exp in STUDENTS else None,
        unlabeled_dir=lambda wc: unlabeled_dir(MEL_DIGESTS[wc.exp]) if uses_unlabeled(wc.exp) else None,
        # the resumable checkpoint: not an output, so a killed job's checkpoint survives
        work_dir=lambda wc: f"{EXP_DIR}/{wc.exp}/models/fold{wc.fold}/work",
    threads: config["threads"]["train"]
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/train_fold/{{exp}}/fold{{fold}}.log",
    benchmark:
        f"{BENCHMARKS}/train_fold/{{exp}}/fold{{fold}}.tsv"
    script:
        "../workflow_scripts/train_fold.py"


# Distillation (train.teacher): the teacher's fold-k model scores every window of fold k's
# training recordings; the student's fold k trains on them beside its labelled crops. Fold k's
# teacher never saw fold k, so the student's OOF scores stay honest.
rule teacher_windows:
    input:
        model=f"{MODEL_DIR}/fold{{fold}}/model.pt",
        folds=FOLDS_TABLE,
        features=exp_features,
    output:
        f"{EXP_DIR}/{{exp}}/teacher_windows/fold{{fold}}.csv",
    params:
        kind=lambda wc: EXPERIMENTS[wc.exp]["model"]["kind"],
        features_dir=lambda wc: features_dir(wc.exp),
        n_shards=N_SHARDS,
        batch_size=lambda wc: EXPERIMENTS[wc.exp]["evaluate"]["batch_size"],
    threads: config["threads"]["evaluate"]
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/teacher_windows/{{exp}}/fold{{fold}}.log",
    benchmark:
        f"{BENCHMARKS}/teacher_windows/{{exp}}/fold{{fold}}.tsv"
    script:
        "../workflow_scripts/teacher_windows.py"
