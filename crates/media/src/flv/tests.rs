//! FLV tags from a real encoder: sequence headers first, a keyframe start, per-track monotonic
//! timestamps that follow the media timeline, a fresh start at a keyframe after a gap.

use super::*;
use crate::encoder::{EncoderConfig, FrameEncoder};
use crate::video::I420Frame;

const RATE: u32 = 22_050;

fn encoder() -> FrameEncoder {
    FrameEncoder::new(EncoderConfig {
        width: 64,
        height: 48,
        fps: 25,
        sample_rate: RATE,
        video_bitrate_kbps: 200,
        audio_bitrate_kbps: 32,
    })
    .unwrap()
}

fn encode(enc: &mut FrameEncoder) -> EncodedUnit {
    let n = enc.next_frame_index();
    let mut f = I420Frame::new(64, 48);
    for (i, y) in f.y.iter_mut().enumerate() {
        *y = (16 + (i as u64 + n * 5) % 200) as u8;
    }
    let start = enc.config().frame_start_sample(n);
    let pcm: Vec<i16> = (start..start + enc.config().samples_for_frame(n) as u64)
        .map(|i| ((i as f32 * 0.05).sin() * 5000.0) as i16)
        .collect();
    enc.encode(&f, &pcm).unwrap()
}

fn push(feed: &mut FlvFeed, enc: &FrameEncoder, unit: &EncodedUnit) -> Vec<FlvTag> {
    feed.push(unit, enc.sps().unwrap(), enc.pps().unwrap(), enc.asc())
        .unwrap()
}

#[test]
fn a_connection_starts_with_both_sequence_headers_then_the_keyframe() {
    let mut enc = encoder();
    let mut feed = FlvFeed::new(RATE);
    assert!(feed.waiting_for_keyframe());
    let first = encode(&mut enc);
    assert!(first.video.idr);
    let tags = push(&mut feed, &enc, &first);
    assert!(!feed.waiting_for_keyframe());
    match &tags[0] {
        FlvTag::Video {
            ts_ms: 0,
            data,
            keyframe: true,
        } => {
            // AVC, key frame, AVCPacketType 0, then the record: version 1 and the SPS profile.
            assert_eq!(&data[..5], &[0x17, 0, 0, 0, 0]);
            assert_eq!(data[5], 1);
            assert_eq!(&data[6..9], &enc.sps().unwrap()[1..4]);
            assert_eq!(data[9], 0xff, "4-byte NAL lengths");
        }
        other => panic!("expected the AVC sequence header, got {other:?}"),
    }
    match &tags[1] {
        FlvTag::Audio { ts_ms: 0, data } => {
            assert_eq!(&data[..2], &[0xaf, 0]);
            assert_eq!(&data[2..], enc.asc());
        }
        other => panic!("expected the AAC sequence header, got {other:?}"),
    }
    let key = tags
        .iter()
        .find_map(|t| match t {
            FlvTag::Video { data, .. } if data[1] == 1 => Some(data),
            _ => None,
        })
        .expect("the keyframe itself");
    assert_eq!(&key[..5], &[0x17, 1, 0, 0, 0]);
    assert_eq!(&key[5..], &first.video.data[..]);
}

#[test]
fn a_feed_that_joins_mid_stream_waits_for_a_keyframe_and_starts_its_clock_there() {
    let mut enc = encoder();
    for _ in 0..10 {
        encode(&mut enc);
    }
    let mut feed = FlvFeed::new(RATE);
    let inter = encode(&mut enc);
    assert!(!inter.video.idr);
    assert!(push(&mut feed, &enc, &inter).is_empty());
    assert!(feed.waiting_for_keyframe());
    enc.request_keyframe();
    let key = encode(&mut enc);
    assert!(key.video.idr);
    let tags = push(&mut feed, &enc, &key);
    let video: Vec<u64> = tags
        .iter()
        .filter_map(|t| match t {
            FlvTag::Video { ts_ms, .. } => Some(*ts_ms),
            FlvTag::Audio { .. } => None,
        })
        .collect();
    assert_eq!(video, vec![0, 0], "sequence header and keyframe at 0");
    // The next frame is 40 ms later on the connection's clock.
    let unit = encode(&mut enc);
    let next = push(&mut feed, &enc, &unit);
    assert!(next.iter().any(|t| matches!(
        t,
        FlvTag::Video {
            ts_ms: 40,
            keyframe: false,
            ..
        }
    )));
}

#[test]
fn timestamps_follow_the_media_timeline_and_never_go_back_per_track() {
    let mut enc = encoder();
    let mut feed = FlvFeed::new(RATE);
    let mut video = Vec::new();
    let mut audio = Vec::new();
    let mut audio_bytes = 0usize;
    for _ in 0..250 {
        let unit = encode(&mut enc);
        for tag in push(&mut feed, &enc, &unit) {
            match tag {
                FlvTag::Video { ts_ms, data, .. } if data[1] == 1 => video.push(ts_ms),
                FlvTag::Audio { ts_ms, data } if data[1] == 1 => {
                    audio.push(ts_ms);
                    audio_bytes += data.len();
                }
                FlvTag::Video { .. } | FlvTag::Audio { .. } => {}
            }
        }
    }
    assert_eq!(video.len(), 250);
    for (n, ts) in video.iter().enumerate() {
        assert_eq!(*ts, n as u64 * 40, "frame {n}");
    }
    assert!(audio.windows(2).all(|w| w[0] <= w[1]));
    // 10 s of audio in 1024-sample frames (less the encoder's lag of a frame or two).
    let expected = 10 * RATE as usize / 1024;
    assert!(
        audio.len() + 3 >= expected && audio.len() <= expected,
        "{} AAC frames for 10 s",
        audio.len()
    );
    // Each audio timestamp is its access unit's time: n * 1024 / rate.
    for (n, ts) in audio.iter().enumerate() {
        assert_eq!(*ts, audio_ms(n as u64 * 1024, RATE), "audio frame {n}");
    }
    assert!(audio_bytes > 0);
}

#[test]
fn a_missed_frame_restarts_the_connection_timeline_at_the_next_keyframe() {
    let mut enc = encoder();
    let mut feed = FlvFeed::new(RATE);
    for _ in 0..5 {
        let unit = encode(&mut enc);
        push(&mut feed, &enc, &unit);
    }
    let _lost = encode(&mut enc);
    let after = encode(&mut enc);
    assert!(push(&mut feed, &enc, &after).is_empty(), "not decodable");
    assert!(feed.waiting_for_keyframe());
    enc.request_keyframe();
    let key = encode(&mut enc);
    let tags = push(&mut feed, &enc, &key);
    assert!(
        matches!(tags.first(), Some(FlvTag::Video { ts_ms: 0, keyframe: true, data }) if data[1] == 0),
        "sequence headers again: {tags:?}"
    );
}

#[test]
fn media_times_convert_to_whole_milliseconds() {
    assert_eq!(video_ms(90_000), 1000);
    assert_eq!(video_ms(3600), 40);
    assert_eq!(video_ms(3599), 39);
    assert_eq!(audio_ms(22_050, 22_050), 1000);
    assert_eq!(audio_ms(1024, 22_050), 46);
    assert_eq!(audio_ms(5, 0), 5000, "a zero rate does not divide by zero");
}
