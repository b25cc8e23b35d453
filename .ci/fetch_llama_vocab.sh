#!/usr/bin/env bash
# Puts llama.cpp's vocab-only LLaMA SentencePiece GGUF (shipped inside the llama-cpp-python source
# distribution on the package registry) into the mgpt cache, for the Vicuna-template tokenisation tests.
# Usage: .ci/fetch_llama_vocab.sh [DEST_DIR]   (default: ${MGPT_CACHE_DIR:-~/.cache/mgpt}/vocab)
set -euo pipefail
dest=${1:-${MGPT_CACHE_DIR:-$HOME/.cache/mgpt}/vocab}
version=0.3.36
[ -s "$dest/ggml-vocab-llama-spm.gguf" ] && { echo "llama vocab already at $dest"; exit 0; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
  -d "$tmp" "llama-cpp-python==$version"
mkdir -p "$dest"
models="llama_cpp_python-$version/vendor/llama.cpp/models"
tar -xzf "$tmp"/llama_cpp_python-$version.tar.gz -C "$tmp" \
  "$models/ggml-vocab-llama-spm.gguf" "$models/ggml-vocab-llama-spm.gguf.inp" "$models/ggml-vocab-llama-spm.gguf.out"
cp "$tmp/$models"/ggml-vocab-llama-spm.gguf* "$dest/"
echo "llama vocab written to $dest"
