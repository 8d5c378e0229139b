//! The WebRTC output against a real receiving peer: WHEP signalling through the server's router
//! (answer, `Location`, one MediaStream, 404/400/405, `DELETE` frees the viewer), and a second
//! str0m instance that receives H.264 and Opus from a [`WebRtcOutput`] fed by a real
//! `LiveChannel`, driven in virtual time (datagrams passed in memory, time passed in); and the
//! whole path in the real binary: a session's media thread feeds its WebRTC output, a receiving
//! peer on a loopback UDP socket plays it.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clap::Parser;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use talkstream::config::Cli;
use talkstream::server::AppState;
use talkstream::webrtc::h264::nal_types;
use talkstream::webrtc::output::AUDIO_SEND_DELAY;
use talkstream::webrtc::peer::rtc_config;
use talkstream::webrtc::{OutputConfig, WebRtcOutput};
use talkstream_media::{ChannelConfig, I420Frame, LiveChannel};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// A receiving peer like a browser's: two recvonly transceivers, video first.
/// Returns the peer, its offer, the pending offer and the video mid.
fn receiver_with_mid(
    cfg: RtcConfig,
    at: SocketAddr,
    now: Instant,
) -> (Rtc, String, SdpPendingOffer, Mid) {
    let mut rtc = cfg.build(now);
    rtc.add_local_candidate(Candidate::host(at, "udp").unwrap());
    let mut api = rtc.sdp_api();
    let video = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    (rtc, offer.to_sdp_string(), pending, video)
}

fn receiver(cfg: RtcConfig, at: SocketAddr, now: Instant) -> (Rtc, String, SdpPendingOffer) {
    let (rtc, offer, pending, _) = receiver_with_mid(cfg, at, now);
    (rtc, offer, pending)
}

fn browser_like(now: Instant) -> (Rtc, String, SdpPendingOffer) {
    receiver(rtc_config(), "127.0.0.1:40000".parse().unwrap(), now)
}

struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    ctype: Option<&str>,
    body: &str,
) -> Reply {
    request_with(addr, method, path, ctype, "", body).await
}

/// [`request`] with extra header lines (each ending in `\r\n`).
async fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    ctype: Option<&str>,
    extra: &str,
    body: &str,
) -> Reply {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let ctype = ctype
        .map(|c| format!("Content-Type: {c}\r\n"))
        .unwrap_or_default()
        + extra;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{ctype}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_signalling_answers_locates_refuses_and_frees() {
    let dir = std::env::temp_dir().join(format!("talkstream-whep-{}", std::process::id()));
    let hls = dir.join("hls").display().to_string();
    let cli = Cli::try_parse_from([
        "talkstream",
        "--hls-dir",
        &hls,
        "--port",
        "0",
        "--webrtc",
        "on",
        "--webrtc-max-viewers",
        "2",
    ])
    .unwrap();
    let shutdown = CancellationToken::new();
    let state = AppState::build(cli.config, shutdown.clone()).unwrap();
    let hub = state.webrtc.clone().expect("WebRTC is on");
    let stream = hub.open_stream("00000000000000ab", 22_050).unwrap();
    let (tx, _rx) = mpsc::channel();
    let registration = state.streams.register_with_webrtc(
        "00000000000000ab",
        "00000000000000ab",
        tx,
        Default::default(),
        Some(stream.clone()),
    );
    assert_eq!(registration.entry().whep(), Some("/whep/00000000000000ab"));

    let (addr, server) = common::serve_router(Arc::clone(&state), shutdown.clone()).await;

    // A browser-like offer: 201, Location, an SDP answer with H.264 and Opus in one stream.
    let (_rtc, offer, _pending) = browser_like(Instant::now());
    let r = request(
        addr,
        "POST",
        "/whep/00000000000000ab",
        Some("application/sdp"),
        &offer,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/sdp");
    let location = r.headers["location"].clone();
    assert!(
        location.starts_with("/whep/00000000000000ab/"),
        "{location}"
    );
    let answer = &r.body;
    assert!(SdpAnswer::from_sdp_string(answer).is_ok(), "{answer}");
    assert!(
        answer.contains("H264/90000") && answer.contains("packetization-mode=1"),
        "{answer}"
    );
    assert!(answer.contains("profile-level-id=42e01f"), "{answer}");
    assert!(answer.contains("opus/48000"), "{answer}");
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(
        answer.contains(&hub.candidate().port().to_string()),
        "{answer}"
    );
    let stream_ids: Vec<&str> = answer
        .lines()
        .filter_map(|l| l.strip_prefix("a=msid:"))
        .map(|v| v.split(' ').next().unwrap())
        .collect();
    assert_eq!(stream_ids.len(), 2, "{answer}");
    assert_eq!(
        stream_ids[0], stream_ids[1],
        "both tracks in one MediaStream"
    );
    assert_eq!(stream.viewer_count(), 1);

    // The same origin checks as /session: another web page may not open a viewer.
    let r = request_with(
        addr,
        "POST",
        "/whep/00000000000000ab",
        Some("application/sdp"),
        "Origin: http://evil.example\r\n",
        &offer,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(stream.viewer_count(), 1);

    // Unknown stream, garbage, an offer without H.264, the wrong content type.
    let r = request(
        addr,
        "POST",
        "/whep/00000000000000ff",
        Some("application/sdp"),
        &offer,
    )
    .await;
    assert_eq!(r.status, 404);
    let r = request(
        addr,
        "POST",
        "/whep/00000000000000ab",
        Some("application/sdp"),
        "hello",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("not an SDP offer"), "{}", r.body);
    let vp8_only = rtc_config()
        .clear_codecs()
        .enable_vp8(true)
        .enable_opus(true, false);
    let (_rtc, no_h264, _pending) =
        receiver(vp8_only, "127.0.0.1:40001".parse().unwrap(), Instant::now());
    let r = request(
        addr,
        "POST",
        "/whep/00000000000000ab",
        Some("application/sdp"),
        &no_h264,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("H.264"), "{}", r.body);
    let no_opus = rtc_config()
        .clear_codecs()
        .enable_h264(true)
        .enable_pcmu(true, false);
    let (_rtc, no_opus, _pending) =
        receiver(no_opus, "127.0.0.1:40002".parse().unwrap(), Instant::now());
    let r = request(
        addr,
        "POST",
        "/whep/00000000000000ab",
        Some("application/sdp"),
        &no_opus,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("Opus"), "{}", r.body);
    let r = request(
        addr,
        "POST",
        "/whep/00000000000000ab",
        Some("text/plain"),
        &offer,
    )
    .await;
    assert_eq!(r.status, 415);
    assert_eq!(stream.viewer_count(), 1);

    // The cap (2 here): a second viewer fits, a third is refused.
    let (_rtc2, offer2, _p2) = browser_like(Instant::now());
    let r = request(
        addr,
        "POST",
        "/whep/00000000000000ab",
        Some("application/sdp"),
        &offer2,
    )
    .await;
    assert_eq!(r.status, 201);
    let second = r.headers["location"].clone();
    let (_rtc3, offer3, _p3) = browser_like(Instant::now());
    let r = request(
        addr,
        "POST",
        "/whep/00000000000000ab",
        Some("application/sdp"),
        &offer3,
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.body);

    // PATCH is not supported; DELETE frees the viewer, a second DELETE finds nothing.
    let r = request(
        addr,
        "PATCH",
        &location,
        Some("application/trickle-ice-sdpfrag"),
        "",
    )
    .await;
    assert_eq!(r.status, 405);
    let r = request(addr, "DELETE", &location, None, "").await;
    assert_eq!(r.status, 204);
    assert_eq!(stream.viewer_count(), 1);
    let viewer = location.rsplit('/').next().unwrap();
    assert!(!stream.has_viewer(viewer));
    let r = request(addr, "DELETE", &location, None, "").await;
    assert_eq!(r.status, 404);
    let r = request(addr, "DELETE", &second, None, "").await;
    assert_eq!(r.status, 204);
    assert_eq!(stream.viewer_count(), 0);

    // The stream ends: its WHEP endpoint is gone.
    drop(registration);
    let r = request(
        addr,
        "POST",
        "/whep/00000000000000ab",
        Some("application/sdp"),
        &offer,
    )
    .await;
    assert_eq!(r.status, 404);

    shutdown.cancel();
    server.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the receiving peer got.
#[derive(Default)]
struct Received {
    /// (RTP time 90 kHz, NAL types) per video frame.
    video: Vec<(u64, Vec<u8>)>,
    /// RTP times (48 kHz) of Opus packets, with their sizes.
    audio: Vec<(u64, usize)>,
    /// (RTP time in seconds, virtual arrival time, audio?) of every frame and packet.
    arrivals: Vec<(f64, Duration, bool)>,
    t0: Option<Instant>,
    connected: bool,
}

/// Drains the receiver: its datagrams go to the output, its media is recorded.
fn drain(
    rtc: &mut Rtc,
    output: &mut WebRtcOutput,
    server: SocketAddr,
    client: SocketAddr,
    now: Instant,
    got: &mut Received,
) {
    loop {
        match rtc.poll_output().unwrap() {
            Output::Timeout(_) => return,
            Output::Transmit(t) => {
                assert_eq!(t.destination, server);
                assert!(output.receive(now, client, server, &t.contents));
            }
            Output::Event(e) => match e {
                Event::Connected => got.connected = true,
                Event::MediaData(d) => {
                    let t0 = got.t0.unwrap();
                    let audio = d.params.spec().codec == str0m::format::Codec::Opus;
                    got.arrivals.push((d.time.as_seconds(), now - t0, audio));
                    match d.params.spec().codec {
                        str0m::format::Codec::H264 => {
                            got.video.push((d.time.numer(), nal_types(&d.data)))
                        }
                        str0m::format::Codec::Opus => {
                            got.audio.push((d.time.numer(), d.data.len()))
                        }
                        other => panic!("unexpected codec {other:?}"),
                    }
                }
                _ => {}
            },
        }
    }
}

/// Moves datagrams between the output and the receiver until both are idle at `now`.
fn exchange(
    output: &mut WebRtcOutput,
    rtc: &mut Rtc,
    server: SocketAddr,
    client: SocketAddr,
    now: Instant,
    got: &mut Received,
) {
    rtc.handle_input(Input::Timeout(now)).unwrap();
    drain(rtc, output, server, client, now, got);
    for _ in 0..100 {
        output.poll(now);
        let transmits = output.take_transmits();
        if transmits.is_empty() {
            return;
        }
        for d in transmits {
            assert_eq!(d.destination, client);
            let input = Input::Receive(
                now,
                Receive {
                    proto: Protocol::Udp,
                    source: server,
                    destination: client,
                    contents: d.data.as_slice().try_into().unwrap(),
                },
            );
            rtc.handle_input(input).unwrap();
            drain(rtc, output, server, client, now, got);
        }
    }
}

/// A receiving peer at `client`, added to `output` as a viewer (offer → answer applied).
fn viewer_of(output: &mut WebRtcOutput, client: SocketAddr, now: Instant) -> (Rtc, Mid) {
    let (mut rtc, offer, pending, video) = receiver_with_mid(rtc_config(), client, now);
    let (_viewer, answer) = output.add_viewer(&offer, now).unwrap();
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();
    (rtc, video)
}

/// The stream rate of the in-memory output tests.
const RATE: u32 = 22_050;

/// A small 25 fps picture for the in-memory output tests.
fn small_channel() -> ChannelConfig {
    ChannelConfig {
        width: 160,
        height: 120,
        fps: 25,
        sample_rate: RATE,
        ..ChannelConfig::default()
    }
}

/// An output whose viewers are offered `server`.
fn output_at(server: SocketAddr, max_viewers: usize) -> WebRtcOutput {
    WebRtcOutput::new(OutputConfig {
        max_viewers,
        candidates: vec![server],
        sample_rate: RATE,
    })
    .unwrap()
}

#[test]
fn a_receiving_peer_gets_h264_from_an_idr_and_opus_on_one_clock() {
    let (rate, cfg) = (RATE, small_channel());
    let mut channel = LiveChannel::new(cfg.clone(), 0).unwrap();
    let server: SocketAddr = "10.0.0.1:7860".parse().unwrap();
    let client: SocketAddr = "10.0.0.2:40000".parse().unwrap();
    let mut output = output_at(server, 4);

    let t0 = Instant::now();
    let media_start = t0;
    let (mut rtc, video_mid) = viewer_of(&mut output, client, t0);

    let mut got = Received {
        t0: Some(t0),
        ..Received::default()
    };
    let mut keyframe_requests = Vec::new();
    let mut idr_frames = Vec::new();
    let mut frame = I420Frame::new(160, 120);
    let lead = Duration::from_millis(120); // the media side renders a little ahead
    let mut pli_sent_at = None;
    let mut now = t0;
    while now < t0 + Duration::from_secs(4) {
        // Produce every frame whose time (minus the lead) has come.
        loop {
            let n = channel.next_frame_index();
            let due = media_start + Duration::from_millis(channel.frame_time_ms(n));
            if due > now + lead {
                break;
            }
            if output.take_keyframe_request(now) {
                keyframe_requests.push(now - t0);
                channel.request_keyframe();
            }
            // Moving picture, a tone for audio.
            for (i, y) in frame.y.iter_mut().enumerate() {
                *y = ((i as u64 + n * 7) % 200 + 16) as u8;
            }
            let start = cfg.encoder().frame_start_sample(n);
            let pcm: Vec<i16> = (0..channel.samples_for_frame(n))
                .map(|i| {
                    let t = (start + i as u64) as f64 / f64::from(rate);
                    ((t * 330.0 * std::f64::consts::TAU).sin() * 6000.0) as i16
                })
                .collect();
            let pushed = channel.push_frame_with_unit(&frame, &pcm, 0).unwrap();
            if pushed.unit.video.idr {
                idr_frames.push(n);
            }
            output
                .push(&pushed.unit, channel.encoder(), media_start)
                .unwrap();
        }
        exchange(&mut output, &mut rtc, server, client, now, &mut got);
        // After two seconds, the viewer asks for a keyframe (PLI).
        if pli_sent_at.is_none() && now >= t0 + Duration::from_secs(2) {
            let mut writer = rtc.writer(video_mid).unwrap();
            if writer.is_request_keyframe_possible(KeyframeRequestKind::Pli) {
                writer
                    .request_keyframe(None, KeyframeRequestKind::Pli)
                    .unwrap();
                pli_sent_at = Some(now - t0);
            }
        }
        now += Duration::from_millis(5);
    }

    assert!(got.connected, "ICE + DTLS connected in virtual time");
    // Video: 25 fps for most of 4 s, starting at an IDR with SPS and PPS in front.
    assert!(got.video.len() >= 80, "video frames: {}", got.video.len());
    let first = &got.video[0].1;
    assert_eq!(
        &first[..3],
        &[7, 8, 5],
        "first frame is SPS+PPS+IDR: {first:?}"
    );
    for pair in got.video.windows(2) {
        assert_eq!(pair[1].0 - pair[0].0, 3600, "continuous 90 kHz timestamps");
    }
    // Audio: 20 ms Opus packets with continuous 48 kHz timestamps.
    assert!(got.audio.len() >= 150, "audio packets: {}", got.audio.len());
    for pair in got.audio.windows(2) {
        assert_eq!(pair[1].0 - pair[0].0, 960, "continuous 48 kHz timestamps");
    }
    assert!(
        got.audio.iter().all(|(_, len)| *len > 10),
        "tone, not silence"
    );
    // One clock, frames leave when due: every frame arrives at its media time (media time 0 =
    // t0 here) although the media side produced it 120 ms early; Opus packets a steady
    // AUDIO_SEND_DELAY later.
    for (media_s, arrived, audio) in &got.arrivals {
        let delay = if *audio {
            AUDIO_SEND_DELAY.as_secs_f64()
        } else {
            0.0
        };
        let late = arrived.as_secs_f64() - media_s - delay;
        assert!(
            (-1e-6..0.011).contains(&late),
            "media time {media_s} s arrived at {arrived:?}"
        );
    }
    // The new viewer's IDR request and the PLI both reached the encoder (throttled).
    assert!(
        !keyframe_requests.is_empty(),
        "a new viewer asks for an IDR"
    );
    let pli = pli_sent_at.expect("a PLI was sent");
    assert!(
        keyframe_requests
            .iter()
            .any(|t| *t >= pli && *t <= pli + Duration::from_millis(600)),
        "PLI at {pli:?} → keyframe requests {keyframe_requests:?}"
    );
    let later_idr = got.video.iter().skip(1).any(|(_, nals)| nals.contains(&5));
    assert!(later_idr, "an IDR follows the PLI");
    for pair in keyframe_requests.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(500),
            "throttled: {keyframe_requests:?}"
        );
    }
}

#[test]
fn a_media_side_that_fell_behind_is_delayed_not_burst_then_caught_up() {
    let cfg = small_channel();
    let mut channel = LiveChannel::new(cfg, 0).unwrap();
    let server: SocketAddr = "10.0.0.1:7860".parse().unwrap();
    let client: SocketAddr = "10.0.0.2:40000".parse().unwrap();
    let mut output = output_at(server, 1);
    let t0 = Instant::now();
    let (mut rtc, _) = viewer_of(&mut output, client, t0);
    let mut got = Received {
        t0: Some(t0),
        ..Received::default()
    };
    let frame = I420Frame::new(160, 120);
    let mut now = t0;
    // The media side stalls for its first second, then produces two frames per 40 ms (catching
    // up), as an overloaded machine would.
    while now < t0 + Duration::from_secs(6) {
        let stalled = now < t0 + Duration::from_secs(1);
        let behind = |n: u64| Duration::from_millis(n * 40) < now - t0 + Duration::from_millis(40);
        let mut made = 0;
        while !stalled && made < 2 && behind(channel.next_frame_index()) {
            let n = channel.next_frame_index();
            if output.take_keyframe_request(now) {
                channel.request_keyframe();
            }
            let pcm = vec![3000i16; channel.samples_for_frame(n)];
            let pushed = channel.push_frame_with_unit(&frame, &pcm, 0).unwrap();
            output.push(&pushed.unit, channel.encoder(), t0).unwrap();
            made += 1;
        }
        exchange(&mut output, &mut rtc, server, client, now, &mut got);
        now += Duration::from_millis(5);
    }
    assert!(got.connected);
    // The backlog was not sent at once: the delay went up to about the stall...
    assert!(
        output.max_delay() >= Duration::from_millis(800),
        "max delay {:?}",
        output.max_delay()
    );
    // ...so frames arrive at the stream's pace (never more than 3 in 100 ms; a burst would
    // bring 5), audio with no gap once it flows, and the delay shrinks once caught up.
    let video: Vec<Duration> = got
        .arrivals
        .iter()
        .filter(|(_, _, audio)| !*audio)
        .map(|(_, at, _)| *at)
        .collect();
    assert!(video.len() > 40, "video frames: {}", video.len());
    for (i, t) in video.iter().enumerate() {
        let within = video[i..]
            .iter()
            .take_while(|u| **u < *t + Duration::from_millis(100))
            .count();
        assert!(within <= 3, "{within} frames within 100 ms from {t:?}");
    }
    let audio: Vec<f64> = got
        .arrivals
        .iter()
        .filter(|(_, _, audio)| *audio)
        .map(|(media_s, _, _)| *media_s)
        .collect();
    for pair in audio.windows(2) {
        assert!(
            (pair[1] - pair[0] - 0.02).abs() < 1e-6,
            "audio gap {pair:?}"
        );
    }
    let lateness = |(media_s, at, _): &(f64, Duration, bool)| at.as_secs_f64() - media_s;
    let first_late = got.arrivals.iter().find(|a| !a.2).map(lateness).unwrap();
    let last_late = got
        .arrivals
        .iter()
        .rev()
        .find(|a| !a.2)
        .map(lateness)
        .unwrap();
    assert!(
        last_late < first_late - 0.1,
        "catching up: {first_late:.3} s late at first, {last_late:.3} s at the end"
    );
    assert!(output.delay() < output.max_delay());
}

#[test]
fn clear_pending_drops_queued_media_and_restarts_video_at_an_idr() {
    let cfg = small_channel();
    let mut channel = LiveChannel::new(cfg, 0).unwrap();
    let mut output = output_at("10.0.0.1:7860".parse().unwrap(), 1);
    let t0 = Instant::now();
    let (_rtc, offer, _pending) = browser_like(t0);
    output.add_viewer(&offer, t0).unwrap();
    let frame = I420Frame::new(160, 120);
    for n in 0..10 {
        let pcm = vec![0i16; channel.samples_for_frame(n)];
        let pushed = channel.push_frame_with_unit(&frame, &pcm, 0).unwrap();
        output.push(&pushed.unit, channel.encoder(), t0).unwrap();
    }
    assert!(output.pending() >= 10, "{}", output.pending());
    // The first frame is due at t0; the rest wait for their time.
    output.poll(t0);
    let waiting = output.pending();
    assert!(waiting >= 9);
    output.clear_pending();
    assert_eq!(output.pending(), 0);
    assert!(output.take_keyframe_request(t0), "video restarts at an IDR");
    let (_rtc2, offer2, _p2) = browser_like(t0);
    assert!(
        output.add_viewer(&offer2, t0).is_err(),
        "capped at one viewer"
    );
}

/// A packet the loopback receiver got.
#[derive(Debug, Clone)]
struct Arrival {
    at: Instant,
    video: bool,
    rtp_time: u64,
    nals: Vec<u8>,
    len: usize,
}

/// Opens a session on the real binary and a WHEP viewer on a loopback UDP socket, which runs in
/// a thread until `run_for` has passed; arrivals come through the channel (a `None` once
/// connected). Returns the WebSocket, the viewer's location and the arrivals.
async fn session_with_viewer(
    server: &common::Server,
    run_for: Duration,
) -> (Ws, String, std::sync::mpsc::Receiver<Option<Arrival>>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let hello = next_of_type(&mut ws, "hello").await;
    let session = hello["session_id"].as_str().unwrap().to_string();

    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let client = socket.local_addr().unwrap();
    let (mut rtc, offer, pending) = receiver(rtc_config(), client, Instant::now());
    let r = request(
        server.addr,
        "POST",
        &format!("/whep/{session}"),
        Some("application/sdp"),
        &offer,
    )
    .await;
    assert_eq!(r.status, 201, "{}\n{}", r.body, server.log());
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&r.body).unwrap())
        .unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let until = Instant::now() + run_for;
        let mut buf = vec![0u8; 2048];
        while Instant::now() < until {
            let timeout = loop {
                match rtc.poll_output().unwrap() {
                    Output::Timeout(t) => break t,
                    Output::Transmit(t) => {
                        socket.send_to(&t.contents, t.destination).unwrap();
                    }
                    Output::Event(Event::Connected) => {
                        let _ = tx.send(None);
                    }
                    Output::Event(Event::MediaData(d)) => {
                        let video = d.params.spec().codec == str0m::format::Codec::H264;
                        let _ = tx.send(Some(Arrival {
                            at: Instant::now(),
                            video,
                            rtp_time: d.time.numer(),
                            nals: if video {
                                nal_types(&d.data)
                            } else {
                                Vec::new()
                            },
                            len: d.data.len(),
                        }));
                    }
                    Output::Event(_) => {}
                }
            };
            let wait = timeout
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), Duration::from_millis(50));
            socket.set_read_timeout(Some(wait)).unwrap();
            match socket.recv_from(&mut buf) {
                Ok((n, source)) => {
                    let input = Input::Receive(
                        Instant::now(),
                        Receive {
                            proto: Protocol::Udp,
                            source,
                            destination: client,
                            contents: buf[..n].try_into().unwrap(),
                        },
                    );
                    rtc.handle_input(input).unwrap();
                }
                Err(_) => rtc.handle_input(Input::Timeout(Instant::now())).unwrap(),
            }
        }
    });
    (ws, r.headers["location"].clone(), rx)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_of_type(ws: &mut Ws, ty: &str) -> serde_json::Value {
    use futures_util::StreamExt;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            if v["type"] == ty {
                return v;
            }
        }
    }
}

async fn send_json(ws: &mut Ws, text: &str) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(text.into()))
        .await
        .unwrap();
}

/// The real binary: open a session, play it over WHEP on loopback UDP, hang up with DELETE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_plays_over_whep_on_loopback_udp() {
    let server = common::Server::start("webrtc", &[], &[]);
    let (_ws, location, rx) = session_with_viewer(&server, Duration::from_secs(4)).await;
    let got = tokio::task::spawn_blocking(move || rx.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(
        matches!(got.first(), Some(None)),
        "connected first; log:\n{}",
        server.log()
    );
    let video: Vec<&Arrival> = got.iter().flatten().filter(|a| a.video).collect();
    let audio: Vec<&Arrival> = got.iter().flatten().filter(|a| !a.video).collect();
    assert!(video.len() >= 40, "video frames in 4 s: {}", video.len());
    assert!(
        video[0].nals.contains(&5),
        "starts at an IDR: {:?}",
        video[0].nals
    );
    for pair in video.windows(2) {
        assert_eq!(
            pair[1].rtp_time - pair[0].rtp_time,
            3600,
            "continuous 90 kHz timestamps"
        );
    }
    assert!(audio.len() >= 100, "Opus packets in 4 s: {}", audio.len());
    for pair in audio.windows(2) {
        assert_eq!(
            pair[1].rtp_time - pair[0].rtp_time,
            960,
            "continuous 48 kHz timestamps"
        );
    }
    let r = request(server.addr, "DELETE", &location, None, "").await;
    assert_eq!(r.status, 204);
}

/// Barge-in over WebRTC: speech rendered ahead of the clock is dropped, so the viewer hears
/// nothing more of the interrupted answer (which had seconds to go). How fast the voice stops
/// in a browser is measured by web/tests/bench/glass_to_glass.mjs (goal: 200 ms); this test
/// allows a second so that a loaded machine cannot fail it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_cuts_a_webrtc_viewers_speech_for_good() {
    let server = common::Server::start("webrtc-barge-in", &[], &[]);
    let (mut ws, _location, rx) = session_with_viewer(&server, Duration::from_secs(12)).await;
    let next = |rx: &std::sync::mpsc::Receiver<Option<Arrival>>| {
        rx.recv_timeout(Duration::from_secs(5))
            .expect("media keeps arriving")
    };
    // One second of the idle stream: the size of a silent Opus packet.
    let start = Instant::now();
    let mut silent = 0;
    while start.elapsed() < Duration::from_secs(1) {
        if let Some(a) = next(&rx) {
            if !a.video {
                silent = silent.max(a.len);
            }
        }
    }
    assert!(silent > 0, "audio arrives while idle");
    let speech = |a: &Arrival| !a.video && a.len > silent * 2 + 10;

    send_json(
        &mut ws,
        r#"{"type":"prompt","text":"I am going to keep talking for quite a while now, so that you can interrupt me in the middle of this very long sentence about nothing at all."}"#,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let first_speech = loop {
        assert!(
            Instant::now() < deadline,
            "speech arrives; log:\n{}",
            server.log()
        );
        if let Some(a) = next(&rx) {
            if speech(&a) {
                break a.at;
            }
        }
    };
    // Half a second into the answer, interrupt it.
    while first_speech.elapsed() < Duration::from_millis(500) {
        next(&rx);
    }
    let interrupted = Instant::now();
    send_json(&mut ws, r#"{"type":"control","action":"interrupt"}"#).await;
    let mut late_speech = Vec::new();
    let mut after = 0;
    while interrupted.elapsed() < Duration::from_millis(3000) {
        if let Some(a) = next(&rx) {
            if !a.video && a.at > interrupted {
                after += 1;
                if speech(&a) && a.at > interrupted + Duration::from_millis(1000) {
                    late_speech.push((a.at - interrupted, a.len));
                }
            }
        }
    }
    // What the media thread rendered ahead (80 ms with a WebRTC viewer) is dropped; audio goes
    // on, silent.
    assert!(
        after >= 10,
        "audio goes on after the interrupt: {after} packets"
    );
    assert!(
        late_speech.is_empty(),
        "speech after the interrupt (silent packets are <= {silent} bytes): {late_speech:?}"
    );
}

/// An Ogg page (RFC 3533) holding one packet.
fn ogg_page(out: &mut Vec<u8>, packet: &[u8], granule: u64, seq: u32, flags: u8) {
    let mut page = b"OggS".to_vec();
    page.push(0);
    page.push(flags);
    page.extend_from_slice(&granule.to_le_bytes());
    page.extend_from_slice(&0x7a6c_6b31_u32.to_le_bytes());
    page.extend_from_slice(&seq.to_le_bytes());
    page.extend_from_slice(&[0; 4]);
    let mut lacing = vec![255u8; packet.len() / 255];
    lacing.push((packet.len() % 255) as u8);
    page.push(lacing.len() as u8);
    page.extend_from_slice(&lacing);
    page.extend_from_slice(packet);
    let mut crc = 0u32;
    for &b in &page {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    page[22..26].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&page);
}

/// The Opus stage's packets, put in an Ogg file (RFC 7845) and decoded by ffmpeg (a decoder
/// nobody here wrote), sound like the voice that went in.
#[test]
fn opus_packets_decode_in_ffmpeg_to_the_voice() {
    use talkstream::webrtc::opus::OpusStage;
    let (pcm, rate) = common::expected_tts_audio("Hello there, this is the voice over WebRTC.");
    let mut stage = OpusStage::new(rate).unwrap();
    let per_frame = (rate / 25) as usize;
    let mut packets = Vec::new();
    for (i, chunk) in pcm.chunks(per_frame).enumerate() {
        packets.extend(stage.push((i * per_frame) as u64, chunk).unwrap());
    }
    for (k, p) in packets.iter().enumerate() {
        assert_eq!(p.rtp_time, k as u64 * 960);
    }
    let mut ogg = Vec::new();
    let mut head = b"OpusHead".to_vec();
    head.extend_from_slice(&[1, 1]);
    head.extend_from_slice(&312u16.to_le_bytes()); // pre-skip: the encoder's look-ahead
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&[0, 0, 0]);
    ogg_page(&mut ogg, &head, 0, 0, 2);
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&4u32.to_le_bytes());
    tags.extend_from_slice(b"test");
    tags.extend_from_slice(&0u32.to_le_bytes());
    ogg_page(&mut ogg, &tags, 0, 1, 0);
    for (k, p) in packets.iter().enumerate() {
        let last = k + 1 == packets.len();
        let granule = (k as u64 + 1) * 960;
        ogg_page(
            &mut ogg,
            &p.data,
            granule,
            k as u32 + 2,
            if last { 4 } else { 0 },
        );
    }
    let dir = common::temp_dir("opus");
    let file = dir.join("voice.opus");
    std::fs::write(&file, &ogg).unwrap();
    let decoded = common::decode_audio(&file, 48_000);
    let reference = talkstream_providers::Resampler::new(rate, 48_000)
        .unwrap()
        .process(&pcm);
    assert!(
        decoded.len() + 2000 >= reference.len(),
        "{} decoded samples for {}",
        decoded.len(),
        reference.len()
    );
    let best = (0..600)
        .map(|off| common::ncc(&decoded, &reference[..reference.len() - 2000], off))
        .fold(0.0, f64::max);
    assert!(
        best > 0.9,
        "decoded Opus correlates with the voice: {best:.3}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `WEBRTC=off`: no UDP socket, no WebRTC output on streams.
#[tokio::test]
async fn webrtc_off_leaves_hls_only() {
    let dir = common::temp_dir("webrtc-off");
    let hls = dir.join("hls").display().to_string();
    let cli = Cli::try_parse_from([
        "talkstream",
        "--hls-dir",
        &hls,
        "--port",
        "0",
        "--webrtc",
        "off",
    ])
    .unwrap();
    assert!(!cli.config.webrtc.enabled());
    let state = AppState::build(cli.config, CancellationToken::new()).unwrap();
    assert!(state.webrtc.is_none());
    let (tx, _rx) = mpsc::channel();
    let reg = state.streams.register_with_webrtc(
        "00000000000000cd",
        "00000000000000cd",
        tx,
        Default::default(),
        None,
    );
    assert_eq!(reg.entry().whep(), None);
    assert!(reg.entry().hls_playlist().is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_hands_the_page_its_ice_servers_and_the_server_clock() {
    const CREDENTIAL: &str = "turn-secret-9f3a";
    let server = common::Server::start(
        "webrtc-ice",
        &[],
        &[
            (
                "ICE_SERVERS",
                "stun:stun.example.org:3478,turn:turn.example.org:3478?transport=udp",
            ),
            ("ICE_USERNAME", "viewer"),
            ("ICE_CREDENTIAL", CREDENTIAL),
            ("LOG_LEVEL", "debug"),
        ],
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let hello = next_of_type(&mut ws, "hello").await;
    assert_eq!(
        hello["ice_servers"],
        serde_json::json!([
            {"urls": ["stun:stun.example.org:3478"]},
            {"urls": ["turn:turn.example.org:3478?transport=udp"], "username": "viewer", "credential": CREDENTIAL}
        ])
    );
    let clock = hello["server_time_ms"].as_i64().unwrap();
    assert!(
        (clock - before).abs() < 5_000,
        "server clock {clock} vs ours {before}"
    );
    assert!(hello["whep"].as_str().unwrap().starts_with("/whep/"));
    drop(ws);
    assert!(
        !server.log().contains(CREDENTIAL),
        "the TURN credential reached the log"
    );

    // A TURN URL without credentials stops the server with one line that names the settings.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_talkstream"))
        .args(["serve", "--port", "0"])
        .env("ICE_SERVERS", "turn:turn.example.org:3478")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("ICE_SERVERS") && err.contains("ICE_CREDENTIAL"),
        "{err}"
    );
}

/// A viewer that never connects, and one that goes silent (a closed tab), are ended.
#[test]
fn viewers_that_never_connect_or_go_silent_are_ended() {
    let server: SocketAddr = "10.0.0.1:7860".parse().unwrap();
    let client: SocketAddr = "10.0.0.2:40000".parse().unwrap();
    let mut output = WebRtcOutput::new(OutputConfig {
        max_viewers: 4,
        candidates: vec![server],
        sample_rate: 22_050,
    })
    .unwrap();
    let t0 = Instant::now();

    // Never connects: gone after the connect timeout.
    let (_rtc, offer, _pending) = browser_like(t0);
    output.add_viewer(&offer, t0).unwrap();
    output.poll(t0 + Duration::from_secs(10));
    assert_eq!(output.viewer_count(), 1);
    output.poll(t0 + Duration::from_secs(21));
    assert_eq!(output.viewer_count(), 0);

    // Connects, then nothing more arrives from it.
    let (mut rtc, offer, pending) = receiver(rtc_config(), client, t0);
    let (_id, answer) = output.add_viewer(&offer, t0).unwrap();
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();
    let mut got = Received {
        t0: Some(t0),
        ..Received::default()
    };
    let mut now = t0;
    while now < t0 + Duration::from_secs(1) {
        exchange(&mut output, &mut rtc, server, client, now, &mut got);
        now += Duration::from_millis(10);
    }
    assert!(got.connected);
    assert_eq!(output.viewer_count(), 1);
    let silent_from = now;
    while output.viewer_count() > 0 && now < silent_from + Duration::from_secs(30) {
        output.poll(now);
        output.take_transmits();
        now += Duration::from_millis(100);
    }
    assert_eq!(output.viewer_count(), 0, "the silent viewer is ended");
    assert!(
        now - silent_from <= Duration::from_secs(16),
        "within {:?}",
        now - silent_from
    );
}
