//! The encoder stage: [`FrameEncoder`] turns one video frame (I420) plus the PCM that goes with it
//! into one [`EncodedUnit`]: the H.264 access unit with its media time and IDR flag, the AAC
//! access units completed by that PCM with their media times, and the PCM itself. It owns the
//! stream's timeline rules; everything downstream (CMAF segmenter, HLS, later WebRTC or RTMP)
//! consumes the same units, so a frame is encoded once whatever the number of outputs.
//!
//! Timeline:
//! - video frame `n` starts at `floor(n * 90000 / fps)` (90 kHz ticks) and lasts until frame
//!   `n + 1` starts;
//! - frame `n` carries the PCM samples `[floor(n * sr / fps), floor((n + 1) * sr / fps))`;
//! - AAC access unit `k` starts at sample `k * 1024` (timescale = sample rate) and decodes to the
//!   stream samples `[k * 1024, (k + 1) * 1024)`: the encoder's 1024-sample priming is
//!   compensated by running it 1024 samples ahead of the stream (see [`AacEncoder`]), so an
//!   access unit is complete only once the stream is about two access units further along.
//!
//! Buffers are [`Bytes`] and the PCM an `Arc<[i16]>`: cloning a unit shares its data, so several
//! sinks can hold the same access unit without copying it.

use std::sync::Arc;

use bytes::Bytes;

use crate::audio::{AacEncoder, SAMPLES_PER_AU};
use crate::config::{validate_bitrates, validate_format};
use crate::fmp4::{self, VIDEO_TIMESCALE};
use crate::video::{self, H264Encoder, I420Frame};
use crate::MediaError;

/// Settings of the encoder stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Picture width (even).
    pub width: u32,
    /// Picture height (even).
    pub height: u32,
    /// Constant frame rate (1..=120).
    pub fps: u32,
    /// Audio sample rate: an AAC table rate, e.g. 48000. Also the audio timescale.
    pub sample_rate: u32,
    /// H.264 target bitrate.
    pub video_bitrate_kbps: u32,
    /// AAC target bitrate.
    pub audio_bitrate_kbps: u32,
}

impl EncoderConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), MediaError> {
        validate_format(self.width, self.height, self.fps, self.sample_rate)?;
        validate_bitrates(
            self.video_bitrate_kbps,
            self.audio_bitrate_kbps,
            self.sample_rate,
        )
    }

    /// 90 kHz tick at which frame `n` starts.
    pub fn frame_tick(&self, n: u64) -> u64 {
        frame_tick(self.fps, n)
    }

    /// Media time of frame `n` in ms (rounded down).
    pub fn frame_time_ms(&self, n: u64) -> u64 {
        (u128::from(n) * 1000 / u128::from(self.fps.max(1))) as u64
    }

    /// Stream sample at which frame `n`'s PCM starts: `floor(n * sr / fps)`.
    pub fn frame_start_sample(&self, n: u64) -> u64 {
        (u128::from(n) * u128::from(self.sample_rate) / u128::from(self.fps.max(1))) as u64
    }

    /// PCM samples that go with frame `n`: `floor((n+1)*sr/fps) - floor(n*sr/fps)`.
    pub fn samples_for_frame(&self, n: u64) -> usize {
        (self.frame_start_sample(n + 1) - self.frame_start_sample(n)) as usize
    }
}

/// 90 kHz tick at which frame `n` starts at `fps` frames per second: `floor(n * 90000 / fps)`.
pub fn frame_tick(fps: u32, n: u64) -> u64 {
    (u128::from(n) * u128::from(VIDEO_TIMESCALE) / u128::from(fps.max(1))) as u64
}

/// One H.264 access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoUnit {
    /// Index of the frame in the stream (0-based).
    pub frame_index: u64,
    /// Presentation (= decode) time in 90 kHz ticks: `floor(frame_index * 90000 / fps)`.
    pub pts: u64,
    /// Duration in 90 kHz ticks (until the next frame starts).
    pub duration: u32,
    /// True if this is an IDR picture (a sync sample; a decoder can start here).
    pub idr: bool,
    /// AVCC sample: 4-byte big-endian length-prefixed NAL units, without SPS/PPS/AUD/SEI (get
    /// those from [`FrameEncoder::sps`] / [`FrameEncoder::pps`]; they never change).
    pub data: Bytes,
}

/// One AAC-LC access unit (1024 samples, raw: no ADTS header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioUnit {
    /// Index of the access unit in the stream (0-based, continuous).
    pub index: u64,
    /// Presentation time in samples (timescale = sample rate): `index * 1024`.
    pub pts: u64,
    /// The raw AAC frame.
    pub data: Bytes,
}

impl AudioUnit {
    /// Duration of every access unit in samples.
    pub const DURATION: u32 = SAMPLES_PER_AU as u32;
}

/// Everything one frame produced: what every output consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedUnit {
    /// The frame's H.264 access unit.
    pub video: VideoUnit,
    /// The AAC access units completed by this frame's PCM (none or more, in order; they lag the
    /// PCM, see the module docs).
    pub audio: Vec<AudioUnit>,
    /// Stream sample at which `pcm` starts.
    pub pcm_start: u64,
    /// The frame's mono PCM exactly as pushed, for outputs that need another audio codec.
    pub pcm: Arc<[i16]>,
}

/// The encoder stage: frames + PCM in, [`EncodedUnit`]s out. See the module docs.
#[derive(Debug)]
pub struct FrameEncoder {
    cfg: EncoderConfig,
    video: H264Encoder,
    audio: AacEncoder,
    next_frame: u64,
    keyframe_requested: bool,
    finished: bool,
    /// Frame at which an encoder failed; nothing is accepted afterwards.
    failed_at: Option<u64>,
}

impl FrameEncoder {
    /// A new encoder stage; the first frame it encodes is frame 0, an IDR.
    pub fn new(cfg: EncoderConfig) -> Result<Self, MediaError> {
        cfg.validate()?;
        let video = H264Encoder::new(cfg.width, cfg.height, cfg.fps, cfg.video_bitrate_kbps)?;
        let audio = AacEncoder::new(cfg.sample_rate, cfg.audio_bitrate_kbps)?;
        Ok(Self {
            cfg,
            video,
            audio,
            next_frame: 0,
            keyframe_requested: false,
            finished: false,
            failed_at: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EncoderConfig {
        &self.cfg
    }

    /// Index of the next frame to encode.
    pub fn next_frame_index(&self) -> u64 {
        self.next_frame
    }

    /// Makes the next encoded frame an IDR. Requests are not throttled here: every request
    /// costs a (large) IDR, so callers that forward receivers' requests should limit them.
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// True if the next encoded frame will be an IDR because one was requested (or it is the
    /// first frame).
    pub fn keyframe_pending(&self) -> bool {
        self.keyframe_requested || self.next_frame == 0
    }

    /// Checks that `frame` and `pcm` fit the next frame (size, planes, exactly
    /// [`EncoderConfig::samples_for_frame`] samples) and that the encoder still takes input.
    /// Nothing changes.
    pub fn check_input(&self, frame: &I420Frame, pcm: &[i16]) -> Result<(), MediaError> {
        if let Some(frame_index) = self.failed_at {
            return Err(MediaError::EncoderFailed { frame_index });
        }
        if self.finished {
            return Err(MediaError::Finished { what: "encoder" });
        }
        let n = self.next_frame;
        video::check_frame(frame, self.cfg.width, self.cfg.height, n)?;
        let expected = self.cfg.samples_for_frame(n);
        if pcm.len() != expected {
            return Err(MediaError::PcmLength {
                frame_index: n,
                expected,
                got: pcm.len(),
            });
        }
        Ok(())
    }

    /// Encodes the next frame and its PCM (see [`FrameEncoder::check_input`]; a rejected input
    /// changes nothing). An encoder failure leaves the stage unusable
    /// ([`MediaError::EncoderFailed`] afterwards).
    pub fn encode(&mut self, frame: &I420Frame, pcm: &[i16]) -> Result<EncodedUnit, MediaError> {
        self.check_input(frame, pcm)?;
        let n = self.next_frame;
        let result = self.encode_checked(frame, pcm);
        match result {
            Ok(_) => self.next_frame += 1,
            Err(_) => self.failed_at = Some(n),
        }
        result
    }

    fn encode_checked(
        &mut self,
        frame: &I420Frame,
        pcm: &[i16],
    ) -> Result<EncodedUnit, MediaError> {
        let n = self.next_frame;
        let force_idr = std::mem::take(&mut self.keyframe_requested);
        let encoded = self.video.encode(frame, force_idr)?;
        let pts = self.cfg.frame_tick(n);
        let duration = u32::try_from(self.cfg.frame_tick(n + 1) - pts).map_err(|_| {
            MediaError::VideoEncoder {
                frame_index: n,
                message: "frame duration does not fit 32 bits".into(),
            }
        })?;
        let video = VideoUnit {
            frame_index: n,
            pts,
            duration,
            idr: encoded.is_idr,
            data: Bytes::from(encoded.data),
        };
        let first_au = self.audio.access_units_emitted();
        let audio = Self::audio_units(first_au, self.audio.push(pcm)?);
        Ok(EncodedUnit {
            video,
            audio,
            pcm_start: self.cfg.frame_start_sample(n),
            pcm: Arc::from(pcm),
        })
    }

    fn audio_units(first: u64, aus: Vec<Vec<u8>>) -> Vec<AudioUnit> {
        aus.into_iter()
            .zip(first..)
            .map(|(data, index)| AudioUnit {
                index,
                pts: index * SAMPLES_PER_AU as u64,
                data: Bytes::from(data),
            })
            .collect()
    }

    /// Ends the stream: pads the audio with silence so that every PCM sample pushed is covered
    /// by an access unit and returns those last access units. Further frames are an error; a
    /// second call returns nothing.
    pub fn finish(&mut self) -> Result<Vec<AudioUnit>, MediaError> {
        if let Some(frame_index) = self.failed_at {
            return Err(MediaError::EncoderFailed { frame_index });
        }
        if self.finished {
            return Ok(Vec::new());
        }
        self.finished = true;
        let first_au = self.audio.access_units_emitted();
        Ok(Self::audio_units(first_au, self.audio.flush()?))
    }

    /// The H.264 sequence parameter set (NAL unit without start code), known after frame 0.
    pub fn sps(&self) -> Option<&[u8]> {
        self.video.sps()
    }

    /// The H.264 picture parameter set (NAL unit without start code), known after frame 0.
    pub fn pps(&self) -> Option<&[u8]> {
        self.video.pps()
    }

    /// The AAC AudioSpecificConfig (2 bytes for AAC-LC).
    pub fn asc(&self) -> &[u8] {
        self.audio.asc()
    }

    /// RFC 6381 `CODECS` value (`avc1.PPCCLL,mp4a.40.2`), known after frame 0.
    pub fn codecs(&self) -> Option<String> {
        self.video.codec_string().map(|v| format!("{v},mp4a.40.2"))
    }

    /// The CMAF init segment (`ftyp` + `moov`) describing this encoder's two tracks; needs the
    /// SPS/PPS, so frame 0 must have been encoded.
    pub fn init_segment(&self) -> Result<Vec<u8>, MediaError> {
        let (Some(sps), Some(pps)) = (self.video.sps(), self.video.pps()) else {
            return Err(MediaError::VideoEncoder {
                frame_index: self.next_frame,
                message: "no SPS/PPS captured for the init segment".into(),
            });
        };
        fmp4::init_segment(
            &fmp4::VideoTrack {
                width: self.cfg.width,
                height: self.cfg.height,
                sps: sps.to_vec(),
                pps: pps.to_vec(),
            },
            &fmp4::AudioTrack {
                sample_rate: self.cfg.sample_rate,
                channels: 1,
                asc: self.audio.asc().to_vec(),
                avg_bitrate: self.cfg.audio_bitrate_kbps.saturating_mul(1000),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(fps: u32, sample_rate: u32) -> EncoderConfig {
        EncoderConfig {
            width: 64,
            height: 48,
            fps,
            sample_rate,
            video_bitrate_kbps: 200,
            audio_bitrate_kbps: 32,
        }
    }

    fn frame_for(n: u64) -> I420Frame {
        let mut f = I420Frame::new(64, 48);
        for (i, y) in f.y.iter_mut().enumerate() {
            *y = (16 + (i as u64 + n * 3) % 200) as u8;
        }
        f
    }

    fn tone(start: u64, len: usize) -> Vec<i16> {
        (start..start + len as u64)
            .map(|i| (((i as f32) * 0.07).sin() * 6000.0) as i16)
            .collect()
    }

    /// Encodes frames `next..next+count` with a continuous tone.
    fn encode_n(enc: &mut FrameEncoder, count: u64) -> Vec<EncodedUnit> {
        (0..count)
            .map(|_| {
                let n = enc.next_frame_index();
                let pcm = tone(
                    enc.config().frame_start_sample(n),
                    enc.config().samples_for_frame(n),
                );
                enc.encode(&frame_for(n), &pcm).unwrap()
            })
            .collect()
    }

    #[test]
    fn encoder_can_move_to_a_media_thread_and_units_are_shared() {
        fn assert_send<T: Send + Sync>() {}
        assert_send::<EncodedUnit>();
        fn assert_send_only<T: Send>() {}
        assert_send_only::<FrameEncoder>();
        let mut enc = FrameEncoder::new(cfg(25, 48_000)).unwrap();
        let unit = encode_n(&mut enc, 1).remove(0);
        let copy = unit.clone();
        assert_eq!(
            copy.video.data.as_ptr(),
            unit.video.data.as_ptr(),
            "no copy"
        );
        assert!(Arc::ptr_eq(&copy.pcm, &unit.pcm));
    }

    #[test]
    fn video_times_are_continuous_and_first_unit_is_the_only_idr() {
        // 7 fps: 90000 / 7 is not whole, so frame durations alternate.
        for fps in [25, 7, 30] {
            let mut enc = FrameEncoder::new(cfg(fps, 16_000)).unwrap();
            let units = encode_n(&mut enc, 40);
            let mut t = 0u64;
            for (n, u) in units.iter().enumerate() {
                let n = n as u64;
                assert_eq!(u.video.frame_index, n);
                assert_eq!(u.video.pts, t, "fps {fps} frame {n}");
                assert_eq!(u.video.pts, n * 90_000 / u64::from(fps));
                assert_eq!(u.video.idr, n == 0, "fps {fps} frame {n}");
                assert!(!u.video.data.is_empty());
                t += u64::from(u.video.duration);
            }
            assert_eq!(t, 40 * 90_000 / u64::from(fps));
        }
    }

    #[test]
    fn a_keyframe_request_makes_the_next_unit_an_idr() {
        let mut enc = FrameEncoder::new(cfg(25, 48_000)).unwrap();
        assert!(enc.keyframe_pending(), "frame 0 is always an IDR");
        encode_n(&mut enc, 5);
        assert!(!enc.keyframe_pending());
        enc.request_keyframe();
        enc.request_keyframe(); // twice: still one IDR
        assert!(enc.keyframe_pending());
        let idr: Vec<bool> = encode_n(&mut enc, 3).iter().map(|u| u.video.idr).collect();
        assert_eq!(idr, [true, false, false]);
        assert!(enc.sps().is_some() && enc.pps().is_some());
        assert!(enc.codecs().unwrap().starts_with("avc1.42"));
    }

    #[test]
    fn audio_units_cover_the_pcm_with_priming_lag() {
        // 1920 samples per frame at 25 fps / 48 kHz; 1470 at 30 fps / 44.1 kHz.
        for (fps, sr) in [(25, 48_000), (30, 44_100), (7, 16_000)] {
            let mut enc = FrameEncoder::new(cfg(fps, sr)).unwrap();
            let mut next_index = 0u64;
            let mut pcm_at = 0u64;
            for u in encode_n(&mut enc, 60) {
                assert_eq!(u.pcm_start, pcm_at);
                assert_eq!(&u.pcm[..], &tone(pcm_at, u.pcm.len())[..]);
                pcm_at += u.pcm.len() as u64;
                for a in &u.audio {
                    assert_eq!(a.index, next_index);
                    assert_eq!(a.pts, next_index * 1024);
                    assert!(!a.data.is_empty());
                    next_index += 1;
                }
                // AU k is complete once stream sample (k + 2) * 1024 has been pushed.
                assert_eq!(next_index, (pcm_at / 1024).saturating_sub(1), "fps {fps}");
            }
            let tail = enc.finish().unwrap();
            assert_eq!(tail.first().map(|a| a.index), Some(next_index));
            next_index += tail.len() as u64;
            assert_eq!(
                next_index,
                pcm_at.div_ceil(1024),
                "the tail covers every sample"
            );
            assert!(enc.finish().unwrap().is_empty());
            let n = enc.next_frame_index();
            let pcm = vec![0; enc.config().samples_for_frame(n)];
            assert!(matches!(
                enc.encode(&frame_for(n), &pcm),
                Err(MediaError::Finished { .. })
            ));
        }
    }

    #[test]
    fn the_first_1024_stream_samples_never_reach_the_aac_encoder() {
        // Priming compensation: AU k decodes to stream samples [k*1024, (k+1)*1024), so the
        // stream's first 1024 samples are dropped. A loud start changes nothing...
        let run = |pcm: &[i16]| {
            let mut enc = FrameEncoder::new(cfg(25, 48_000)).unwrap();
            let mut aus = Vec::new();
            for (n, chunk) in pcm.chunks(1920).enumerate() {
                aus.extend(enc.encode(&frame_for(n as u64), chunk).unwrap().audio);
            }
            aus.extend(enc.finish().unwrap());
            aus.into_iter().map(|a| a.data).collect::<Vec<_>>()
        };
        let silence = vec![0i16; 1920 * 4];
        let mut loud_start = silence.clone();
        loud_start[..1024].copy_from_slice(&tone(0, 1024));
        assert_eq!(run(&silence), run(&loud_start));
        // ...while sound from sample 1024 on is encoded.
        let mut loud_after = silence.clone();
        loud_after[1024..2048].copy_from_slice(&tone(0, 1024));
        assert_ne!(run(&silence), run(&loud_after));
    }

    #[test]
    fn rejected_input_changes_nothing() {
        let mut enc = FrameEncoder::new(cfg(25, 48_000)).unwrap();
        let f = I420Frame::new(64, 48);
        assert!(matches!(
            enc.encode(&f, &[0; 100]),
            Err(MediaError::PcmLength {
                frame_index: 0,
                expected: 1920,
                got: 100
            })
        ));
        assert!(matches!(
            enc.encode(&I420Frame::new(32, 32), &[0; 1920]),
            Err(MediaError::BadFrame { .. })
        ));
        assert_eq!(enc.next_frame_index(), 0);
        let u = enc.encode(&f, &[0; 1920]).unwrap();
        assert!(u.video.idr);
        assert_eq!(enc.next_frame_index(), 1);
        assert!(enc.init_segment().is_ok());
    }

    #[test]
    fn config_is_validated_and_the_init_needs_frame_zero() {
        let bad = EncoderConfig {
            fps: 0,
            ..cfg(25, 48_000)
        };
        assert!(matches!(
            FrameEncoder::new(bad),
            Err(MediaError::InvalidConfig { field: "fps", .. })
        ));
        let enc = FrameEncoder::new(cfg(25, 48_000)).unwrap();
        assert!(enc.init_segment().is_err());
        assert_eq!(enc.asc(), &[0x11, 0x88]);
    }
}
