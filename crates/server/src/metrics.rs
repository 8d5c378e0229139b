//! Prometheus metrics (`GET /metrics`, text exposition format): what the server counts as it
//! goes (turn latencies from the `metrics` messages, errors by code, refused sessions, HLS
//! playlist fetchers) and what it reads at scrape time from the shared state (sessions, speaking
//! sessions, viewers per transport, frames by source, lag behind real time, media load,
//! readiness). Labels are fixed words (codes, transports, reasons): never an API key, a prompt or
//! a session id.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::load::LoadTotals;
use crate::protocol::{ErrorCode, ServerMessage, TurnMetrics};

/// How long after its last playlist request an HLS client still counts as a viewer.
pub const HLS_VIEWER_WINDOW: Duration = Duration::from_secs(10);

/// The `transport` label of viewers.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Transport {
    transport: &'static str,
}

/// The `kind` label of frames.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FrameKindLabel {
    kind: &'static str,
}

/// The `reason` label of refused sessions.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// The labels of errors: which part failed and the `error` code the client got.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    source: &'static str,
    code: String,
}

/// The `result` label of generator windows.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WindowResult {
    result: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// What the server reads from its state when scraped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// Sessions running.
    pub sessions: usize,
    /// Live streams (in the registry).
    pub streams: usize,
    /// Streams, speaking streams, frames, worst lag.
    pub totals: LoadTotals,
    /// WebRTC viewers (exact).
    pub webrtc_viewers: usize,
    /// The media threads' share of the cores.
    pub media_load: f64,
    /// `/readyz` would answer 200.
    pub ready: bool,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    sessions: Gauge,
    speaking: Gauge,
    streams: Gauge,
    viewers: Family<Transport, Gauge>,
    frames: Family<FrameKindLabel, Counter>,
    behind: FloatGauge,
    media_load: FloatGauge,
    ready: Gauge,
    refused: Family<Reason, Counter>,
    first_text: Histogram,
    first_audio: Histogram,
    first_segment: Histogram,
    turns: Counter,
    errors: Family<ErrorLabels, Counter>,
    windows: Family<WindowResult, Counter>,
    /// HLS clients by (stream, address): when each last fetched a playlist.
    hls_clients: Mutex<HashMap<(String, IpAddr), Duration>>,
    /// Scrapes one at a time (counters follow totals by their difference).
    scrape: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Turn latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, registered under the `talkstream_` prefix.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("talkstream");
        let sessions = Gauge::default();
        r.register("sessions", "Sessions running", sessions.clone());
        let speaking = Gauge::default();
        r.register(
            "speaking_sessions",
            "Sessions whose avatar is speaking a turn now",
            speaking.clone(),
        );
        let streams = Gauge::default();
        r.register("streams", "Live streams", streams.clone());
        let viewers = Family::<Transport, Gauge>::default();
        r.register(
            "viewers",
            "Viewers per transport: WebRTC peers (exact), HLS clients that fetched a playlist in the last 10 s (approximate: one per address and stream)",
            viewers.clone(),
        );
        let frames = Family::<FrameKindLabel, Counter>::default();
        r.register(
            "frames",
            "Video frames produced, by picture source: rendered (built-in avatar), generated (external generator), repeated (the last picture again, to catch up with real time)",
            frames.clone(),
        );
        let behind = FloatGauge::default();
        r.register(
            "stream_behind_seconds_max",
            "How far the live stream furthest behind real time was at its last frame",
            behind.clone(),
        );
        let media_load = FloatGauge::default();
        r.register(
            "media_load_ratio",
            "Share of the machine's CPU cores the media threads used over the last 2 s (1 = all)",
            media_load.clone(),
        );
        let ready = Gauge::default();
        r.register(
            "ready",
            "1 when the server takes new sessions (GET /readyz answers 200)",
            ready.clone(),
        );
        let refused = Family::<Reason, Counter>::default();
        r.register(
            "sessions_refused",
            "Sessions refused as busy, by reason (full, load, degrading, behind, shutting_down)",
            refused.clone(),
        );
        let hist = || Histogram::new(LATENCY_BUCKETS);
        let first_text = hist();
        r.register(
            "turn_first_text_seconds",
            "From the prompt to the first text released to the voice",
            first_text.clone(),
        );
        let first_audio = hist();
        r.register(
            "turn_first_audio_seconds",
            "From the prompt to the voice's first audio",
            first_audio.clone(),
        );
        let first_segment = hist();
        r.register(
            "turn_first_segment_seconds",
            "From the prompt to the first published segment (or LL-HLS part) with its speech",
            first_segment.clone(),
        );
        let turns = Counter::default();
        r.register(
            "turns",
            "Turns finished (spoken or interrupted)",
            turns.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        r.register(
            "errors",
            "Errors reported to clients, by the part that failed (tts, llm, stt, generator, stream, client, limit) and the error code",
            errors.clone(),
        );
        let windows = Family::<WindowResult, Counter>::default();
        r.register(
            "generator_windows",
            "External generator windows: generated (its frames played) or builtin (late or failed, the built-in avatar filled in)",
            windows.clone(),
        );
        Self {
            registry: r,
            sessions,
            speaking,
            streams,
            viewers,
            frames,
            behind,
            media_load,
            ready,
            refused,
            first_text,
            first_audio,
            first_segment,
            turns,
            errors,
            windows,
            hls_clients: Mutex::new(HashMap::new()),
            scrape: Mutex::new(()),
        }
    }

    /// A session was refused as busy (`reason`: [`crate::load::Busy::label`]).
    pub fn session_refused(&self, reason: &'static str) {
        self.refused.get_or_create(&Reason { reason }).inc();
    }

    /// A message is going to a client: turn timings and errors are counted.
    pub fn observe_message(&self, msg: &ServerMessage) {
        match msg {
            ServerMessage::Metrics(m) => self.observe_turn(m),
            ServerMessage::Error { code, .. } => {
                let code_text = serde_json::to_value(code)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                self.errors
                    .get_or_create(&ErrorLabels {
                        source: error_source(*code),
                        code: code_text,
                    })
                    .inc();
            }
            _ => {}
        }
    }

    fn observe_turn(&self, m: &TurnMetrics) {
        self.turns.inc();
        let secs = |ms: Option<f64>| {
            ms.filter(|v| v.is_finite() && *v >= 0.0)
                .map(|v| v / 1000.0)
        };
        if let Some(v) = secs(m.first_text_ms) {
            self.first_text.observe(v);
        }
        if let Some(v) = secs(m.first_audio_ms) {
            self.first_audio.observe(v);
        }
        if let Some(v) = secs(m.first_segment_ms) {
            self.first_segment.observe(v);
        }
        if let Some(n) = m.generator_windows {
            self.windows
                .get_or_create(&WindowResult {
                    result: "generated",
                })
                .inc_by(u64::from(n));
        }
        if let Some(n) = m.builtin_windows {
            self.windows
                .get_or_create(&WindowResult { result: "builtin" })
                .inc_by(u64::from(n));
        }
    }

    /// A client at `addr` fetched a playlist of `stream` at server time `now`.
    pub fn hls_fetch(&self, stream: &str, addr: IpAddr, now: Duration) {
        if let Ok(mut clients) = self.hls_clients.lock() {
            clients.insert((stream.to_string(), addr), now);
        }
    }

    /// HLS clients seen within [`HLS_VIEWER_WINDOW`] of `now` (older ones are forgotten).
    fn hls_viewers(&self, now: Duration) -> usize {
        let Ok(mut clients) = self.hls_clients.lock() else {
            return 0;
        };
        clients.retain(|_, at| now.saturating_sub(*at) < HLS_VIEWER_WINDOW);
        clients.len()
    }

    /// The text exposition of every metric, with the state read now (`now`: server time).
    pub fn render(&self, snap: &Snapshot, now: Duration) -> Result<String, std::fmt::Error> {
        let _one = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        let t = &snap.totals;
        self.sessions.set(gauge_value(snap.sessions));
        self.speaking.set(gauge_value(t.speaking));
        self.streams.set(gauge_value(snap.streams));
        self.viewers
            .get_or_create(&Transport {
                transport: "webrtc",
            })
            .set(gauge_value(snap.webrtc_viewers));
        self.viewers
            .get_or_create(&Transport { transport: "hls" })
            .set(gauge_value(self.hls_viewers(now)));
        for (kind, total) in [
            ("rendered", t.frames.rendered),
            ("generated", t.frames.generated),
            ("repeated", t.frames.repeated),
        ] {
            let c = self.frames.get_or_create(&FrameKindLabel { kind });
            c.inc_by(total.saturating_sub(c.get()));
        }
        self.behind.set(t.worst_behind.as_secs_f64());
        self.media_load.set(snap.media_load);
        self.ready.set(i64::from(snap.ready));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The part of the server an error code comes from.
fn error_source(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::TtsFailed => "tts",
        ErrorCode::LlmFailed => "llm",
        ErrorCode::SttFailed | ErrorCode::NothingHeard | ErrorCode::SttNotConfigured => "stt",
        ErrorCode::GeneratorFailed => "generator",
        ErrorCode::StreamFailed => "stream",
        ErrorCode::Busy
        | ErrorCode::RateLimited
        | ErrorCode::QuotaExceeded
        | ErrorCode::TooManySessionsFromAddress => "limit",
        ErrorCode::BadMessage
        | ErrorCode::MessageTooLarge
        | ErrorCode::EmptyPrompt
        | ErrorCode::PromptTooLong
        | ErrorCode::NotStreaming
        | ErrorCode::BadAudio => "client",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_and_errors_are_counted_without_their_text() {
        let m = Metrics::new();
        m.observe_message(&ServerMessage::Metrics(TurnMetrics {
            turn: 1,
            first_text_ms: Some(20.0),
            first_audio_ms: Some(60.0),
            first_segment_ms: Some(400.0),
            ..TurnMetrics::default()
        }));
        m.observe_message(&ServerMessage::error(
            ErrorCode::TtsFailed,
            "secret prompt text sk-abc",
        ));
        m.hls_fetch("abc", IpAddr::from([127, 0, 0, 1]), Duration::ZERO);
        let text = m
            .render(&Snapshot::default(), Duration::from_secs(1))
            .unwrap();
        assert!(
            text.contains("talkstream_turn_first_segment_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"talkstream_errors_total{source="tts",code="tts_failed"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"talkstream_viewers{transport="hls"} 1"#),
            "{text}"
        );
        assert!(!text.contains("secret") && !text.contains("sk-abc"));
        // The HLS client is forgotten after the window.
        let later = m
            .render(&Snapshot::default(), Duration::from_secs(11))
            .unwrap();
        assert!(
            later.contains(r#"talkstream_viewers{transport="hls"} 0"#),
            "{later}"
        );
    }
}
