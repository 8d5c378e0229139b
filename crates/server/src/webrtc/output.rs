//! The WebRTC output of one stream: its viewers ([`Peer`]s), the Opus stage, and a small queue
//! that releases each frame when it is due. Sans-I/O like the peers: the media side pushes
//! [`EncodedUnit`]s with the wall time of media time 0, the I/O side passes datagrams and `now`
//! and sends what [`WebRtcOutput::take_transmits`] returns.
//!
//! Timing: one clock for both tracks. Video RTP time is the unit's 90 kHz pts, audio RTP time the
//! 48 kHz position of its samples; a frame is due at `media_start + media time`, and that due
//! time is also the wallclock str0m derives sender reports from. Units pushed ahead of their time
//! (the media thread renders speech a little early) wait here; [`WebRtcOutput::clear_pending`]
//! (barge-in) drops everything not yet sent, so nothing of an interrupted answer reaches a viewer
//! after the interrupt. Units pushed late (the media side fell behind real time) are not sent in
//! a burst: the output delays the stream by the lateness and works the delay off slowly
//! ([`MAX_LATENESS`], [`CATCH_UP_STEP`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use talkstream_media::encoder::FrameEncoder;
use talkstream_media::EncodedUnit;

use super::h264::avcc_to_annex_b;
use super::opus::{OpusStage, OPUS_CLOCK};
use super::peer::{Datagram, Peer, PeerEvent};
use super::WebRtcError;

/// Keyframe requests reach the encoder at most this often.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);
/// At most this many items (video frames + Opus packets, ~12 s) wait; beyond, the queue is
/// dropped as on a barge-in (the media side is far ahead of the clock, which it should not be).
pub const MAX_PENDING: usize = 900;

/// When the media side falls behind real time (an overloaded machine) and a frame is this late,
/// the output delays everything by the lateness instead of sending the backlog in a burst: a
/// burst sits in the viewer's audio jitter buffer as latency it drains only slowly, while a
/// steady stream a little later plays smoothly.
pub const MAX_LATENESS: Duration = Duration::from_millis(150);

/// Every video frame that goes out on time while the output is delaying shortens the delay by
/// this much (at 25 fps the viewer catches up at 5 % above real time).
pub const CATCH_UP_STEP: Duration = Duration::from_millis(2);

/// An item sent at most this long after its time counts as on time (timer jitter).
const ON_TIME: Duration = Duration::from_millis(10);

/// At most one warning about a raised delay per this long.
const LATE_WARNING_EVERY: Duration = Duration::from_secs(10);

/// Opus packets go out this long after their due time (their sender-report time stays the due
/// time, so the browser still lines voice and lips up). A frame's PCM completes packets up to
/// 20 ms past their time (the packet grid does not follow the frame grid); sent at once, they
/// would leave in pairs, and the browser's audio jitter buffer would grow to absorb that. A
/// steady 20 ms rhythm keeps its buffer, and so the voice's delay, small.
pub const AUDIO_SEND_DELAY: Duration = Duration::from_millis(25);

/// Settings of one stream's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputConfig {
    /// Viewers at most.
    pub max_viewers: usize,
    /// Host candidates every viewer is offered (the shared UDP socket's advertised addresses).
    pub candidates: Vec<SocketAddr>,
    /// The stream's audio sample rate.
    pub sample_rate: u32,
}

#[derive(Debug)]
enum Pending {
    Video {
        due: Instant,
        pts: u64,
        idr: bool,
        data: Arc<[u8]>,
    },
    Audio {
        due: Instant,
        rtp_time: u64,
        data: Arc<[u8]>,
    },
}

impl Pending {
    /// When it goes out: video at its due time, audio [`AUDIO_SEND_DELAY`] after, both `delay`
    /// later while the media side is catching up.
    fn send_at(&self, delay: Duration) -> Instant {
        match self {
            Pending::Video { due, .. } => *due + delay,
            Pending::Audio { due, .. } => *due + AUDIO_SEND_DELAY + delay,
        }
    }
}

/// One stream's WebRTC output. See the module docs.
#[derive(Debug)]
pub struct WebRtcOutput {
    cfg: OutputConfig,
    opus: OpusStage,
    viewers: HashMap<String, Peer>,
    media_start: Option<Instant>,
    queue: VecDeque<Pending>,
    keyframe_wanted: bool,
    last_keyframe_request: Option<Instant>,
    transmits: Vec<Datagram>,
    next_viewer: u64,
    /// How much later than their time items go out, after the media side fell behind.
    delay: Duration,
    /// The largest `delay` so far.
    max_delay: Duration,
    last_late_warning: Option<Instant>,
}

impl WebRtcOutput {
    /// An output without viewers.
    pub fn new(cfg: OutputConfig) -> Result<Self, WebRtcError> {
        let opus = OpusStage::new(cfg.sample_rate)?;
        Ok(Self {
            cfg,
            opus,
            viewers: HashMap::new(),
            media_start: None,
            queue: VecDeque::new(),
            keyframe_wanted: false,
            last_keyframe_request: None,
            transmits: Vec::new(),
            next_viewer: 0,
            delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            last_late_warning: None,
        })
    }

    /// Answers a viewer's SDP offer: returns its id (unique in this output) and the SDP answer.
    /// The viewer's video starts at the next IDR, which is requested.
    pub fn add_viewer(
        &mut self,
        offer: &str,
        now: Instant,
    ) -> Result<(String, String), WebRtcError> {
        if self.viewers.len() >= self.cfg.max_viewers {
            return Err(WebRtcError::TooManyViewers {
                max: self.cfg.max_viewers,
            });
        }
        let (peer, answer) = Peer::accept(offer, &self.cfg.candidates, now)?;
        self.next_viewer += 1;
        let id = format!("{:x}{:08x}", self.next_viewer, random_u32());
        self.viewers.insert(id.clone(), peer);
        tracing::info!(viewer = %id, viewers = self.viewers.len(), "WebRTC viewer added");
        Ok((id, answer))
    }

    /// Ends a viewer (DTLS close_notify goes out with the next transmits). False if unknown.
    pub fn remove_viewer(&mut self, id: &str) -> bool {
        let Some(mut peer) = self.viewers.remove(id) else {
            return false;
        };
        peer.close();
        self.transmits.extend(peer.take_transmits());
        tracing::info!(viewer = %id, viewers = self.viewers.len(), "WebRTC viewer removed");
        true
    }

    /// Viewers now.
    pub fn viewer_count(&self) -> usize {
        self.viewers.len()
    }

    /// True if the viewer is listed.
    pub fn has_viewer(&self, id: &str) -> bool {
        self.viewers.contains_key(id)
    }

    /// Items (frames and Opus packets) waiting for their time.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Takes one encoded frame of the stream: its H.264 access unit and its PCM (as Opus).
    /// `encoder` gives the SPS/PPS (put in front of IDRs); `media_start` is the wall time of media
    /// time 0 (the first call's value is kept). Without viewers nothing is done (no Opus encode
    /// for streams nobody watches over WebRTC; the packet grid restarts with the first viewer).
    pub fn push(
        &mut self,
        unit: &EncodedUnit,
        encoder: &FrameEncoder,
        media_start: Instant,
    ) -> Result<(), WebRtcError> {
        let start = *self.media_start.get_or_insert(media_start);
        if self.viewers.is_empty() {
            return Ok(());
        }
        let packets = self.opus.push(unit.pcm_start, &unit.pcm)?;
        let video = &unit.video;
        let params = if video.idr {
            match (encoder.sps(), encoder.pps()) {
                (Some(sps), Some(pps)) => Some((sps, pps)),
                _ => return Err(WebRtcError::NoParameterSets),
            }
        } else {
            None
        };
        let data: Arc<[u8]> = avcc_to_annex_b(&video.data, params)?.into();
        self.enqueue(Pending::Video {
            due: start + ticks(video.pts, 90_000),
            pts: video.pts,
            idr: video.idr,
            data,
        });
        for p in packets {
            self.enqueue(Pending::Audio {
                due: start + ticks(p.rtp_time, OPUS_CLOCK),
                rtp_time: p.rtp_time,
                data: p.data.into(),
            });
        }
        if self.queue.len() > MAX_PENDING {
            tracing::warn!(
                pending = self.queue.len(),
                "WebRTC output queue overflow: dropping queued media"
            );
            self.clear_pending();
        }
        Ok(())
    }

    fn enqueue(&mut self, item: Pending) {
        let send_at = item.send_at(self.delay);
        let at = self
            .queue
            .partition_point(|p| p.send_at(self.delay) <= send_at);
        self.queue.insert(at, item);
    }

    /// Barge-in: drops every queued, unsent unit. Video resumes at the next IDR, which is
    /// requested.
    pub fn clear_pending(&mut self) {
        let dropped = self.queue.len();
        self.queue.clear();
        if dropped > 0 && !self.viewers.is_empty() {
            for peer in self.viewers.values_mut() {
                peer.restart_at_idr();
            }
            self.keyframe_wanted = true;
        }
        tracing::debug!(dropped, "WebRTC output cleared its queue");
    }

    /// True if the datagram is for one of the viewers; it is then handled.
    pub fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> bool {
        let Some(peer) = self
            .viewers
            .values_mut()
            .find(|p| p.accepts(now, source, destination, data))
        else {
            return false;
        };
        peer.receive(now, source, destination, data);
        true
    }

    /// Advances to `now`: sends the frames that are due to every viewer, runs the viewers'
    /// timers, collects keyframe requests, and ends viewers that timed out or disconnected.
    pub fn poll(&mut self, now: Instant) {
        while self
            .queue
            .front()
            .is_some_and(|p| p.send_at(self.delay) <= now)
        {
            let Some(item) = self.queue.pop_front() else {
                break;
            };
            let late = now.saturating_duration_since(item.send_at(self.delay));
            if late > MAX_LATENESS {
                self.raise_delay(late, now);
            } else if late <= ON_TIME && matches!(item, Pending::Video { .. }) {
                self.delay = self.delay.saturating_sub(CATCH_UP_STEP);
            }
            for peer in self.viewers.values_mut() {
                match &item {
                    Pending::Video {
                        due,
                        pts,
                        idr,
                        data,
                    } => peer.send_video(*pts, *idr, data, *due),
                    Pending::Audio {
                        due,
                        rtp_time,
                        data,
                    } => peer.send_audio(*rtp_time, data, *due),
                }
            }
        }
        let mut ended = Vec::new();
        for (id, peer) in &mut self.viewers {
            peer.tick(now);
            for event in peer.take_events() {
                match event {
                    PeerEvent::KeyframeRequest => self.keyframe_wanted = true,
                    PeerEvent::Connected => {
                        tracing::info!(viewer = %id, "WebRTC viewer connected")
                    }
                }
            }
            if peer.waiting_for_idr() && peer.is_connected() {
                self.keyframe_wanted = true;
            }
            self.transmits.extend(peer.take_transmits());
            if let Some(why) = peer.ended() {
                ended.push((id.clone(), why));
            }
        }
        for (id, why) in ended {
            self.viewers.remove(&id);
            tracing::info!(viewer = %id, ?why, viewers = self.viewers.len(), "WebRTC viewer ended");
        }
    }

    /// How much later than their time frames go out now (see [`MAX_LATENESS`]).
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// The largest delay so far.
    pub fn max_delay(&self) -> Duration {
        self.max_delay
    }

    fn raise_delay(&mut self, late: Duration, now: Instant) {
        self.delay += late;
        self.max_delay = self.max_delay.max(self.delay);
        let quiet = self
            .last_late_warning
            .is_some_and(|t| now.saturating_duration_since(t) < LATE_WARNING_EVERY);
        if !quiet {
            tracing::warn!(
                delay_ms = self.delay.as_millis() as u64,
                "the stream is behind real time (machine overloaded?): WebRTC viewers get it \
                 later, then catch up"
            );
            self.last_late_warning = Some(now);
        }
    }

    /// Datagrams to send, in order.
    pub fn take_transmits(&mut self) -> Vec<Datagram> {
        std::mem::take(&mut self.transmits)
    }

    /// True if the encoder should make the next frame an IDR (a viewer asked with PLI/FIR, a new
    /// viewer needs one, or the queue was cleared); at most once per [`KEYFRAME_INTERVAL`].
    pub fn take_keyframe_request(&mut self, now: Instant) -> bool {
        if !self.keyframe_wanted {
            return false;
        }
        if self
            .last_keyframe_request
            .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_INTERVAL)
        {
            return false;
        }
        self.keyframe_wanted = false;
        self.last_keyframe_request = Some(now);
        true
    }

    /// When [`WebRtcOutput::poll`] is next needed: the next due item or viewer timer.
    pub fn next_timeout(&self) -> Option<Instant> {
        let due = self.queue.front().map(|p| p.send_at(self.delay));
        let timers = self.viewers.values().map(Peer::next_timeout).min();
        match (due, timers) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Ends every viewer (the stream ended).
    pub fn close(&mut self) {
        let ids: Vec<String> = self.viewers.keys().cloned().collect();
        for id in ids {
            self.remove_viewer(&id);
        }
        self.queue.clear();
    }
}

/// `t` ticks of a `rate` Hz clock as a duration.
fn ticks(t: u64, rate: u32) -> Duration {
    let nanos = u128::from(t) * 1_000_000_000 / u128::from(rate.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // Ids only need to be unique per output (the counter makes them so); randomness makes them
    // hard to guess.
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b)
}
