#!/usr/bin/env bash
# Distributed testing through torchrun: bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py options]
# (on a machine without CUDA, NPROC processes test on CPU with the gloo backend; the results of all are gathered).
# One machine: torchrun's rendezvous takes a free port itself (PORT=0). Several: set NNODES, MASTER_ADDR (the first
# machine) and PORT the same on every machine. PYTHON (default python) is the interpreter that runs torchrun.
if [ $# -lt 3 ]; then
  echo "usage: bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py options]" >&2
  exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
NNODES=${NNODES:-1}
PORT=${PORT:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
if ! [[ $NPROC =~ ^[1-9][0-9]*$ ]]; then
  echo "dist_test.sh: NPROC: expected a positive number of processes, got '$NPROC'" >&2
  exit 2
fi
if [ "$NNODES" != 1 ] && [ "$PORT" = 0 ]; then
  echo "dist_test.sh: PORT: expected the rendezvous port on MASTER_ADDR with NNODES=$NNODES, got none" >&2
  exit 2
fi
PYTHONPATH="$(dirname "$0")/..${PYTHONPATH:+:$PYTHONPATH}" \
"${PYTHON:-python}" -m torch.distributed.run --nnodes="$NNODES" --nproc_per_node="$NPROC" --rdzv-backend=c10d \
    --rdzv-endpoint="$MASTER_ADDR:$PORT" "$(dirname "$0")/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
