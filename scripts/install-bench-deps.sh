#!/usr/bin/env bash
# Installs the peers `go run ./bench inspect` compares sandgate's TLS
# inspection with (run as root; a no-op when they are present). Not part of
# CI: benchmarks are run by hand. sandgate itself needs nothing at run time.
#   mitmproxy (Debian's package; the bench runs its `mitmdump`) and srt (npm)
set -euo pipefail
need=()
command -v mitmdump >/dev/null || need+=(mitmproxy)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing benchmark peers: ${need[*]} (install them, or run as root)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# srt (npm @anthropic-ai/sandbox-runtime 0.0.83), the other peer: its
# proxy-only mode runs on node, installed in its own directory (the bench's
# default -srt): ${SANDGATE_BENCH_PEERS:-~/.cache/sandgate-bench}/srt.
srt="${SANDGATE_BENCH_PEERS:-$HOME/.cache/sandgate-bench}/srt"
if [ ! -f "$srt/node_modules/@anthropic-ai/sandbox-runtime/dist/proxy-main.js" ]; then
  command -v npm >/dev/null || { echo "npm is needed to install srt (apt-get install npm)" >&2; exit 1; }
  mkdir -p "$srt"
  npm install --prefix "$srt" --no-audit --no-fund @anthropic-ai/sandbox-runtime@0.0.83
fi
