# The embedding caches of embedding_probe experiments: one folder per distinct embedding
# model and parameters (their digest), one HDF5 shard per job over the same recordings as the
# mel shard of that number, so adding a recording reruns one shard per cache.


rule embed_shard:
    input:
        manifest=lambda wc: shard_manifest(wc.shard),  # its recordings' paths, sizes, mtimes
    output:
        f"{RESULTS}/embeddings/{{edigest}}/shard_{{shard}}.h5",
    params:
        recordings=lambda wc: [(r.key, r.path) for r in shard_recordings(wc.shard)],
        embedding=lambda wc: EMBED_CACHES[wc.edigest],
        on_bad_audio=DATA["on_bad_audio"],
        # how the embeddings are computed (embedding.backend), not what they are: a function of
        # `threads`, so that Snakemake treats it as derived, as it does threads, and a switch of
        # backend reruns no job (tests/test_embedding.py); where it exports BirdNET as ONNX
        backend=lambda wc, threads: EMBED_BACKENDS[wc.edigest],
        export_dir=lambda wc, threads: EMBED_EXPORT_DIR,
    wildcard_constraints:
        shard=r"\d{3}",
        edigest="|".join(EMBED_CACHES) or "none",
    threads: config["threads"]["mel"]
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/embed_shard/{{edigest}}/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/embed_shard/{{edigest}}/{{shard}}.tsv"
    script:
        "../workflow_scripts/embed_shard.py"
