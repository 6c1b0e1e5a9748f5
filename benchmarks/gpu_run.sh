#!/usr/bin/env bash
# The CUDA rows of dense_vs_crops, in one go (made for the lent GPU machine; writes to $OUT).
#   OUT=/tmp/out bash benchmarks/gpu_run.sh
# Then, here: python benchmarks/dense_vs_crops.py --from-json $OUT/dense_cuda.jsonl --machine "..."
set -u
cd "$(dirname "$0")"
export PYTHONUNBUFFERED=1
out=${OUT:-/tmp}/dense_cuda.jsonl
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "${OUT:-/tmp}/gpu.txt"
python3 -c "import torch, platform; print('torch', torch.__version__, 'python', platform.python_version())" | tee -a "${OUT:-/tmp}/gpu.txt"
common=(--device cuda --sizes 384 512 1024 --batch 64 --repeats 5 --json "$out")
many=(--device cuda --sizes 384 512 --batch 64 --repeats 5 --json "$out" --images 8)
python3 dense_vs_crops.py "${common[@]}" --torch-defaults
python3 dense_vs_crops.py "${common[@]}"
python3 dense_vs_crops.py "${common[@]}" --cudnn-benchmark --channels-last
python3 dense_vs_crops.py "${common[@]}" --tf32 --cudnn-benchmark --channels-last
python3 dense_vs_crops.py "${common[@]}" --tf32 --cudnn-benchmark --channels-last --cuda-graph
# One small image cannot fill the GPU: give the dense pass 8 images (and the crops 8x as many).
python3 dense_vs_crops.py "${many[@]}" --tf32 --cudnn-benchmark --channels-last
python3 dense_vs_crops.py "${many[@]}" --cudnn-benchmark --channels-last
