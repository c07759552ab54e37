"""Rule archive_index_shard: the vector index of one archive embedding shard."""
import faiss

from soundclf.logs import setup_logging
from soundclf.search.index import ShardIndex

faiss.omp_set_num_threads(snakemake.threads)  # its default, every core, fights the other jobs
log = setup_logging(snakemake.log[0])
index = ShardIndex.from_shard(snakemake.input[0])
index.save(snakemake.output[0])
log.info("%s: %d windows of %d recordings, %s search", snakemake.output[0], len(index), len(index.keys),
         "exact" if index.inverted is None else f"an inverted file of {index.inverted.nlist} lists")
