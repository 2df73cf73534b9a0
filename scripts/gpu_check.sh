#!/usr/bin/env bash
# The GPU checks in a few minutes on one GPU (scripts/gpu_check.py says what each shows); prints a table
# and writes it to gpu_check/summary.md. Without CUDA it says so and exits 0; --cpu runs it on the CPU.
#   scripts/gpu_check.sh [--out DIR] [--cpu] [--peak-tflops 989]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-$here/../.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"
exec "$python" "$here/gpu_check.py" "$@"
