#!/usr/bin/env bash
# Sets up everything mmddetr needs in the active Python environment, then builds and installs mmddetr itself.
# Idempotent: a second run checks what is there and takes seconds.
#   PYTHON=python3.11 bash tools/install.sh      (default: python)
#   TORCH_SPEC='torch==2.13.0'                    what to install when no torch is there (a CUDA torch that is
#                                                 already installed is kept)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
PIP="$PY -m pip install --disable-pip-version-check -q"
say() { printf '[install] %s\n' "$*"; }

have() { $PY - "$@" <<'PYEOF' 2>/dev/null
import importlib.metadata as md, sys
for spec in sys.argv[1:]:
    name, _, version = spec.partition('==')
    try:
        found = md.version(name)
    except md.PackageNotFoundError:
        sys.exit(1)
    if version and found != version:
        sys.exit(1)
PYEOF
}

# 1. torch: keep whatever torch is installed (CPU or CUDA); otherwise the pinned CPU build.
if have torch; then
  say "torch $($PY -c 'import torch; print(torch.__version__)') already installed"
else
  say "installing ${TORCH_SPEC:-torch==2.13.0}"
  $PIP "${TORCH_SPEC:-torch==2.13.0}"
fi

# 2. build tools and pure-Python dependencies.
have setuptools ninja wheel numpy scipy pycocotools pytest pytest-randomly "mmengine==0.10.7" || {
  say "installing build tools, mmengine, scipy, pycocotools, pytest, pytest-randomly"
  $PIP setuptools wheel ninja numpy scipy pycocotools pytest pytest-randomly "mmengine==0.10.7"
}

# 3. mmcv 2.1.0 with its compiled ops: the wheel in ../shared/wheels when it fits this torch, else the source build.
if have "mmcv==2.1.0" && $PY -c "import mmcv.ops" 2>/dev/null; then
  say "mmcv 2.1.0 with ops already installed"
else
  links=()
  torch_version=$($PY -c 'import torch; print(torch.__version__)')
  if [ -d ../shared/wheels ] && [ "$torch_version" = "2.13.0+cpu" ]; then
    links=(--find-links ../shared/wheels)
    say "installing mmcv 2.1.0 (wheel cache ../shared/wheels)"
  else
    # mmcv 2.1.0's setup.py needs setuptools<70 (pip then reports that torch asks for a newer one: harmless here)
    say "building mmcv 2.1.0 with ops from source (about 11 minutes on 2 cores)"
    $PIP "setuptools<70"
  fi
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} $PIP --no-build-isolation "${links[@]}" "mmcv==2.1.0"
fi

# 4. mmdet 3.3.0 (its requirements are met by now, so pip builds nothing else).
have "mmdet==3.3.0" || { say "installing mmdet 3.3.0"; $PIP "mmdet==3.3.0"; }

# 5. the export extra (tools/export_onnx.py, tools/infer.py --backend onnxruntime|openvino), at the versions tested.
have "onnx==1.23.2" "onnxscript==0.7.2" "onnxruntime==1.32.0" "openvino==2026.4.1" || {
  say "installing onnx 1.23.2, onnxscript 0.7.2, onnxruntime 1.32.0, openvino 2026.4.1"
  $PIP "onnx==1.23.2" "onnxscript==0.7.2" "onnxruntime==1.32.0" "openvino==2026.4.1"
}

# 6. the hf extra: Hugging Face transformers, for tools/convert_checkpoint.py --from hf / --to hf and its parity
#    tests. Not timm: timm needs torchvision, and the registry's torchvision wheels are CUDA builds that do not load
#    with the CPU torch (and pip would replace torch to install them). transformers' own ResNet backbone needs neither.
have "transformers==5.25.0" || { say "installing transformers 5.25.0"; $PIP "transformers==5.25.0"; }

# 7. TensorBoard: tools/train.py then writes TensorBoard event files (losses, learning rate, val mAP), which the
#    tests read back.
have "tensorboard==2.21.0" || { say "installing tensorboard 2.21.0"; $PIP "tensorboard==2.21.0"; }

# 8. mmddetr itself, editable, with its C++ (and, with a CUDA torch and toolkit, CUDA) extension.
#    A re-run only recompiles what changed (ninja), so it takes seconds.
# (looked up from / so that the checkout in the current directory does not count as installed)
find_installed='import importlib.util as u, os
s = u.find_spec("mmddetr")
print(os.path.dirname(os.path.dirname(s.origin)) if s else "")'
installed_from=$(cd / && $PY -c "$find_installed" 2>/dev/null || true)
if [ "$installed_from" = "$(pwd)" ]; then
  say "mmddetr installed from $(pwd): rebuilding its extension in place if sources changed"
  $PY setup.py -q build_ext --inplace
else
  say "installing mmddetr from $(pwd) (editable) and building its extension"
  $PIP --no-build-isolation --use-pep517 --no-deps -e .
fi
$PY -c "import mmddetr.ops as o; print('[install] mmddetr extension:', o.extension_status())"
