#!/usr/bin/env bash
# zoomdream's GPU benchmark and correctness checks (bench/gpu.py), as one script for a GPU
# machine with torch, torchvision, OpenCV, typer and rich but no internet. Run from anywhere:
#
#   make gpu-wheels          # here, with internet: the wheels that machine lacks, into .whl/
#   bash bench/gpu.sh        # there (carry .whl/ along): installs them, then prints the tables
#
# zoomdream itself runs from the checkout (no install). Extra arguments go to bench/gpu.py
# (--quick, --only …, --device cpu to check the script on a machine without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/zoomdream-site .whl/*.whl
    export PYTHONPATH="/tmp/zoomdream-site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
python3 - <<'PY' || { echo "bench/gpu.sh: a package is missing: run 'make gpu-wheels' where pip has internet and carry .whl/" >&2; exit 2; }
import imageio_ffmpeg, simpleeval, torch, torchvision, cv2, typer, rich  # noqa: F401
from zoomdream.engine.weights import package_weight_file
assert package_weight_file("mobilenet_v2-b0353104.pth") is not None, "no offline weights package"
import importlib.util, sys
if importlib.util.find_spec("skimage") is None:  # a dev dependency: the photo of correctness, precision, overhead
    print("bench/gpu.sh: no scikit-image here: the sections that take its photo (correctness, precision, "
          "overhead, tuning's last row) will fail; bisect, speed, determinism and tests do not need it", file=sys.stderr)
PY
exec python3 bench/gpu.py "$@"
