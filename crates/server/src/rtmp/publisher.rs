//! A stream's RTMP publisher: a task that keeps one publishing connection to the ingest,
//! sends each frame's tags at the frame's real time (never ahead), and when the ingest is
//! down, refuses or drops the connection, retries with back-off while the session's own stream
//! goes on. It reports its state (connecting, live, retrying with the reason, stopped) through
//! a callback, once per change: a refusal that repeats is not reported again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use talkstream_media::flv::FlvFeed;
use talkstream_media::EncodedUnit;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};

use super::connection::{Connection, RtmpError, StreamInfo};
use super::target::RtmpTarget;

/// How long connecting (TCP, handshake, connect, publish) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one write may block before the ingest counts as stalled.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// First and longest wait between attempts.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Frames waiting for the connection at most (10 s at 25 fps); more are dropped and the
/// connection starts again at a keyframe.
const QUEUE_FRAMES: usize = 250;
/// How often the frames' delay is logged (at debug level) while publishing.
const DELAY_REPORT_EVERY: Duration = Duration::from_secs(20);
/// How far behind real time the connection may fall before it is given up as too slow.
const MAX_BEHIND: Duration = Duration::from_secs(5);

/// What the publisher is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishState {
    /// Connecting for the first time.
    Connecting,
    /// Publishing: the ingest accepted the stream.
    Live,
    /// The last attempt failed (or the connection dropped); trying again.
    Retrying,
    /// The stream ended; the connection was closed.
    Stopped,
}

/// A change of the publisher's state, for the session (and the page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishStatus {
    /// The state.
    pub state: PublishState,
    /// Where, without the stream key: `rtmp://host:port/app/…`.
    pub target: String,
    /// Why it is retrying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the next attempt starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
}

/// The stream's codec parameters, for the sequence headers.
#[derive(Debug, PartialEq, Eq)]
pub struct CodecParams {
    /// H.264 SPS.
    pub sps: Vec<u8>,
    /// H.264 PPS.
    pub pps: Vec<u8>,
    /// AAC AudioSpecificConfig.
    pub asc: Vec<u8>,
}

/// One frame for the publisher.
#[derive(Debug)]
pub struct Frame {
    /// The encoded frame.
    pub unit: EncodedUnit,
    /// Its codec parameters.
    pub codec: Arc<CodecParams>,
    /// When it is due (its media time on the wall clock).
    pub due: std::time::Instant,
}

/// The handle the media thread's sink holds; dropping it ends the stream (the publisher says
/// goodbye to the ingest and stops).
#[derive(Debug)]
pub struct RtmpOutput {
    frames: mpsc::Sender<Frame>,
    keyframe: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
}

impl RtmpOutput {
    /// Start publishing to `target` on `runtime`; `report` hears every change of state.
    pub fn start(
        target: RtmpTarget,
        info: StreamInfo,
        runtime: &tokio::runtime::Handle,
        report: impl Fn(PublishStatus) + Send + 'static,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_FRAMES);
        let keyframe = Arc::new(AtomicBool::new(false));
        let publisher = Publisher {
            target,
            info,
            frames: rx,
            keyframe: Arc::clone(&keyframe),
            report: Box::new(report),
            delays: DelayHistogram::new(),
        };
        runtime.spawn(publisher.run());
        RtmpOutput {
            frames: tx,
            keyframe,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Hand a frame to the publisher without waiting; a full queue (the ingest is slow or
    /// away) drops it, and the connection restarts at a keyframe.
    pub fn push(&self, frame: Frame) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.frames.try_send(frame) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_multiple_of(250) {
                tracing::warn!(dropped = n + 1, "RTMP publisher is behind; frames dropped");
            }
        }
    }

    /// True once if the publisher needs a keyframe to (re)start its connection.
    pub fn take_keyframe_request(&self) -> bool {
        self.keyframe.swap(false, Ordering::Relaxed)
    }
}

/// The task's state.
struct Publisher {
    target: RtmpTarget,
    info: StreamInfo,
    frames: mpsc::Receiver<Frame>,
    keyframe: Arc<AtomicBool>,
    report: Box<dyn Fn(PublishStatus) + Send>,
    delays: DelayHistogram,
}

/// How long after its media time each frame was written to the ingest's socket, in whole
/// milliseconds (constant memory; logged when publishing stops).
struct DelayHistogram {
    counts: Vec<u64>,
}

impl DelayHistogram {
    const BUCKETS: usize = 2000;

    fn new() -> Self {
        DelayHistogram {
            counts: vec![0; Self::BUCKETS + 1],
        }
    }

    fn record(&mut self, delay: Duration) {
        let ms = (delay.as_millis() as usize).min(Self::BUCKETS);
        self.counts[ms] += 1;
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The delay (ms) at fraction `q` of the frames (the last bucket means "or more").
    fn quantile(&self, q: f64) -> usize {
        let want = (self.total() as f64 * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (ms, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= want {
                return ms;
            }
        }
        Self::BUCKETS
    }
}

/// How a publishing connection ended.
enum Ended {
    /// The stream ended.
    Finished,
    /// The connection failed.
    Failed(RtmpError),
    /// The connection could not keep up with real time.
    Behind(Duration),
}

impl Publisher {
    fn status(&self, state: PublishState, reason: Option<String>, retry_in: Option<Duration>) {
        (self.report)(PublishStatus {
            state,
            target: self.target.to_string(),
            reason,
            retry_in_ms: retry_in.map(|d| d.as_millis() as u64),
        });
    }

    async fn run(mut self) {
        let mut backoff = RETRY_MIN;
        let mut last_reason: Option<String> = None;
        self.status(PublishState::Connecting, None, None);
        loop {
            let reason = match self.connect().await {
                None => break,
                Some(Err(e)) => e.to_string(),
                Some(Ok(conn)) => {
                    tracing::info!(target = %self.target, "publishing to the RTMP ingest");
                    self.status(PublishState::Live, None, None);
                    last_reason = None;
                    backoff = RETRY_MIN;
                    match self.stream(conn).await {
                        Ended::Finished => break,
                        Ended::Failed(e) => e.to_string(),
                        Ended::Behind(by) => format!(
                            "the ingest could not keep up ({} ms behind real time)",
                            by.as_millis()
                        ),
                    }
                }
            };
            if last_reason.as_deref() == Some(reason.as_str()) {
                tracing::debug!(target = %self.target, %reason, "RTMP publishing: still failing");
            } else {
                tracing::warn!(
                    target = %self.target,
                    retry_in_ms = backoff.as_millis() as u64,
                    "RTMP publishing: {reason}; retrying"
                );
                self.status(PublishState::Retrying, Some(reason.clone()), Some(backoff));
                last_reason = Some(reason);
            }
            if !self.idle_until(Instant::now() + backoff).await {
                break;
            }
            backoff = (backoff * 2).min(RETRY_MAX);
        }
        let frames = self.delays.total();
        tracing::info!(
            target = %self.target,
            frames,
            delay_median_ms = self.delays.quantile(0.5),
            delay_p95_ms = self.delays.quantile(0.95),
            "RTMP publishing stopped (frames sent; their delay after media time)"
        );
        self.status(PublishState::Stopped, None, None);
    }

    /// Open a publishing connection while dropping the frames that arrive meanwhile; `None`
    /// if the stream ended.
    async fn connect(&mut self) -> Option<Result<Connection, RtmpError>> {
        let target = self.target.clone();
        let info = self.info;
        let attempt = async move {
            let mut conn = Connection::open(&target, CONNECT_TIMEOUT).await?;
            conn.publish(&target, CONNECT_TIMEOUT, &info).await?;
            Ok(conn)
        };
        tokio::pin!(attempt);
        loop {
            tokio::select! {
                result = &mut attempt => return Some(result),
                frame = self.frames.recv() => {
                    frame.as_ref()?;
                }
            }
        }
    }

    /// Drop frames until `until`; false if the stream ended.
    async fn idle_until(&mut self, until: Instant) -> bool {
        loop {
            tokio::select! {
                () = sleep_until(until) => return true,
                frame = self.frames.recv() => {
                    if frame.is_none() {
                        return false;
                    }
                }
            }
        }
    }

    /// Send frames at their time until the stream ends or the connection fails.
    async fn stream(&mut self, mut conn: Connection) -> Ended {
        let mut feed = FlvFeed::new(self.info.sample_rate);
        self.keyframe.store(true, Ordering::Relaxed);
        let mut next_report = Instant::now() + DELAY_REPORT_EVERY;
        loop {
            tokio::select! {
                n = conn.readable() => {
                    let result = match n {
                        Ok(n) => conn.received(n).await,
                        Err(e) => Err(RtmpError::Io(e)),
                    };
                    if let Err(e) = result {
                        return Ended::Failed(e);
                    }
                }
                frame = self.frames.recv() => {
                    let Some(frame) = frame else {
                        conn.close().await;
                        return Ended::Finished;
                    };
                    let codec = &frame.codec;
                    let tags = match feed.push(&frame.unit, &codec.sps, &codec.pps, &codec.asc) {
                        Ok(tags) => tags,
                        Err(e) => {
                            tracing::warn!(error = %e, "RTMP: a frame could not be packaged");
                            Vec::new()
                        }
                    };
                    if feed.waiting_for_keyframe() {
                        self.keyframe.store(true, Ordering::Relaxed);
                    }
                    if tags.is_empty() {
                        continue;
                    }
                    let due = Instant::from_std(frame.due);
                    let behind = Instant::now().saturating_duration_since(due);
                    if behind > MAX_BEHIND {
                        return Ended::Behind(behind);
                    }
                    // Frames go out at their real time, not ahead.
                    sleep_until(due).await;
                    for tag in &tags {
                        match timeout(WRITE_TIMEOUT, conn.send(tag)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => return Ended::Failed(e),
                            Err(_) => return Ended::Failed(RtmpError::Timeout {
                                stage: "sending",
                                ms: WRITE_TIMEOUT.as_millis() as u64,
                            }),
                        }
                    }
                    let now = Instant::now();
                    self.delays.record(now.saturating_duration_since(due));
                    if now >= next_report {
                        next_report = now + DELAY_REPORT_EVERY;
                        tracing::debug!(
                            target = %self.target,
                            frames = self.delays.total(),
                            delay_median_ms = self.delays.quantile(0.5),
                            delay_p95_ms = self.delays.quantile(0.95),
                            "RTMP frames sent so far; their delay after media time"
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_histogram_gives_median_and_tail_in_whole_milliseconds() {
        let mut h = DelayHistogram::new();
        for ms in [0u64, 1, 1, 2, 2, 2, 3, 9, 40, 5000] {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(h.total(), 10);
        assert_eq!(h.quantile(0.5), 2);
        assert_eq!(h.quantile(0.9), 40);
        assert_eq!(
            h.quantile(1.0),
            DelayHistogram::BUCKETS,
            "overflow counts at the top"
        );
        assert_eq!(DelayHistogram::new().quantile(0.5), DelayHistogram::BUCKETS);
    }

    #[test]
    fn a_status_serializes_for_the_page_without_empty_fields() {
        let s = PublishStatus {
            state: PublishState::Retrying,
            target: "rtmp://h:1935/live/…".into(),
            reason: Some("cannot reach".into()),
            retry_in_ms: Some(2000),
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["state"], "retrying");
        assert_eq!(v["retry_in_ms"], 2000);
        let live = PublishStatus {
            state: PublishState::Live,
            reason: None,
            retry_in_ms: None,
            ..s
        };
        let v = serde_json::to_value(&live).unwrap();
        assert_eq!(v["state"], "live");
        assert!(v.get("reason").is_none() && v.get("retry_in_ms").is_none());
    }
}
