//! The Opus stage of the WebRTC output: the stream's mono PCM (at its own rate, any AAC-table
//! rate) → 48 kHz → 20 ms Opus packets, each with its RTP time on the 48 kHz clock. RTP times
//! come from the media timeline (the sample index of the PCM), never from a wall clock: stream
//! sample `s` is RTP time `s * 48000 / rate`. A jump in the timeline (the next PCM does not start
//! where the last ended) restarts the resampler and the packet grid at the new position.
//! One stage per stream: every viewer gets the same packets.

use opus_rs::{Application, OpusEncoder};
use talkstream_providers::Resampler;

use super::WebRtcError;

/// Opus RTP clock (RFC 7587: always 48 kHz).
pub const OPUS_CLOCK: u32 = 48_000;
/// Samples per Opus packet at 48 kHz (20 ms).
pub const OPUS_FRAME: usize = 960;
/// Encoder bitrate: plenty for mono speech.
const OPUS_BITRATE_BPS: i32 = 32_000;
/// Largest packet we accept from the encoder (RFC 6716 allows 1275 bytes per frame).
const MAX_PACKET: usize = 1500;

/// One encoded 20 ms packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusPacket {
    /// RTP time of its first sample on the 48 kHz clock (extended, never wraps).
    pub rtp_time: u64,
    /// The Opus packet (TOC byte + frame).
    pub data: Vec<u8>,
}

/// PCM in, timed Opus packets out. See the module docs.
pub struct OpusStage {
    sample_rate: u32,
    resampler: Resampler,
    encoder: OpusEncoder,
    /// 48 kHz samples not yet encoded; `pending[0]` is at RTP time `pending_start`.
    pending: Vec<i16>,
    pending_start: u64,
    /// Stream sample the next pushed PCM is expected to start at.
    expected: Option<u64>,
    out: Vec<u8>,
}

impl std::fmt::Debug for OpusStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusStage")
            .field("sample_rate", &self.sample_rate)
            .field("pending", &self.pending.len())
            .field("pending_start", &self.pending_start)
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

impl OpusStage {
    /// A stage for mono PCM at `sample_rate` Hz.
    pub fn new(sample_rate: u32) -> Result<Self, WebRtcError> {
        let resampler = Resampler::new(sample_rate, OPUS_CLOCK)?;
        let mut encoder = OpusEncoder::new(OPUS_CLOCK as i32, 1, Application::Voip)
            .map_err(|reason| WebRtcError::Opus { reason })?;
        encoder.bitrate_bps = OPUS_BITRATE_BPS;
        Ok(Self {
            sample_rate,
            resampler,
            encoder,
            pending: Vec::with_capacity(OPUS_FRAME * 4),
            pending_start: 0,
            expected: None,
            out: vec![0; MAX_PACKET],
        })
    }

    /// The input sample rate.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// RTP time (48 kHz) of stream sample `sample`.
    pub fn rtp_time_of(&self, sample: u64) -> u64 {
        (u128::from(sample) * u128::from(OPUS_CLOCK) / u128::from(self.sample_rate.max(1))) as u64
    }

    /// Pushes the PCM that starts at stream sample `pcm_start`; returns the packets completed.
    pub fn push(&mut self, pcm_start: u64, pcm: &[i16]) -> Result<Vec<OpusPacket>, WebRtcError> {
        if self.expected != Some(pcm_start) {
            if self.expected.is_some() {
                tracing::debug!(
                    expected = ?self.expected,
                    got = pcm_start,
                    "audio timeline jumped; Opus packet grid restarts"
                );
            }
            self.resampler.reset();
            self.pending.clear();
            self.pending_start = self.rtp_time_of(pcm_start);
        }
        self.expected = Some(pcm_start + pcm.len() as u64);
        self.resampler.process_into(pcm, &mut self.pending);
        let mut packets = Vec::new();
        let mut used = 0;
        while self.pending.len() - used >= OPUS_FRAME {
            let frame = &self.pending[used..used + OPUS_FRAME];
            let n = self
                .encoder
                .encode_i16(frame, OPUS_FRAME, &mut self.out)
                .map_err(|reason| WebRtcError::Opus { reason })?;
            packets.push(OpusPacket {
                rtp_time: self.pending_start,
                data: self.out[..n].to_vec(),
            });
            used += OPUS_FRAME;
            self.pending_start += OPUS_FRAME as u64;
        }
        self.pending.drain(..used);
        Ok(packets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(start: u64, n: usize, rate: u32) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = (start + i as u64) as f64 / f64::from(rate);
                ((t * 440.0 * std::f64::consts::TAU).sin() * 8000.0) as i16
            })
            .collect()
    }

    #[test]
    fn packets_are_20ms_on_the_48k_clock_from_the_sample_index() {
        let rate = 22_050;
        let mut stage = OpusStage::new(rate).unwrap();
        let mut packets = Vec::new();
        // 25 fps frames of 882 samples, one second.
        let mut start = 0u64;
        for _ in 0..25 {
            packets.extend(stage.push(start, &tone(start, 882, rate)).unwrap());
            start += 882;
        }
        assert!(packets.len() >= 49, "{}", packets.len());
        for (i, p) in packets.iter().enumerate() {
            assert_eq!(p.rtp_time, i as u64 * 960);
            assert!(!p.data.is_empty() && p.data.len() < 400, "{}", p.data.len());
        }
    }

    #[test]
    fn a_timeline_jump_restarts_the_grid_at_the_new_sample() {
        let rate = 24_000;
        let mut stage = OpusStage::new(rate).unwrap();
        // 200 ms in: ten packets, less the resampler's few samples of look-ahead.
        let first = stage.push(0, &tone(0, 4800, rate)).unwrap();
        assert_eq!(first.len(), 9);
        let later = stage.push(24_000, &tone(0, 1200, rate)).unwrap();
        assert_eq!(later.len(), 2);
        assert_eq!(later[0].rtp_time, 48_000);
        assert_eq!(later[1].rtp_time, 48_960);
    }
}
