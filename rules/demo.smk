# The synthetic demo dataset; a checkpoint because its audio files are only known once written.


checkpoint make_demo:
    output:
        audio=directory(f"{demo_dir(config)}/train_audio"),
        metadata=f"{demo_dir(config)}/train_metadata.csv",
        soundscapes=directory(f"{demo_dir(config)}/soundscapes"),
        soundscape_labels=f"{demo_dir(config)}/soundscape_labels.csv",
        annotations=directory(f"{demo_dir(config)}/annotations"),
        soundscape_annotations=directory(f"{demo_dir(config)}/soundscape_annotations"),
        unlabeled_soundscapes=directory(f"{demo_dir(config)}/unlabeled_soundscapes"),
        archive=directory(f"{demo_dir(config)}/archive"),
        archive_annotations=directory(f"{demo_dir(config)}/archive_annotations"),
    params:
        demo=config["demo"],
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/make_demo.log",
    benchmark:
        f"{BENCHMARKS}/make_demo.tsv"
    script:
        "../workflow_scripts/make_demo.py"
