#!/bin/sh
# Everything a session with a GPU should measure, in one go and in under 10 minutes, with nothing
# installed (docs/gpu_flow.md, "On a GPU machine"): the device, the kernels' registers and spills
# for sm_90 (ptxas, no GPU needed), the GPU tests, `make check-gpu` (every batch 16-1024 on distinct
# real pairs, the slowest pair's iterations, the pipeline's steady state, the pipeline with its copies
# overlapped and in turn) and bench-train on CUDA.
# Results and logs under $OUT (default out/gpu_session); a step that fails does not stop the next.
#
#     OUT=/somewhere sh benchmarks/gpu_session.sh        # or: make gpu-session
set -u
OUT=${OUT:-out/gpu_session}
mkdir -p "$OUT"
PY=${GPU_PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
export PYTHONPATH=.
step() {  # step NAME SECONDS COMMAND...: run it with a time limit, its output in $OUT/NAME.log
    name=$1 limit=$2
    shift 2
    start=$(date +%s)
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    echo "$name: exit $? in $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
}
: > "$OUT/summary.txt"
step device 30 nvidia-smi --query-gpu=name,memory.total,clocks.max.memory,driver_version --format=csv
step registers 200 "$PY" -m pytest -q -p no:cacheprovider tests/flowprep/flow/test_gpu_paths.py::test_the_kernels_compile_for_a_gpu
step gpu_tests 120 "$PY" -m pytest -q -p no:cacheprovider -k gpu tests/flowprep/flow/test_tvl1_torch.py tests/flowprep/extract/test_batched.py \
    tests/flowprep/extract/test_overlap.py     tests/twostream/data/test_device_decode.py
step check_gpu 330 "$PY" benchmarks/check_gpu.py --out "$OUT"
# ResNet-18 only, each stream decoded in the loader and on the device, against synthetic data: what fits
step bench_train 150 "$PY" benchmarks/bench_train.py --repeats 1 --samples 512 --models resnet18
cp benchmarks/results/gpu_flow.json benchmarks/results/train.json "$OUT"/ 2>/dev/null
echo "results: $OUT (check_gpu.json, gpu_flow.json, train.json, *.log)"
