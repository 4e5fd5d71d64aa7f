#!/usr/bin/env bash
# Distributed training through torchrun: bash tools/dist_train.sh CONFIG NPROC [train.py options]
# (on a machine without CUDA, NPROC processes train on CPU with the gloo backend).
# One machine: torchrun's rendezvous takes a free port itself (PORT=0). Several: set NNODES, MASTER_ADDR (the first
# machine) and PORT the same on every machine. PYTHON (default python) is the interpreter that runs torchrun.
if [ $# -lt 2 ]; then
  echo "usage: bash tools/dist_train.sh CONFIG NPROC [train.py options]" >&2
  exit 2
fi
CONFIG=$1
NPROC=$2
NNODES=${NNODES:-1}
PORT=${PORT:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
if ! [[ $NPROC =~ ^[1-9][0-9]*$ ]]; then
  echo "dist_train.sh: NPROC: expected a positive number of processes, got '$NPROC'" >&2
  exit 2
fi
if [ "$NNODES" != 1 ] && [ "$PORT" = 0 ]; then
  echo "dist_train.sh: PORT: expected the rendezvous port on MASTER_ADDR with NNODES=$NNODES, got none" >&2
  exit 2
fi
PYTHONPATH="$(dirname "$0")/..${PYTHONPATH:+:$PYTHONPATH}" \
"${PYTHON:-python}" -m torch.distributed.run --nnodes="$NNODES" --nproc_per_node="$NPROC" --rdzv-backend=c10d \
    --rdzv-endpoint="$MASTER_ADDR:$PORT" "$(dirname "$0")/train.py" "$CONFIG" --launcher pytorch "${@:3}"
