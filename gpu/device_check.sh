#!/usr/bin/env bash
# The GPU checks of longformer-lab, for a machine with an NVIDIA GPU on which CuPy, PyTorch (CUDA) and transformers
# are already installed; installs nothing. Runs the tests marked `gpu`, then benchmarks/gpu.py, whose table is
# printed last. About 2-3 minutes on an H100/H200 (first NVRTC compile of the kernels included); each step has a
# time limit so the whole stays under 5 minutes. Exits non-zero if the tests failed (the benchmark runs anyway).
#
#   bash gpu/device_check.sh            PYTHON=/path/to/python bash gpu/device_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

"$PY" - <<'PYEOF'
import cupy, numpy, torch, transformers
print(f"cupy {cupy.__version__} (CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}), numpy {numpy.__version__}, "
      f"torch {torch.__version__}, transformers {transformers.__version__}")
print("GPU:", torch.cuda.get_device_name() if torch.cuda.is_available() else "none seen by torch")
from gpu.backend import unavailable_reason
print("cupy backend:", unavailable_reason() or "available")
PYEOF

# other test files' optional imports (streamlit, playwright) must not stop the GPU tests from being collected
timeout 150 "$PY" -m pytest -q -m gpu --continue-on-collection-errors -p no:cacheprovider tests/
tests_status=$?
echo "gpu tests: exit $tests_status"

timeout 140 "$PY" -m benchmarks.gpu  # its table is the last thing printed
bench_status=$?
exit $(( tests_status != 0 ? tests_status : bench_status ))
