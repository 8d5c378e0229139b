//! One viewer's WebRTC connection on str0m, sans-I/O: the SDP offer is answered at once (ICE-lite,
//! host candidates only, H.264 packetization-mode 1 + Opus 48 kHz, both tracks in one
//! MediaStream), datagrams and time go in, datagrams to send and [`PeerEvent`]s come out. The
//! peer never reads the clock and owns no socket; [`super::output`] drives it.
//!
//! Video starts at an IDR: until the viewer is connected and an IDR is written, delta frames are
//! dropped (and a keyframe is asked for). A peer ends when ICE disconnects, DTLS closes, it does
//! not connect within [`CONNECT_TIMEOUT`], or nothing arrives from it for [`IDLE_TIMEOUT`].

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::crypto::CryptoProvider;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use super::WebRtcError;

/// A viewer that has not connected (ICE + DTLS) this long after its offer is dropped.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// A connected viewer from which nothing (STUN consent, RTCP) arrived this long is dropped.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// The H.264 profile the stream is encoded with (openh264: Constrained Baseline, level 3.1).
pub const H264_PROFILE: u32 = 0x42e01f;
/// The MediaStream id both tracks share in every answer (browsers sync tracks of one stream).
pub const STREAM_ID: &str = "talkstream";

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Local address (the candidate) it leaves from.
    pub source: SocketAddr,
    /// Where it goes.
    pub destination: SocketAddr,
    /// The bytes.
    pub data: Vec<u8>,
}

/// What a peer reports to its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerEvent {
    /// ICE and DTLS are up: media can flow.
    Connected,
    /// The viewer asked for a keyframe (PLI/FIR), or needs one to start.
    KeyframeRequest,
}

/// Why a peer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerEnd {
    /// ICE disconnected or DTLS closed.
    Disconnected,
    /// It never connected within [`CONNECT_TIMEOUT`].
    ConnectTimeout,
    /// Nothing arrived from it within [`IDLE_TIMEOUT`].
    Idle,
    /// str0m failed on its input.
    Failed,
}

fn crypto() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(str0m::crypto::from_feature_flags())))
}

/// Sender reports for audio as often as for video. The browser lines voice and lips up only once
/// it has two reports of each track (it maps RTP time to the sender's clock with them); at
/// str0m's default of one audio report per 5 s the lips run ahead of the voice for the first
/// ten seconds of every viewer.
const AUDIO_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// The str0m configuration of a sending peer (also used by tests for a receiving one).
pub fn rtc_config() -> RtcConfig {
    RtcConfig::new()
        .set_crypto_provider(crypto())
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .set_rtcp_report_interval_audio(AUDIO_REPORT_INTERVAL)
}

/// Checks an offer before str0m sees it: it must parse, and offer H.264 video and Opus audio.
fn check_offer(sdp: &str) -> Result<SdpOffer, WebRtcError> {
    let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| WebRtcError::BadOffer {
        reason: format!("not an SDP offer: {e}"),
    })?;
    if !section_has_codec(sdp, "video", "h264/90000") {
        return Err(WebRtcError::BadOffer {
            reason: "the offer has no H.264 video (needed: H264/90000, packetization-mode=1)"
                .into(),
        });
    }
    if !section_has_codec(sdp, "audio", "opus/48000") {
        return Err(WebRtcError::BadOffer {
            reason: "the offer has no Opus audio (needed: opus/48000)".into(),
        });
    }
    Ok(offer)
}

/// True if an `m=<kind>` section of `sdp` has an `a=rtpmap` for `codec` (lowercase `name/rate`).
fn section_has_codec(sdp: &str, kind: &str, codec: &str) -> bool {
    let mut in_kind = false;
    for line in sdp.lines() {
        let line = line.trim();
        if let Some(m) = line.strip_prefix("m=") {
            in_kind = m.split(' ').next() == Some(kind);
        } else if in_kind {
            if let Some(map) = line.strip_prefix("a=rtpmap:") {
                let name = map.split(' ').nth(1).unwrap_or("").to_ascii_lowercase();
                if name.starts_with(codec) {
                    return true;
                }
            }
        }
    }
    false
}

/// Puts every track of an answer into the one MediaStream [`STREAM_ID`] with one CNAME: str0m
/// makes up a stream id per m-line when the offer has none (recvonly transceivers), and browsers
/// only keep tracks of the same stream in sync.
pub fn unify_msid(answer: &str) -> String {
    let mut cname: Option<String> = None;
    let mut out = String::with_capacity(answer.len() + 64);
    for line in answer.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let eol = &line[body.len()..];
        if body.starts_with("a=msid-semantic:") {
            out.push_str("a=msid-semantic: WMS ");
            out.push_str(STREAM_ID);
        } else if let Some(rest) = body.strip_prefix("a=msid:") {
            let track = rest.split(' ').nth(1).unwrap_or("");
            out.push_str(&format!("a=msid:{STREAM_ID} {track}"));
        } else if let Some((ssrc, attr)) =
            body.strip_prefix("a=ssrc:").and_then(|r| r.split_once(' '))
        {
            if let Some(value) = attr.strip_prefix("msid:") {
                let track = value.split(' ').nth(1).unwrap_or("");
                out.push_str(&format!("a=ssrc:{ssrc} msid:{STREAM_ID} {track}"));
            } else if let Some(value) = attr.strip_prefix("cname:") {
                let c = cname.get_or_insert_with(|| value.to_string());
                out.push_str(&format!("a=ssrc:{ssrc} cname:{c}"));
            } else {
                out.push_str(body);
            }
        } else {
            out.push_str(body);
        }
        out.push_str(eol);
    }
    out
}

/// The m-lines an answer accepts (port not 0) and sends on (`sendonly`/`sendrecv`): their
/// kind and mid.
fn answered_media(answer: &str) -> Vec<(MediaKind, Mid)> {
    struct Section {
        kind: Option<MediaKind>,
        mid: Option<Mid>,
        sending: bool,
    }
    let mut sections: Vec<Section> = Vec::new();
    for line in answer.lines() {
        let line = line.trim();
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split(' ');
            let kind = parts.next();
            let accepted = parts.next().is_some_and(|port| port != "0");
            sections.push(Section {
                kind: match kind {
                    Some("video") if accepted => Some(MediaKind::Video),
                    Some("audio") if accepted => Some(MediaKind::Audio),
                    _ => None,
                },
                mid: None,
                sending: false,
            });
        } else if let Some(section) = sections.last_mut() {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                section.mid = Some(Mid::from(mid));
            } else if line == "a=sendonly" || line == "a=sendrecv" {
                section.sending = true;
            }
        }
    }
    sections
        .into_iter()
        .filter(|s| s.sending)
        .filter_map(|s| Some((s.kind?, s.mid?)))
        .collect()
}

/// One viewer. See the module docs.
#[derive(Debug)]
pub struct Peer {
    rtc: Rtc,
    video: Option<(Mid, Pt)>,
    audio: Option<(Mid, Pt)>,
    created: Instant,
    last_rx: Instant,
    connected: bool,
    /// Video is dropped until an IDR has been written.
    need_idr: bool,
    /// A first video frame went out. Audio waits for it: the browser starts playing when it
    /// can show a picture, and audio that arrived before would sit in its jitter buffer as
    /// latency for many seconds.
    video_started: bool,
    ended: Option<PeerEnd>,
    next_timeout: Instant,
    transmits: Vec<Datagram>,
    events: Vec<PeerEvent>,
}

impl Peer {
    /// Answers `offer_sdp` with a peer that advertises `candidates` (host addresses of the shared
    /// UDP socket). Returns the peer and the SDP answer.
    pub fn accept(
        offer_sdp: &str,
        candidates: &[SocketAddr],
        now: Instant,
    ) -> Result<(Self, String), WebRtcError> {
        let offer = check_offer(offer_sdp)?;
        let mut rtc = rtc_config().set_ice_lite(true).build(now);
        for addr in candidates {
            let candidate = Candidate::host(*addr, "udp").map_err(|e| WebRtcError::Candidate {
                addr: *addr,
                reason: e.to_string(),
            })?;
            rtc.add_local_candidate(candidate);
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WebRtcError::BadOffer {
                reason: format!("the offer cannot be answered: {e}"),
            })?;
        let answer = unify_msid(&answer.to_sdp_string());
        let mut peer = Self {
            rtc,
            video: None,
            audio: None,
            created: now,
            last_rx: now,
            connected: false,
            need_idr: true,
            video_started: false,
            ended: None,
            next_timeout: now,
            transmits: Vec::new(),
            events: Vec::new(),
        };
        for (kind, mid) in answered_media(&answer) {
            peer.pick_payload(mid, kind);
        }
        peer.drain();
        if peer.video.is_none() {
            return Err(WebRtcError::BadOffer {
                reason:
                    "no H.264 (packetization-mode=1, Constrained Baseline) video track could be \
                         negotiated from the offer"
                        .into(),
            });
        }
        if peer.audio.is_none() {
            return Err(WebRtcError::BadOffer {
                reason: "no Opus audio track could be negotiated from the offer".into(),
            });
        }
        Ok((peer, answer))
    }

    /// True if this datagram belongs to this peer.
    pub fn accepts(
        &self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> bool {
        let Ok(contents) = data.try_into() else {
            return false;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        self.rtc.accepts(&input)
    }

    /// Feeds a datagram that [`Peer::accepts`].
    pub fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        let Ok(contents) = data.try_into() else {
            return;
        };
        self.last_rx = now;
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::debug!(error = %e, "WebRTC viewer input failed");
            self.end(PeerEnd::Failed);
        }
        self.drain();
    }

    /// Advances the peer's timers to `now` and checks its timeouts.
    pub fn tick(&mut self, now: Instant) {
        if self.ended.is_some() {
            return;
        }
        if !self.connected && now.saturating_duration_since(self.created) >= CONNECT_TIMEOUT {
            self.end(PeerEnd::ConnectTimeout);
            return;
        }
        if self.connected && now.saturating_duration_since(self.last_rx) >= IDLE_TIMEOUT {
            self.end(PeerEnd::Idle);
            return;
        }
        if now >= self.next_timeout {
            if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                tracing::debug!(error = %e, "WebRTC viewer timer failed");
                self.end(PeerEnd::Failed);
            }
            self.drain();
        }
    }

    /// When the peer next needs [`Peer::tick`].
    pub fn next_timeout(&self) -> Instant {
        self.next_timeout
    }

    /// Why the peer ended, once it has.
    pub fn ended(&self) -> Option<PeerEnd> {
        self.ended
    }

    /// True once ICE and DTLS are up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// True while video is held back until the next IDR.
    pub fn waiting_for_idr(&self) -> bool {
        self.need_idr
    }

    /// Datagrams to send, in order.
    pub fn take_transmits(&mut self) -> Vec<Datagram> {
        std::mem::take(&mut self.transmits)
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<PeerEvent> {
        std::mem::take(&mut self.events)
    }

    /// Sends one H.264 access unit (Annex-B, SPS/PPS in front of IDRs) at RTP time `pts` (90 kHz)
    /// with `wallclock` its due time (the sender reports' clock). Before the viewer is connected,
    /// and until an IDR, frames are dropped.
    pub fn send_video(&mut self, pts: u64, idr: bool, annex_b: &Arc<[u8]>, wallclock: Instant) {
        if !self.connected || self.ended.is_some() {
            return;
        }
        if self.need_idr && !idr {
            return;
        }
        let Some((mid, pt)) = self.video else { return };
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        match writer.write(
            pt,
            wallclock,
            MediaTime::from_90khz(pts),
            Arc::clone(annex_b),
        ) {
            Ok(()) => {
                self.need_idr = false;
                self.video_started = true;
            }
            Err(e) => tracing::debug!(error = %e, "writing video to a WebRTC viewer failed"),
        }
        self.drain();
    }

    /// Sends one Opus packet at RTP time `rtp_time` (48 kHz), due at `wallclock`.
    pub fn send_audio(&mut self, rtp_time: u64, data: &Arc<[u8]>, wallclock: Instant) {
        if !self.connected || self.ended.is_some() || !self.video_started {
            return;
        }
        let Some((mid, pt)) = self.audio else { return };
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        let time = MediaTime::new(rtp_time, str0m::media::Frequency::FORTY_EIGHT_KHZ);
        if let Err(e) = writer.write(pt, wallclock, time, Arc::clone(data)) {
            tracing::debug!(error = %e, "writing audio to a WebRTC viewer failed");
        }
        self.drain();
    }

    /// Holds video back until the next IDR (after queued frames were dropped).
    pub fn restart_at_idr(&mut self) {
        self.need_idr = true;
    }

    /// Closes the connection (DTLS close_notify); the peer ends.
    pub fn close(&mut self) {
        self.rtc.disconnect();
        self.drain();
        self.end(PeerEnd::Disconnected);
    }

    fn end(&mut self, why: PeerEnd) {
        if self.ended.is_none() {
            tracing::debug!(?why, "WebRTC viewer ended");
            self.ended = Some(why);
        }
    }

    /// Drains str0m's output: datagrams, events, the next timeout.
    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => self.transmits.push(Datagram {
                    source: t.source,
                    destination: t.destination,
                    data: t.contents.into(),
                }),
                Ok(Output::Event(e)) => self.on_event(e),
                Err(e) => {
                    tracing::debug!(error = %e, "WebRTC viewer failed");
                    self.end(PeerEnd::Failed);
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                self.connected = true;
                self.events.push(PeerEvent::Connected);
                if self.need_idr {
                    self.events.push(PeerEvent::KeyframeRequest);
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) | Event::Closed => {
                self.end(PeerEnd::Disconnected)
            }
            Event::MediaAdded(m) => {
                let sending = matches!(m.direction, Direction::SendOnly | Direction::SendRecv);
                if sending {
                    self.pick_payload(m.mid, m.kind);
                }
            }
            Event::KeyframeRequest(_) => self.events.push(PeerEvent::KeyframeRequest),
            _ => {}
        }
    }

    /// Chooses the payload type for a negotiated m-line: H.264 packetization-mode 1 of our
    /// profile (or plain Baseline, which decodes it), or Opus.
    fn pick_payload(&mut self, mid: Mid, kind: MediaKind) {
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        let params: Vec<_> = writer.payload_params().cloned().collect();
        match kind {
            MediaKind::Video if self.video.is_none() => {
                let rank = |p: &&str0m::format::PayloadParams| {
                    let spec = p.spec();
                    match spec.format.profile_level_id {
                        Some(H264_PROFILE) => 0,
                        _ => 1,
                    }
                };
                let mut h264: Vec<_> = params
                    .iter()
                    .filter(|p| {
                        let spec = p.spec();
                        spec.codec == Codec::H264
                            && spec.format.packetization_mode == Some(1)
                            && matches!(
                                spec.format.profile_level_id,
                                Some(H264_PROFILE) | Some(0x42001f)
                            )
                    })
                    .collect();
                h264.sort_by_key(rank);
                self.video = h264.first().map(|p| (mid, p.pt()));
            }
            MediaKind::Audio if self.audio.is_none() => {
                self.audio = params
                    .iter()
                    .find(|p| p.spec().codec == Codec::Opus)
                    .map(|p| (mid, p.pt()));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answered_media_lists_the_sending_m_lines() {
        let answer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendonly\r\n\
                      m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=sendrecv\r\n\
                      m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=inactive\r\n\
                      m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:3\r\na=recvonly\r\n";
        assert_eq!(
            answered_media(answer),
            [
                (MediaKind::Video, Mid::from("0")),
                (MediaKind::Audio, Mid::from("1"))
            ]
        );
    }

    #[test]
    fn msids_and_cnames_are_unified() {
        let answer = "v=0\r\na=msid-semantic: WMS a b\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
                      a=msid:a t1\r\na=ssrc:1 cname:x\r\na=ssrc:1 msid:a t1\r\n\
                      m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=msid:b t2\r\na=ssrc:2 cname:y\r\n\
                      a=ssrc:2 msid:b t2\r\n";
        let out = unify_msid(answer);
        assert_eq!(
            out,
            "v=0\r\na=msid-semantic: WMS talkstream\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
             a=msid:talkstream t1\r\na=ssrc:1 cname:x\r\na=ssrc:1 msid:talkstream t1\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=msid:talkstream t2\r\na=ssrc:2 cname:x\r\n\
             a=ssrc:2 msid:talkstream t2\r\n"
        );
    }

    #[test]
    fn offers_are_checked_for_both_codecs() {
        let sdp = "m=audio 9 UDP 111\r\na=rtpmap:111 opus/48000/2\r\nm=video 9 UDP 96\r\n\
                   a=rtpmap:96 H264/90000\r\n";
        assert!(section_has_codec(sdp, "video", "h264/90000"));
        assert!(section_has_codec(sdp, "audio", "opus/48000"));
        assert!(!section_has_codec(sdp, "audio", "h264/90000"));
        assert!(matches!(
            check_offer("garbage"),
            Err(WebRtcError::BadOffer { .. })
        ));
    }
}
