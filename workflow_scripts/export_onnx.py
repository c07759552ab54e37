"""Rule export_onnx: a fold model exported to ONNX and checked against torch."""
from soundclf.logs import setup_logging
from soundclf.onnx_model import export_onnx

setup_logging(snakemake.log[0])
export_onnx(snakemake.input[0], snakemake.output[0])
