# The log-mel cache: one HDF5 shard per job. A shard's inputs are only its own recordings
# (shard = hash of the recording key), so adding a recording reruns one shard.


rule mel_shard:
    input:
        audio=lambda wc: [r.path for r in shard_recordings(wc.shard)],
    output:
        f"{MEL_DIR}/shard_{{shard}}.h5",
    params:
        recordings=lambda wc: [(r.key, r.path) for r in shard_recordings(wc.shard)],
        sample_rate=config["audio"]["sample_rate"],
        mel=MEL_CACHE_PARAMS,
        cache=config["cache"],
        on_bad_audio=DATA["on_bad_audio"],
    wildcard_constraints:
        shard=r"\d{3}",
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/mel_shard/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/mel_shard/{{shard}}.tsv"
    script:
        "../workflow_scripts/build_mel_shard.py"
