#!/usr/bin/env bash
# A GPU smoke test and the GPU figures of docs/performance.md, in one run on a machine with an
# NVIDIA GPU and JAX's CUDA plugin:
#
#     bash benchmarks/gpu_check.sh OUT [PYTHON]
#
# 1. environment: the GPU, the versions of JAX and the core libraries (OUT/environment.txt);
# 2. the physics invariants on the GPU: closure at every step for random inputs and weights,
#    vmap equals a loop, finite gradients that match finite differences, the monotone laws
#    (OUT/smoke_tests.log; any failure makes the script's exit status non-zero);
# 3. column-steps per second on the GPU, 100 000 columns x 10 years, the physics model against
#    numba on every core of the same machine (OUT/throughput_gpu.json; throughput.py);
# 4. the training step of the climate-shift study's hybrid and its LSTM peer on the GPU, and
#    of the hybrid with every humid basin in one batch (OUT/training_step_gpu.json;
#    benchmarks/training_step.py; needs the MOPEX file under $HYBRIDLAND_DATA).
#
# JAX_PLATFORMS=cuda makes every step fail rather than fall back to the CPU. Each step has its
# own time limit (seconds: SMOKE_S, THROUGHPUT_S, THROUGHPUT_HYBRID_S, TRAINING_S; about 11
# minutes in all with the environment's 60 s at most) and writes its output as it goes, so a
# step stopped at its limit keeps what it measured and the next still runs. STEPS chooses the
# steps (default "smoke throughput training"), to split the run into shorter commands.
set -uo pipefail
OUT=${1:?usage: bash benchmarks/gpu_check.sh OUT [PYTHON]}
OUT=$(realpath -m "$OUT")  # the script works from the repository's root
PY=${2:-python3}
steps=" ${STEPS:-smoke throughput training} "
for s in $steps; do
    case $s in
        smoke | throughput | training) ;;
        *) echo "STEPS: unknown step '$s'; choose among smoke, throughput, training" >&2
           exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
: >"$OUT/steps.txt"  # this run's steps only
export JAX_PLATFORMS=cuda PYTHONUNBUFFERED=1
# several processes share the GPU (test workers, benchmark cases): none takes 75 % up front
export XLA_PYTHON_CLIENT_PREALLOCATE=false
status=0
step() {  # step NAME LIMIT_S LOG COMMAND...: run with a time limit, log, remember a failure
    local name=$1 limit=$2 log=$3
    shift 3
    local start=$SECONDS
    # SIGINT at the limit: pytest then still prints its summary (failures and their messages)
    timeout -s INT -k 5 "$limit" "$@" >>"$OUT/$log" 2>&1
    local rc=$?
    echo "$name: exit $rc after $((SECONDS - start)) s (limit $limit s)" | tee -a "$OUT/steps.txt"
    [ "$rc" -eq 0 ] || status=1
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    nproc
    timeout 60 "$PY" -c "
import jax, equinox, optax, xarray, numpy
print('jax', jax.__version__, 'equinox', equinox.__version__, 'optax', optax.__version__,
      'xarray', xarray.__version__, 'numpy', numpy.__version__)
print('backend', jax.default_backend(), jax.devices())
assert jax.default_backend() == 'gpu', 'JAX does not see the GPU'"
} >"$OUT/environment.txt" 2>&1 || status=1
cat "$OUT/environment.txt"

if [[ $steps == *" smoke "* ]]; then
    : >"$OUT/smoke_tests.log"
    step smoke_tests "${SMOKE_S:-240}" smoke_tests.log "$PY" -m pytest -v --tb=short \
        -p no:cacheprovider -n 4 --dist loadfile tests/test_closure.py tests/test_structure.py \
        tests/test_gradients.py tests/test_monotone.py
    tail -3 "$OUT/smoke_tests.log"
fi
if [[ $steps == *" throughput "* ]]; then
    # the physics model against numba (one run, so the records carry their ratio), then the
    # hybrid (numba's hybrid reference is too slow for the limit); both append to one JSON
    : >"$OUT/throughput.log"
    step throughput "${THROUGHPUT_S:-150}" throughput.log "$PY" benchmarks/throughput.py \
        --columns 100000 --days 3650 --repeats 2 --models physics --impls hybridland numba \
        --json "$OUT/throughput_gpu.json"
    step throughput_hybrid "${THROUGHPUT_HYBRID_S:-60}" throughput.log "$PY" \
        benchmarks/throughput.py --columns 100000 --days 3650 --repeats 2 --models hybrid \
        --impls hybridland --json "$OUT/throughput_gpu.json"
fi
if [[ $steps == *" training "* ]]; then
    : >"$OUT/training_step.log"
    step training_step "${TRAINING_S:-150}" training_step.log "$PY" benchmarks/training_step.py \
        --variants full lstm --batch 180 --json "$OUT/training_step_gpu.json"
fi
cat "$OUT/steps.txt"
exit $status
