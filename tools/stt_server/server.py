"""Local speech-to-text server for talkstream (optional; no API key needed).

Owns: one OpenAI-compatible endpoint, POST /v1/audio/transcriptions, answered by Whisper base
through faster-whisper on the CPU, plus GET /health. It does not own installing anything:
scripts/stt-server.sh makes the venv and the verified model folder, then starts this file.

Request: multipart/form-data with `file` (WAV PCM16 mono 16 kHz, or anything PyAV decodes),
`model` (accepted, ignored), optional `language` (ISO-639-1; empty = detect), `prompt`,
`temperature`, `response_format` (`json` default, `text`, `verbose_json`).
Answer: {"text": "..."}; errors: {"error": {"message", "type", "param", "code"}} with 4xx/5xx.

The model is loaded once at start. Transcriptions run one at a time (a lock) so a 2-core machine
is not oversubscribed; /health answers meanwhile. When the model is loaded, one line
`stt server ready on http://HOST:PORT/v1` goes to stdout (tests wait for it).
"""

import argparse
import email.parser
import email.policy
import io
import json
import os
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATHS = ("/v1/audio/transcriptions", "/audio/transcriptions")
FORMATS = ("json", "text", "verbose_json")


class ApiError(Exception):
    def __init__(self, status, message, kind="invalid_request_error", param=None):
        super().__init__(message)
        self.status, self.message, self.kind, self.param = status, message, kind, param


def parse_multipart(content_type, body):
    """Return {field name: bytes} from a multipart/form-data body (raises ApiError)."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise ApiError(400, "expected multipart/form-data with a boundary")
    head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n"
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart() or message.defects:
        raise ApiError(400, "malformed multipart body")
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[name] = part.get_payload(decode=True) or b""
    return fields


def text_field(fields, name):
    value = fields.get(name)
    if value is None:
        return None
    try:
        return value.decode("utf-8").strip() or None
    except UnicodeDecodeError:
        raise ApiError(400, f"field '{name}' is not UTF-8", param=name) from None


class Transcriber:
    """The Whisper model, loaded once; transcribe() is serialised by a lock."""

    def __init__(self, model_dir, threads, beam_size):
        from faster_whisper import WhisperModel  # imported here so --help works without it

        self.model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=threads)
        self.beam_size = beam_size
        self.lock = threading.Lock()

    def transcribe(self, audio, language, prompt, temperature):
        from faster_whisper.audio import decode_audio

        try:
            samples = decode_audio(io.BytesIO(audio), sampling_rate=16000)
        except Exception as e:  # PyAV raises its own error types for undecodable input
            raise ApiError(400, f"could not decode the audio file: {e}", param="file") from None
        if len(samples) == 0:
            raise ApiError(400, "the audio file holds no samples", param="file")
        with self.lock:
            try:
                segments, info = self.model.transcribe(
                    samples,
                    language=language,
                    initial_prompt=prompt,
                    temperature=temperature,
                    beam_size=self.beam_size,
                    vad_filter=False,
                )
                segments = list(segments)  # decoding happens while iterating
            except ValueError as e:  # e.g. an unknown language code
                raise ApiError(400, str(e), param="language") from None
            except Exception as e:
                raise ApiError(500, f"transcription failed: {e}", kind="server_error") from None
        return segments, info


class Handler(BaseHTTPRequestHandler):
    server_version = "talkstream-stt/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("stt: " + (fmt % args) + "\n")

    def send_body(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status, obj):
        self.send_body(status, json.dumps(obj).encode(), "application/json")

    def send_error_json(self, err):
        self.send_json(err.status, {"error": {"message": err.message, "type": err.kind,
                                              "param": err.param, "code": None}})

    def handle_expect_100(self):
        # A client that asks first (curl does for big bodies) hears 413 before it sends the body.
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.server.max_bytes:
            self.close_connection = True
            self.send_error_json(self.too_large())
            return False
        return super().handle_expect_100()

    def too_large(self):
        return ApiError(413, f"request body over {self.server.max_bytes} bytes", param="file")

    def do_GET(self):
        if self.path.split("?")[0] != "/health":
            return self.send_error_json(ApiError(404, f"no route GET {self.path}"))
        if self.server.transcriber is None:
            return self.send_json(503, {"status": "loading"})
        self.send_json(200, {"status": "ok"})

    def do_POST(self):
        try:
            self.answer_post()
        except ApiError as err:
            self.send_error_json(err)

    def answer_post(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise ApiError(411, "a Content-Length header is required")
        if int(length) > self.server.max_bytes:
            self.close_connection = True  # the body is not read
            raise self.too_large()
        body = self.rfile.read(int(length))  # read before any answer, so keep-alive stays in step
        if self.path.split("?")[0] not in PATHS:
            raise ApiError(404, f"no route POST {self.path}")
        if self.server.transcriber is None:
            raise ApiError(503, "the model is still loading", kind="server_error")

        fields = parse_multipart(self.headers.get("Content-Type", ""), body)
        if "file" not in fields:
            raise ApiError(400, "missing 'file' field", param="file")
        if not fields["file"]:
            raise ApiError(400, "the 'file' field is empty", param="file")
        fmt = text_field(fields, "response_format") or "json"
        if fmt not in FORMATS:
            raise ApiError(400, f"response_format must be one of {', '.join(FORMATS)}",
                           param="response_format")
        temperature = text_field(fields, "temperature")
        try:
            temperature = float(temperature) if temperature else 0.0
        except ValueError:
            raise ApiError(400, "temperature is not a number", param="temperature") from None

        started = time.monotonic()
        segments, info = self.server.transcriber.transcribe(
            fields["file"], text_field(fields, "language"), text_field(fields, "prompt"), temperature)
        text = "".join(s.text for s in segments).strip()
        took = time.monotonic() - started
        sys.stderr.write(f"stt: {info.duration:.1f} s of audio in {took:.2f} s, {len(text)} characters\n")

        if fmt == "text":
            return self.send_body(200, (text + "\n").encode(), "text/plain; charset=utf-8")
        answer = {"text": text}
        if fmt == "verbose_json":
            answer.update(task="transcribe", language=info.language, duration=info.duration,
                          segments=[{"id": i, "start": s.start, "end": s.end, "text": s.text}
                                    for i, s in enumerate(segments)])
        self.send_json(200, answer)


def main():
    env = os.environ.get
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default=env("STT_HOST", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(env("STT_PORT", "8178")),
                    help="0 picks a free port (the ready line shows it)")
    ap.add_argument("--threads", type=int, default=int(env("STT_THREADS", "2")))
    ap.add_argument("--model-dir", default=env("STT_MODEL_DIR"), required=env("STT_MODEL_DIR") is None)
    ap.add_argument("--beam-size", type=int, default=int(env("STT_BEAM_SIZE", "1")))
    ap.add_argument("--max-bytes", type=int, default=25 * 1024 * 1024)
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is local; never reach for a hub
    try:  # bind before loading the model: a busy port fails fast
        server = ThreadingHTTPServer((args.host, args.port), Handler)
    except OSError as e:
        sys.exit(f"stt server: cannot listen on {args.host}:{args.port}: {e}")
    server.daemon_threads = True
    server.transcriber, server.max_bytes = None, args.max_bytes
    threading.Thread(target=server.serve_forever, daemon=True).start()

    started = time.monotonic()
    try:
        server.transcriber = Transcriber(args.model_dir, args.threads, args.beam_size)
    except Exception as e:
        sys.exit(f"stt server: could not load the model from {args.model_dir}: {e}")
    sys.stderr.write(f"stt: model loaded in {time.monotonic() - started:.2f} s "
                     f"({args.threads} threads, beam {args.beam_size})\n")
    host, port = server.server_address[:2]
    print(f"stt server ready on http://{host}:{port}/v1", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
