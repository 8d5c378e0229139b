//! Decoding a generator's MP4 into I420 frames: [`decode_mp4`] demuxes the video track
//! ([`crate::mp4`]), rewrites each length-prefixed sample as an Annex B access unit (SPS/PPS from
//! `avcC` in front of the first one), decodes with OpenH264 and copies the decoder's strided
//! planes into tightly packed [`I420Frame`]s. Frame times are the samples' presentation times
//! (sorted, shifted so the first frame is at 0), in microseconds.

use openh264::decoder::{DecodedYUV, Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use openh264::OpenH264API;
use talkstream_media::I420Frame;

use crate::fit::RawVideo;
use crate::mp4::{parse_video_track, sample_bytes, Mp4Error};
use crate::GeneratorError;

/// Largest MP4 accepted (a generated window is a few seconds of video).
pub const MAX_MP4_BYTES: usize = 1 << 30;

/// Decodes the first video track of a regular MP4 file.
pub fn decode_mp4(file: &[u8]) -> Result<RawVideo, GeneratorError> {
    if file.len() > MAX_MP4_BYTES {
        return Err(GeneratorError::Mp4(Mp4Error::TooLarge {
            len: file.len() as u64,
            limit: MAX_MP4_BYTES as u64,
        }));
    }
    let track = parse_video_track(file)?;
    if track.samples.is_empty() {
        return Err(GeneratorError::Mp4(Mp4Error::NoSamples {
            track_id: track.track_id,
        }));
    }
    let nal_len = track.avc.as_ref().map_or(4, |a| a.nal_length_size) as usize;
    let mut decoder = Decoder::with_api_config(
        OpenH264API::from_source(),
        DecoderConfig::new().flush_after_decode(Flush::NoFlush),
    )
    .map_err(|e| GeneratorError::Decode(format!("cannot create the OpenH264 decoder: {e}")))?;
    let mut frames = Vec::with_capacity(track.samples.len());
    let mut access_unit = Vec::new();
    for (i, s) in track.samples.iter().enumerate() {
        let data = sample_bytes(file, s)?;
        access_unit.clear();
        if i == 0 {
            if let Some(avc) = &track.avc {
                for ps in avc.sps.iter().chain(&avc.pps) {
                    access_unit.extend_from_slice(&[0, 0, 0, 1]);
                    access_unit.extend_from_slice(ps);
                }
            }
        }
        to_annex_b(data, nal_len, &mut access_unit)
            .map_err(|e| GeneratorError::Decode(format!("sample {i}: {e}")))?;
        match decoder.decode(&access_unit) {
            Ok(Some(yuv)) => frames.push(to_i420(&yuv)),
            Ok(None) => {}
            Err(e) => {
                return Err(GeneratorError::Decode(format!(
                    "sample {i} of {} ({} bytes): {e}",
                    track.samples.len(),
                    data.len()
                )))
            }
        }
    }
    match decoder.flush_remaining() {
        Ok(rest) => frames.extend(rest.iter().map(to_i420)),
        Err(e) => tracing::debug!(error = %e, "OpenH264 flush failed after the last sample"),
    }
    if frames.is_empty() {
        return Err(GeneratorError::Decode(format!(
            "no picture decoded from {} samples of '{}' video",
            track.samples.len(),
            track.codec_str()
        )));
    }
    // Presentation times of the samples, sorted: decoders output in presentation order.
    let ts = u128::from(track.timescale);
    let mut pts: Vec<i64> = track
        .samples
        .iter()
        .map(|s| {
            i64::try_from(s.dts)
                .unwrap_or(i64::MAX)
                .saturating_add(s.cts_offset)
        })
        .collect();
    pts.sort_unstable();
    let origin = pts.first().copied().unwrap_or(0);
    let to_us = |v: i64| -> u64 {
        let d = u128::try_from(v.saturating_sub(origin)).unwrap_or(0);
        u64::try_from(d * 1_000_000 / ts).unwrap_or(u64::MAX)
    };
    let mut times_us: Vec<u64> = pts.iter().map(|&p| to_us(p)).collect();
    // If the decoder returned fewer pictures than samples, keep the first ones' times.
    times_us.truncate(frames.len());
    while times_us.len() < frames.len() {
        let next = times_us.last().copied().unwrap_or(0);
        times_us.push(next);
    }
    let mean = track
        .samples
        .iter()
        .map(|s| u64::from(s.duration))
        .sum::<u64>()
        / track.samples.len() as u64;
    let frame_us = u64::try_from(u128::from(mean) * 1_000_000 / ts).unwrap_or(40_000);
    Ok(RawVideo {
        frames,
        times_us,
        frame_us: frame_us.max(1),
    })
}

/// Appends the NAL units of a length-prefixed sample as Annex B.
fn to_annex_b(sample: &[u8], nal_len: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let mut pos = 0usize;
    while pos < sample.len() {
        if sample.len() - pos < nal_len {
            return Err(format!("truncated NAL length at byte {pos}"));
        }
        let len = sample[pos..pos + nal_len]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        pos += nal_len;
        if len > sample.len() - pos {
            return Err(format!(
                "NAL unit of {len} bytes at byte {pos} overruns the {}-byte sample",
                sample.len()
            ));
        }
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(&sample[pos..pos + len]);
        pos += len;
    }
    Ok(())
}

/// Copies OpenH264's strided output into a packed I420 frame.
fn to_i420(yuv: &DecodedYUV<'_>) -> I420Frame {
    let (w, h) = yuv.dimensions();
    let (sy, su, sv) = yuv.strides();
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut f = I420Frame {
        width: w as u32,
        height: h as u32,
        y: Vec::with_capacity(w * h),
        u: Vec::with_capacity(cw * ch),
        v: Vec::with_capacity(cw * ch),
    };
    copy_plane(yuv.y(), sy, w, h, &mut f.y);
    copy_plane(yuv.u(), su, cw, ch, &mut f.u);
    copy_plane(yuv.v(), sv, cw, ch, &mut f.v);
    f
}

fn copy_plane(src: &[u8], stride: usize, w: usize, h: usize, out: &mut Vec<u8>) {
    for row in 0..h {
        let start = row * stride;
        match src.get(start..start + w) {
            Some(r) => out.extend_from_slice(r),
            None => out.resize(out.len() + w, 128),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::{write_mp4, MuxSample, MuxTrack};
    use talkstream_media::video::H264Encoder;

    /// Encodes `n` frames whose luma is a gradient that moves with the frame index.
    pub(crate) fn encoded_mp4(w: u32, h: u32, n: usize, fps: u32) -> Vec<u8> {
        let mut enc = H264Encoder::new(w, h, fps, 800).unwrap();
        let mut samples = Vec::new();
        for i in 0..n {
            let mut f = I420Frame::new(w, h);
            for (k, px) in f.y.iter_mut().enumerate() {
                *px = (16 + (k + i * 7) % 200) as u8;
            }
            let e = enc.encode(&f, false).unwrap();
            samples.push(MuxSample {
                data: e.data,
                duration: 90_000 / fps,
                is_sync: e.is_idr,
            });
        }
        let track = MuxTrack {
            width: w as u16,
            height: h as u16,
            timescale: 90_000,
            sps: enc.sps().unwrap().to_vec(),
            pps: enc.pps().unwrap().to_vec(),
            samples_per_chunk: 5,
            co64: false,
        };
        write_mp4(&track, &samples)
    }

    #[test]
    fn decodes_what_the_encoder_wrote() {
        let file = encoded_mp4(96, 64, 12, 25);
        let raw = decode_mp4(&file).unwrap();
        assert_eq!(raw.frames.len(), 12);
        assert_eq!(raw.times_us[1], 40_000);
        assert_eq!(raw.frame_us, 40_000);
        for f in &raw.frames {
            assert_eq!((f.width, f.height), (96, 64));
            assert!(f.planes_consistent());
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(decode_mp4(b""), Err(GeneratorError::Mp4(_))));
        // Valid container, garbage samples.
        let mut file = encoded_mp4(64, 64, 3, 25);
        let track = parse_video_track(&file).unwrap();
        for s in &track.samples {
            let a = s.offset as usize + 4;
            for b in &mut file[a..a + s.size as usize - 4] {
                *b = 0x5a;
            }
        }
        assert!(decode_mp4(&file).is_err());
        let mut out = Vec::new();
        assert!(to_annex_b(&[0, 0, 0, 9, 1], 4, &mut out).is_err());
    }
}
