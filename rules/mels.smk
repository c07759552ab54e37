# The log-mel caches: one folder per distinct set of mel parameters (their digest), one HDF5
# shard per job. A shard's inputs are only its own recordings (shard = hash of the recording
# key), so adding a recording reruns one shard per cache. Background-noise folders
# (train.noise_dir) are cached in the same folder, one file each, by the same script.


rule mel_shard:
    input:
        manifest=lambda wc: shard_manifest(wc.shard),  # its recordings' paths, sizes, mtimes
    output:
        f"{RESULTS}/mels/{{digest}}/shard_{{shard}}.h5",
    params:
        recordings=lambda wc: [(r.key, r.path) for r in shard_recordings(wc.shard)],
        sample_rate=lambda wc: MEL_CACHES[wc.digest]["sample_rate"],
        mel=lambda wc: MEL_CACHES[wc.digest]["mel"],
        cache=lambda wc: MEL_CACHES[wc.digest]["cache"],
        on_bad_audio=DATA["on_bad_audio"],
    wildcard_constraints:
        shard=r"\d{3}",
        digest="|".join(MEL_CACHES),
    threads: config["threads"]["mel"]
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/mel_shard/{{digest}}/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/mel_shard/{{digest}}/{{shard}}.tsv"
    script:
        "../workflow_scripts/build_mel_shard.py"


rule noise_mels:
    input:
        audio=lambda wc: [path for _, path in noise_recordings(wc.noise)],
    output:
        f"{RESULTS}/mels/{{digest}}/noise_{{noise}}.h5",
    params:
        recordings=lambda wc: noise_recordings(wc.noise),
        sample_rate=lambda wc: MEL_CACHES[wc.digest]["sample_rate"],
        mel=lambda wc: MEL_CACHES[wc.digest]["mel"],
        cache=lambda wc: MEL_CACHES[wc.digest]["cache"],
        on_bad_audio=DATA["on_bad_audio"],
    wildcard_constraints:
        digest="|".join(MEL_CACHES),
        noise="|".join(NOISE_DIRS) or "none",
    threads: config["threads"]["mel"]
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/noise_mels/{{digest}}/{{noise}}.log",
    benchmark:
        f"{BENCHMARKS}/noise_mels/{{digest}}/{{noise}}.tsv"
    script:
        "../workflow_scripts/build_mel_shard.py"
