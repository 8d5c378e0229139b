//! Shared harness for the server's integration tests: start the real `talkstream` binary on
//! 127.0.0.1:0, talk to it over plain HTTP/1.1 and WebSocket, run ffprobe, stop it with SIGINT.
#![allow(dead_code)]

pub mod nginx;
pub mod ws;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use talkstream_providers::{Chunker, ChunkerConfig, LocalTts, LocalTtsConfig};

/// A running server process with its temp folder and captured log.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub hls_dir: PathBuf,
    pub log: Arc<Mutex<String>>,
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "talkstream-test-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Server {
    /// Start the binary with extra args/env; waits for its "listening on" line.
    pub fn start(tag: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = temp_dir(tag);
        let hls_dir = dir.join("hls");
        let static_dir = dir.join("static");
        std::fs::create_dir_all(&static_dir).unwrap();
        std::fs::write(
            static_dir.join("index.html"),
            "<!doctype html><title>test page</title>",
        )
        .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_talkstream"));
        cmd.arg("serve");
        if !args.contains(&"--host") {
            cmd.args(["--host", "127.0.0.1"]);
        }
        cmd.args(["--port", "0"])
            .arg("--hls-dir")
            .arg(&hls_dir)
            .arg("--static-dir")
            .arg(&static_dir)
            .args(args)
            .env_remove("RUST_LOG")
            .env("LOG_LEVEL", "info")
            // The tests compare the stream with eSpeak's audio; Piper has its own tests.
            .env("LOCAL_TTS_ENGINE", "espeak")
            // Tests run in parallel on a busy machine: the measured admission checks would
            // refuse sessions at random. They have their own tests (a test's env can set it).
            .env("MAX_MEDIA_LOAD", "0")
            // Likewise a stream that falls behind would repeat pictures, and the tests that
            // measure the mouth in the pixels would fail for the machine's load; degrading is
            // tested in virtual time (media_loop/tests.rs).
            .env("DEGRADE_AFTER_MS", "0")
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start talkstream");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log2.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log3 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split('/').next().unwrap_or_default().to_string();
                    let _ = tx.send(addr);
                }
                log3.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("server did not start; log:\n{}", log.lock().unwrap()));
        Server {
            child,
            addr: addr.parse().unwrap(),
            dir,
            hls_dir,
            log,
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn get(&self, path: &str) -> Response {
        http_get(self.addr, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/session", self.addr)
    }

    /// SIGINT, then wait up to `within` for a clean exit; returns the exit status.
    pub fn interrupt(&mut self, within: Duration) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "server did not stop within {within:?} after SIGINT; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A failing test shows what the server said (the last 80 lines).
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(80)..].join("\n");
            eprintln!("--- server log (tail) ---\n{tail}");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A minimal HTTP/1.1 GET (Connection: close), enough for tests; decodes chunked bodies.
pub fn http_get(addr: SocketAddr, path: &str) -> Response {
    http_request(addr, "GET", path, &[])
}

/// Like [`http_get`] with any method and extra request headers.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = &rest[eol + 2 + size + 2..];
        }
        body = out;
    }
    Response {
        status,
        headers,
        body,
    }
}

/// Run ffprobe with args; panics with a helpful message if it is missing or fails.
pub fn ffprobe(args: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("ffprobe is needed for this test ({e}); install ffmpeg or run scripts/test.sh")
        });
    assert!(
        out.status.success(),
        "ffprobe {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Presentation times (s) of the packets of `stream` (`v:0`, `a:0`) in `file`, by ffprobe.
pub fn packet_pts(file: &Path, stream: &str) -> Vec<f64> {
    let out = ffprobe(&[
        "-v",
        "error",
        "-select_streams",
        stream,
        "-show_entries",
        "packet=pts_time",
        "-of",
        "csv=p=0",
        file.to_str().unwrap(),
    ]);
    out.lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

/// Segments listed in a media playlist: (EXTINF seconds, uri).
pub fn playlist_segments(text: &str) -> Vec<(f64, String)> {
    let mut out = Vec::new();
    let mut pending: Option<f64> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#EXTINF:") {
            pending = rest.split(',').next().and_then(|d| d.parse().ok());
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            if let Some(d) = pending.take() {
                out.push((d, line.trim().to_string()));
            }
        }
    }
    out
}

/// The URI of the (last) EXT-X-MAP in a playlist.
pub fn playlist_map(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .filter_map(|r| r.split('"').next())
        .map(str::to_string)
        .next_back()
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// Normalised correlation of `a` against `b` placed at `offset` in `a`.
pub fn ncc(a: &[i16], b: &[i16], offset: usize) -> f64 {
    let n = b.len().min(a.len().saturating_sub(offset));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (x, y) = (f64::from(a[offset + i]), f64::from(b[i]));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa * bb).sqrt()
    }
}

pub fn ffmpeg(args: &[&str]) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin"])
        .args(args)
        .output()
        .expect("ffmpeg is needed; install it or run scripts/test.sh");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The pictures of `input` (a video or an image) decoded by ffmpeg as raw `pix_fmt` (e.g.
/// `rgb24`, `rgba`), frame after frame; `options` go between the input and the output (`-map`,
/// `-vf`, `-frames:v`).
pub fn decode_frames(input: &Path, pix_fmt: &str, options: &[&str]) -> Vec<u8> {
    let input = input.to_str().expect("a UTF-8 path");
    let mut args = vec!["-i", input];
    args.extend_from_slice(options);
    args.extend_from_slice(&["-f", "rawvideo", "-pix_fmt", pix_fmt, "-"]);
    ffmpeg(&args)
}

/// `talkstream-test-generator` (the stand-in video generator), next to the talkstream binary.
pub fn test_generator() -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_BIN_EXE_talkstream")).with_file_name("talkstream-test-generator");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p talkstream-generators --bins` (the test command does)",
        path.display()
    );
    path
}

pub fn decode_audio(file: &Path, rate: u32) -> Vec<i16> {
    let raw = ffmpeg(&[
        "-i",
        file.to_str().unwrap(),
        "-map",
        "0:a",
        "-f",
        "s16le",
        "-ac",
        "1",
        "-ar",
        &rate.to_string(),
        "-",
    ]);
    raw.chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// What the server's TTS turn produces for `text`: the chunker's clauses, each synthesized.
pub fn expected_tts_audio(text: &str) -> (Vec<i16>, u32) {
    let tts = LocalTts::new(LocalTtsConfig::default()).unwrap();
    let mut chunker = Chunker::new(ChunkerConfig::default());
    let mut chunks = chunker.push(text, 0);
    chunks.extend(chunker.finish());
    let mut pcm = Vec::new();
    let mut rate = 0;
    for c in chunks {
        let out = tts.synthesize_blocking(&c).unwrap();
        rate = out.sample_rate;
        pcm.extend(out.pcm);
    }
    (pcm, rate)
}

pub fn rms(x: &[i16]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len() as f64).sqrt()
}

/// The server's router for `state` on a free loopback port (in this process, no binary), until
/// `shutdown` fires: its address, and the task to await after shutting down.
pub async fn serve_router(
    state: Arc<talkstream::server::AppState>,
    shutdown: tokio_util::sync::CancellationToken,
) -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = talkstream::http::router(state);
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    });
    (addr, server)
}
