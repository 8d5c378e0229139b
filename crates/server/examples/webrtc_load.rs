//! Benchmark: N sessions speaking back to back, each played by K WebRTC (WHEP) viewers on
//! loopback UDP. Measures the server's CPU, what every viewer receives (video frames, Opus
//! packets, RTP time against the wall clock) and the server's "behind real time" warnings, to
//! see whether the streams keep up with real time and what a viewer costs.
//!
//! Starts the given binary on a free port with the rate and spend limits off, opens the
//! sessions (`hello` names each one's WHEP endpoint), POSTs one str0m receiver's offer per
//! viewer, sends each session a long prompt and the next one whenever a turn ends (`metrics`),
//! and measures over `<seconds>` after a 3 s warm-up. `<viewers_per_session>` = 0 gives the
//! baseline without WebRTC viewers: CPU per viewer = (CPU with − CPU without) / viewers.
//!
//! `cargo run --release -p talkstream --example webrtc_load -- target/release/talkstream 8 2 30`
//! (binary, sessions, viewers per session, seconds measured)

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;
use support::{cpu_seconds, percentile};

use futures_util::{SinkExt, StreamExt};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use talkstream::webrtc::peer::rtc_config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

type DynError = Box<dyn std::error::Error + Send + Sync>;
type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Spoken back to back (the local voice says about 15 characters a second: ~20 s each).
const PROMPTS: [&str; 2] = [
    "Let me tell you a long story about a curious fox who lived at the edge of a quiet forest. \
     Every morning she walked down to the river to watch the boats go by, and every evening \
     she climbed the hill to count the stars. One day a small bird asked her why she counted \
     them, and she said that somebody had to keep track of them all.",
    "The weather today is lovely, with a light breeze and a few white clouds drifting slowly \
     across the sky. In the park the children are playing near the pond, the ducks are looking \
     for bread, and an old man on a bench is reading his newspaper while his dog sleeps in the \
     warm sunshine beside him.",
];

/// Server log lines that mean a stream fell behind real time.
const LAG_WARNINGS: [&str; 2] = ["falling behind real time", "WebRTC viewers get it later"];

const WARM_UP: Duration = Duration::from_secs(3);

/// The server binary with its stderr (the log) captured line by line.
struct LoadServer {
    child: Child,
    addr: String,
    dir: PathBuf,
    log: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl LoadServer {
    fn start(bin: &str, env: &[(&str, String)]) -> Result<Self, DynError> {
        let dir =
            std::env::temp_dir().join(format!("talkstream-webrtc-load-{}", std::process::id()));
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--port", "0"])
            .arg("--hls-dir")
            .arg(dir.join("hls"))
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut log) = log2.lock() {
                    log.push((Instant::now(), strip_ansi(&line)));
                }
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        // Keep reading stdout so the server never writes into a closed pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while matches!(stdout.read_line(&mut sink), Ok(n) if n > 0) {
                sink.clear();
            }
        });
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .map(str::to_string);
        let server = Self {
            child,
            addr: addr.unwrap_or_default(),
            dir,
            log,
        };
        if server.addr.is_empty() {
            std::thread::sleep(Duration::from_millis(300));
            return Err(format!("no address printed; log:\n{}", server.log_text()).into());
        }
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_text(&self) -> String {
        self.lines()
            .into_iter()
            .map(|(_, l)| l + "\n")
            .collect::<String>()
    }

    fn lines(&self) -> Vec<(Instant, String)> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for LoadServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `key=<number>` in a log line.
fn log_number(line: &str, key: &str) -> Option<u64> {
    let rest = line.split(&format!("{key}=")).nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Busy CPU seconds of the whole machine (all cores, all processes).
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    (total - idle) / 100.0
}

/// One HTTP/1.1 request; the status and body of the reply.
async fn request(
    addr: &str,
    method: &str,
    path: &str,
    ctype: &str,
    body: &str,
) -> Result<(u16, String), DynError> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no end of headers")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    Ok((status, body.to_string()))
}

/// The server's /metrics text (empty if it does not answer).
async fn scrape(addr: &str) -> String {
    request(addr, "GET", "/metrics", "text/plain", "")
        .await
        .map(|(_, body)| body)
        .unwrap_or_default()
}

/// The value of the sample named exactly `name` (with its labels) in a /metrics text; 0 if absent.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|rest| rest.strip_prefix(' '))
        .filter_map(|v| v.trim().parse().ok())
        .next()
        .unwrap_or(0.0)
}

/// What one viewer received: arrival time and RTP time of every video frame and Opus packet.
#[derive(Default)]
struct Recording {
    connected: Option<Instant>,
    video: Vec<(Instant, u64)>,
    audio: Vec<(Instant, u64)>,
    error: Option<String>,
}

/// A receiving peer like a browser's (video and audio recvonly) on a loopback UDP socket.
fn receiver(socket: &UdpSocket) -> Result<(Rtc, String, SdpPendingOffer, Mid), DynError> {
    let mut rtc = rtc_config().build(Instant::now());
    let candidate =
        Candidate::host(socket.local_addr()?, "udp").map_err(|e| format!("candidate: {e}"))?;
    rtc.add_local_candidate(candidate);
    let mut api = rtc.sdp_api();
    let video = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().ok_or("no offer")?;
    Ok((rtc, offer.to_sdp_string(), pending, video))
}

/// Drives the peer over its socket until `stop`, recording what arrives.
fn receive(
    rtc: &mut Rtc,
    socket: &UdpSocket,
    video_mid: Mid,
    stop: &AtomicBool,
    rec: &mut Recording,
) -> Result<(), DynError> {
    let local: SocketAddr = socket.local_addr()?;
    let mut buf = vec![0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let timeout = loop {
            match rtc.poll_output()? {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    socket.send_to(&t.contents, t.destination)?;
                }
                Output::Event(Event::Connected) => {
                    rec.connected.get_or_insert_with(Instant::now);
                }
                Output::Event(Event::MediaData(d)) => {
                    let at = (Instant::now(), d.time.numer());
                    if d.mid == video_mid {
                        rec.video.push(at);
                    } else {
                        rec.audio.push(at);
                    }
                }
                Output::Event(_) => {}
            }
        };
        let wait = timeout
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), Duration::from_millis(50));
        socket.set_read_timeout(Some(wait))?;
        match socket.recv_from(&mut buf) {
            Ok((n, source)) => {
                let contents = buf[..n]
                    .try_into()
                    .map_err(|e| format!("datagram: {e:?}"))?;
                rtc.handle_input(Input::Receive(
                    Instant::now(),
                    Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: local,
                        contents,
                    },
                ))?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                rtc.handle_input(Input::Timeout(Instant::now()))?
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Opens a WHEP viewer of `whep` and runs it in a thread until `stop`.
async fn start_viewer(
    addr: &str,
    whep: &str,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<Recording>, DynError> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let (mut rtc, offer, pending, video_mid) = receiver(&socket)?;
    let (status, body) = request(addr, "POST", whep, "application/sdp", &offer).await?;
    if status != 201 {
        return Err(format!("WHEP POST {whep}: {status} {body}").into());
    }
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&body)?)?;
    Ok(std::thread::spawn(move || {
        let mut rec = Recording::default();
        if let Err(e) = receive(&mut rtc, &socket, video_mid, &stop, &mut rec) {
            rec.error = Some(e.to_string());
        }
        rec
    }))
}

/// What one session's WebSocket saw.
#[derive(Default)]
struct SessionLog {
    /// (when, stage) of every `status`.
    stages: Vec<(Instant, String)>,
    /// When each turn's `metrics` arrived.
    turns: Vec<Instant>,
    errors: Vec<String>,
    ended: Option<String>,
}

async fn send_prompt(ws: &mut Ws, i: usize) -> Result<(), DynError> {
    let msg = serde_json::json!({"type":"prompt","text":PROMPTS[i % PROMPTS.len()]}).to_string();
    ws.send(Message::text(msg)).await?;
    Ok(())
}

/// Keeps the session speaking: a prompt, and the next one whenever a turn ends.
async fn drive(
    mut ws: Ws,
    first: usize,
    log: Arc<Mutex<SessionLog>>,
    stop: Arc<AtomicBool>,
) -> Result<(), DynError> {
    let mut i = first;
    send_prompt(&mut ws, i).await?;
    while !stop.load(Ordering::Relaxed) {
        let msg = match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
            Err(_) => continue,
            Ok(None) => return Err("the server closed the socket".into()),
            Ok(Some(msg)) => msg?,
        };
        let Message::Text(t) = msg else { continue };
        let v: serde_json::Value = serde_json::from_str(&t)?;
        let now = Instant::now();
        let next = match v["type"].as_str() {
            Some("status") => {
                let stage = v["stage"].as_str().unwrap_or("?").to_string();
                if let Ok(mut log) = log.lock() {
                    log.stages.push((now, stage));
                }
                false
            }
            Some("metrics") => {
                if let Ok(mut log) = log.lock() {
                    log.turns.push(now);
                }
                true
            }
            Some("error") => {
                let code = v["code"].as_str().unwrap_or("?").to_string();
                let failed_turn = code == "tts_failed" || code == "llm_failed";
                if let Ok(mut log) = log.lock() {
                    log.errors.push(format!("{code}: {}", v["message"]));
                }
                failed_turn
            }
            _ => false,
        };
        if next {
            i += 1;
            send_prompt(&mut ws, i).await?;
        }
    }
    Ok(())
}

/// Fraction of `[t0, t1]` a session spent between `speaking` and the turn's end.
fn speaking_fraction(stages: &[(Instant, String)], t0: Instant, t1: Instant) -> f64 {
    let mut speaking_since: Option<Instant> = None;
    let mut total = Duration::ZERO;
    for (at, stage) in stages {
        let at = (*at).clamp(t0, t1);
        if stage == "speaking" {
            speaking_since.get_or_insert(at);
        } else if let Some(since) = speaking_since.take() {
            total += at - since;
        }
    }
    if let Some(since) = speaking_since {
        total += t1 - since;
    }
    total.as_secs_f64() / (t1 - t0).as_secs_f64()
}

/// One viewer's figures over the window.
struct ViewerFigures {
    fps: f64,
    /// Video frames received × frame duration / wall time.
    video_ratio: f64,
    /// Opus packets received × 20 ms / wall time.
    audio_ratio: f64,
    /// RTP time progress of video / wall time between the first and last frame.
    rtp_ratio: f64,
    /// Longest wall time between two video frames.
    max_gap: Duration,
    /// Spread of (arrival − RTP time) over the window: jitter plus drift.
    spread_ms: f64,
}

fn figures(rec: &Recording, fps: f64, t0: Instant, t1: Instant) -> ViewerFigures {
    let wall = (t1 - t0).as_secs_f64();
    let video: Vec<&(Instant, u64)> = rec
        .video
        .iter()
        .filter(|(at, _)| *at >= t0 && *at < t1)
        .collect();
    let audio = rec
        .audio
        .iter()
        .filter(|(at, _)| *at >= t0 && *at < t1)
        .count();
    let (mut rtp_ratio, mut max_gap, mut spread_ms) = (0.0, Duration::ZERO, 0.0);
    if let (Some(first), Some(last)) = (video.first(), video.last()) {
        let rtp_secs = |r: u64| r.wrapping_sub(first.1) as i64 as f64 / 90_000.0;
        let span = (last.0 - first.0).as_secs_f64();
        if span > 0.0 {
            rtp_ratio = rtp_secs(last.1) / span;
        }
        let offsets: Vec<f64> = video
            .iter()
            .map(|(at, r)| (*at - first.0).as_secs_f64() - rtp_secs(*r))
            .collect();
        let max = offsets.iter().copied().fold(f64::MIN, f64::max);
        let min = offsets.iter().copied().fold(f64::MAX, f64::min);
        spread_ms = (max - min) * 1000.0;
        max_gap = video
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .max()
            .unwrap_or_default();
    }
    ViewerFigures {
        fps: video.len() as f64 / wall,
        video_ratio: video.len() as f64 / fps / wall,
        audio_ratio: audio as f64 * 0.020 / wall,
        rtp_ratio,
        max_gap,
        spread_ms,
    }
}

fn min_median(mut v: Vec<f64>) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    (v[0], percentile(&v, 0.5))
}

#[tokio::main]
async fn main() -> Result<(), DynError> {
    let (bin, sessions, args) = support::bin_and_count(8);
    let viewers: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(2);
    let secs: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(30);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    let env = [
        ("LLM_PROVIDER", "none".to_string()),
        ("TTS_PROVIDER", "local".to_string()),
        ("WEBRTC", "on".to_string()),
        ("SESSIONS_PER_ADDRESS", "0".to_string()),
        ("PROMPTS_PER_MINUTE", "0".to_string()),
        ("MESSAGES_PER_SECOND", "0".to_string()),
        ("LLM_TURNS_PER_HOUR", "0".to_string()),
        ("TTS_CHARS_PER_HOUR", "0".to_string()),
        // Room for every session unless MAX_SESSIONS is given (to measure admission).
        (
            "MAX_SESSIONS",
            std::env::var("MAX_SESSIONS").unwrap_or_else(|_| (sessions + 1).to_string()),
        ),
        ("WEBRTC_MAX_VIEWERS", viewers.max(1).to_string()),
        ("LOG_LEVEL", "warn,talkstream::webrtc=info".to_string()),
    ];
    let server = LoadServer::start(&bin, &env)?;
    let pid = server.pid().to_string();

    // Sessions: each `hello` names the WHEP endpoint.
    let mut sockets = Vec::new();
    let mut fps = 25.0;
    let mut busy = 0;
    'open: for _ in 0..sessions {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/session", server.addr))
            .await
            .map_err(|e| format!("opening a session: {e}; log:\n{}", server.log_text()))?;
        let hello = loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await?
                .ok_or("socket closed before hello")??;
            if let Message::Text(t) = msg {
                let v: serde_json::Value = serde_json::from_str(&t)?;
                if v["type"] == "hello" {
                    break v;
                }
                // A node that admits no more sessions (admission control) says so.
                if v["type"] == "error" && v["code"] == "busy" {
                    busy += 1;
                    continue 'open;
                }
                return Err(format!("expected hello, got {t}").into());
            }
        };
        fps = hello["stream"]["fps"].as_f64().unwrap_or(fps);
        let whep = hello["whep"].as_str().map(str::to_string);
        if viewers > 0 && whep.is_none() {
            return Err("hello has no whep endpoint (WebRTC off?)".into());
        }
        sockets.push((ws, whep));
    }

    // Viewers: K str0m receivers per session, one thread each.
    let stop = Arc::new(AtomicBool::new(false));
    let mut receivers = Vec::new();
    let mut refused = Vec::new();
    for (s, (_, whep)) in sockets.iter().enumerate() {
        for _ in 0..viewers {
            let whep = whep.as_deref().unwrap_or_default();
            match start_viewer(&server.addr, whep, Arc::clone(&stop)).await {
                Ok(handle) => receivers.push((s, handle)),
                Err(e) => refused.push(format!("session {s}: {e}")),
            }
        }
    }

    // Every session speaks from now on.
    let mut logs = Vec::new();
    let mut drivers = Vec::new();
    for (s, (ws, _)) in sockets.into_iter().enumerate() {
        let log = Arc::new(Mutex::new(SessionLog::default()));
        logs.push(Arc::clone(&log));
        drivers.push(tokio::spawn(drive(ws, s, log, Arc::clone(&stop))));
    }

    tokio::time::sleep(WARM_UP).await;
    let (cpu0, own0, busy0, t0) = (
        cpu_seconds(&pid),
        cpu_seconds("self"),
        machine_busy_seconds(),
        Instant::now(),
    );
    let m0 = scrape(&server.addr).await;
    // The worst stream's lag behind real time, sampled from /metrics twice a second.
    let mut worst_lag: f64 = 0.0;
    let window_end = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < window_end {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let m = scrape(&server.addr).await;
        worst_lag = worst_lag.max(metric(&m, "talkstream_stream_behind_seconds_max"));
    }
    let m1 = scrape(&server.addr).await;
    let (cpu1, own1, busy1, t1) = (
        cpu_seconds(&pid),
        cpu_seconds("self"),
        machine_busy_seconds(),
        Instant::now(),
    );
    let wall = (t1 - t0).as_secs_f64();

    stop.store(true, Ordering::Relaxed);
    for (log, driver) in logs.iter().zip(drivers) {
        let ended = match driver.await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Ok(mut log) = log.lock() {
            log.ended = ended;
        }
    }
    let mut recordings = Vec::new();
    for (s, handle) in receivers {
        match handle.join() {
            Ok(rec) => recordings.push((s, rec)),
            Err(_) => refused.push(format!("session {s}: receiver thread panicked")),
        }
    }

    // Sessions.
    let mut turns = 0;
    let mut speaking = Vec::new();
    let mut session_errors = Vec::new();
    for (s, log) in logs.iter().enumerate() {
        let Ok(log) = log.lock() else { continue };
        turns += log
            .turns
            .iter()
            .filter(|at| **at >= t0 && **at < t1)
            .count();
        speaking.push(speaking_fraction(&log.stages, t0, t1));
        for e in &log.errors {
            session_errors.push(format!("session {s}: {e}"));
        }
        if let Some(e) = &log.ended {
            session_errors.push(format!("session {s} ended early: {e}"));
        }
    }
    let (speak_min, speak_median) = min_median(speaking);

    // Viewers.
    let connected = recordings
        .iter()
        .filter(|(_, r)| r.connected.is_some())
        .count();
    let mut viewer_problems = refused;
    for (s, rec) in &recordings {
        if rec.connected.is_none() {
            viewer_problems.push(format!("session {s}: a viewer never connected"));
        }
        if let Some(e) = &rec.error {
            viewer_problems.push(format!("session {s}: a viewer failed: {e}"));
        }
    }
    let figs: Vec<ViewerFigures> = recordings
        .iter()
        .map(|(_, r)| figures(r, fps, t0, t1))
        .collect();

    // The server's log.
    let lines = server.lines();
    let in_window = |at: &Instant| *at >= t0 && *at < t1;
    let count = |needle: &str, window: bool| {
        lines
            .iter()
            .filter(|(at, l)| l.contains(needle) && (!window || in_window(at)))
            .count()
    };
    let max_behind = lines
        .iter()
        .filter(|(at, l)| in_window(at) && l.contains(LAG_WARNINGS[0]))
        .filter_map(|(_, l)| log_number(l, "behind_ms"))
        .max();
    let max_delay_ms: u64 = lines
        .iter()
        .filter(|(at, l)| in_window(at) && l.contains(LAG_WARNINGS[1]))
        .filter_map(|(_, l)| log_number(l, "delay_ms"))
        .max()
        .unwrap_or(0);
    let mut other_warnings: Vec<String> = Vec::new();
    for (_, l) in &lines {
        let warn = l.contains(" WARN ") || l.contains(" ERROR ");
        if warn && !LAG_WARNINGS.iter().any(|w| l.contains(w)) {
            // Group by the message text (drop the timestamp).
            let msg = l.split_once(' ').map_or(l.as_str(), |(_, m)| m).to_string();
            if !other_warnings.contains(&msg) {
                other_warnings.push(msg);
            }
        }
    }

    let delta = |name: &str| metric(&m1, name) - metric(&m0, name);
    let segs = delta("talkstream_turn_first_segment_seconds_count");
    println!(
        "metrics (/metrics over the window): {} sessions admitted, {busy} refused busy; worst stream lag {:.0} ms; frames repeated {:.0} of {:.0}; first speaking segment mean {} over {segs:.0} turns",
        sessions - busy,
        worst_lag * 1000.0,
        delta("talkstream_frames_total{kind=\"repeated\"}"),
        delta("talkstream_frames_total{kind=\"repeated\"}")
            + delta("talkstream_frames_total{kind=\"rendered\"}"),
        if segs > 0.0 {
            format!(
                "{:.0} ms",
                delta("talkstream_turn_first_segment_seconds_sum") / segs * 1000.0
            )
        } else {
            "-".to_string()
        },
    );
    let server_cores = (cpu1 - cpu0) / wall;
    println!(
        "webrtc_load: {sessions} session(s) x {viewers} WebRTC viewer(s) each ({} viewers), {secs} s measured after {} s warm-up, {cores} cores",
        sessions * viewers,
        WARM_UP.as_secs()
    );
    println!(
        "server CPU: {server_cores:.2} cores ({:.0}% of one core); this load generator: {:.2} cores; whole machine: {:.2} of {cores} cores busy",
        server_cores * 100.0,
        (own1 - own0) / wall,
        (busy1 - busy0) / wall,
    );
    println!(
        "sessions: {turns} turns ended in the window; speaking (status speaking..turn end) min {:.0}% / median {:.0}% of the window",
        speak_min * 100.0,
        speak_median * 100.0
    );
    if viewers > 0 {
        let (fps_min, fps_median) = min_median(figs.iter().map(|f| f.fps).collect());
        let (v_min, v_median) = min_median(figs.iter().map(|f| f.video_ratio).collect());
        let (a_min, a_median) = min_median(figs.iter().map(|f| f.audio_ratio).collect());
        let (r_min, r_median) = min_median(figs.iter().map(|f| f.rtp_ratio).collect());
        let media_min = figs
            .iter()
            .map(|f| f.video_ratio.min(f.audio_ratio))
            .fold(f64::NAN, f64::min);
        let max_gap = figs.iter().map(|f| f.max_gap).max().unwrap_or_default();
        let spread = figs.iter().map(|f| f.spread_ms).fold(0.0, f64::max);
        println!(
            "viewers: {connected}/{} connected; video received min {fps_min:.1} / median {fps_median:.1} fps (stream {fps} fps); longest gap between frames {} ms",
            sessions * viewers,
            max_gap.as_millis()
        );
        println!(
            "received media / wall time: min {media_min:.3} (video min {v_min:.3} / median {v_median:.3}, audio min {a_min:.3} / median {a_median:.3})"
        );
        println!(
            "video RTP time / wall time: min {r_min:.3} / median {r_median:.3}; arrival - RTP time spread (jitter + drift) up to {spread:.0} ms"
        );
    }
    println!(
        "server lag warnings in the window: {} \"falling behind real time\"{}, {} \"WebRTC viewers get it later\" (delay up to {max_delay_ms} ms); whole run: {} and {} (each at most once per 10 s per stream)",
        count(LAG_WARNINGS[0], true),
        max_behind.map_or(String::new(), |b| format!(" (up to {b} ms behind)")),
        count(LAG_WARNINGS[1], true),
        count(LAG_WARNINGS[0], false),
        count(LAG_WARNINGS[1], false),
    );
    println!(
        "server log, whole run: {} WebRTC viewer(s) connected, {} ended",
        count("WebRTC viewer connected", false),
        count("WebRTC viewer ended", false)
    );
    for w in other_warnings.iter().take(10) {
        println!("server warning: {w}");
    }
    for p in viewer_problems.iter().chain(&session_errors).take(20) {
        println!("problem: {p}");
    }
    if viewers > 0 {
        println!(
            "CPU per viewer: run again with 0 viewers per session (`... {sessions} 0 {secs}`) and take (CPU with - CPU without) / {} viewers",
            sessions * viewers
        );
    } else {
        println!(
            "baseline without WebRTC viewers: CPU per viewer = (CPU with K viewers per session - {server_cores:.2}) / ({sessions} x K)"
        );
    }
    // With RTMP_PUBLISH_URL set and RUST_LOG=info,talkstream::rtmp=debug, each stream's
    // publisher logs its frames' delay after their media time every 20 s.
    for (_, l) in lines
        .iter()
        .filter(|(_, l)| l.contains("RTMP frames sent so far"))
    {
        println!("server: {l}");
    }
    drop(server);
    Ok(())
}
