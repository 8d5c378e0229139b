//! Lip-sync from the audio itself: [`LipSync`] turns the speech samples of a stream (from any
//! TTS, at any sample rate) plus optional timing hints into one [`MouthPose`] per video frame.
//!
//! How a pose is made, per frame n (display interval `[n / fps, (n + 1) / fps)`):
//! 1. **Window.** The analyzer looks at the audio around the middle of the frame, slightly ahead
//!    of it ([`LEAD_MS`]) to make up for the lag of the smoothing (and because lips move a
//!    little before the sound): a 40 ms (or one frame, if longer) RMS window and a 21..32 ms
//!    FFT window, both centred there. This needs audio up to about 60 ms past the frame's start
//!    ([`LipSync::lookahead_samples`]): push speech as soon as it is scheduled, before its
//!    frames are rendered. Where nothing was pushed there is silence.
//! 2. **Loudness → opening.** The RMS level in dBFS passes a noise gate ([`GATE_DB`]), is
//!    smoothed with a fast attack and a slower release ([`ATTACK_MS`], [`RELEASE_MS`]) and is
//!    mapped to 0..1 over a [`RANGE_DB`] range that ends [`TOP_MARGIN_DB`] under a slowly
//!    adapting peak of the voice (starting at [`INITIAL_PEAK_DB`], so the default range is
//!    -45..-15 dBFS), which lets quiet and loud voices articulate alike. A gentle curve makes
//!    the jaw close further in the dips between syllables, and it never closes faster than
//!    [`MAX_CLOSE_PER_S`]. Below the range the mouth is exactly closed: after an abrupt stop
//!    [`MouthPose::CLOSED`] comes about 60..100 ms later.
//! 3. **Spectrum → shape.** A small FFT (written here, radix 2) gives the power spectrum; a
//!    10th-order linear-prediction envelope fitted to its pre-emphasised 0..4 kHz band gives
//!    the first two formants, which are matched softly against vowel prototypes: low F2
//!    (energy concentrated under ~1 kHz) rounds the lips (O, U), a high F2 spreads them (E, I),
//!    a high F1 with a central F2 is the open A; a low F1 picks the closer vowel of each pair.
//!    The class weights blend [`MouthPose::for_vowel`] presets and are smoothed over
//!    [`SHAPE_MS`]; the vowel also scales the jaw a little (an "ee" opens ~75 % as far as an
//!    "ah" at the same loudness). Fricative noise (energy above 3.5 kHz) narrows the jaw and
//!    spreads the lips. The formant estimates are sample-rate independent (8..48 kHz).
//! 4. **Consonants from the text.** Timing hints ([`LipSync::add_hint`]) place the visible
//!    consonants of the words ([`crate::Viseme`]): an m, b or p at the frame presses the lips
//!    together ([`MouthPose::press`], the jaw closed) for that moment; f/v put the lower lip on
//!    the teeth, t/d/n/l/th raise the tongue, s/z, sh/ch and r narrow, spread or round the lips,
//!    each only ever closing the jaw further than the audio has it.
//!
//! Everything is a pure function of what was pushed and asked: no clock, no I/O, no
//! randomness. Frames are meant to be asked in increasing order (each call advances the
//! smoothing by one frame); see [`LipSync::pose_for_frame`] for skips and repeats.

use crate::mouth::{MouthPose, VowelClass};
use crate::viseme::Viseme;

mod buffer;
mod features;
mod marks;

use buffer::Audio;
use features::Analyzer;
use marks::Marks;

/// Attack time constant of the level smoothing, in milliseconds.
pub const ATTACK_MS: f32 = 30.0;
/// Release time constant of the level smoothing, in milliseconds.
pub const RELEASE_MS: f32 = 70.0;
/// Time constant of the mouth-shape (vowel class) smoothing, in milliseconds.
pub const SHAPE_MS: f32 = 60.0;
/// Levels below this (dBFS, 40 ms RMS) count as silence.
pub const GATE_DB: f32 = -60.0;
/// The voice peak the analyzer assumes before it has heard anything, in dBFS.
pub const INITIAL_PEAK_DB: f32 = -12.0;
/// Width of the level range mapped onto the jaw opening, in dB.
pub const RANGE_DB: f32 = 30.0;
/// The opening reaches 1 this many dB under the voice peak.
pub const TOP_MARGIN_DB: f32 = 3.0;
/// How far ahead of the middle of a frame its analysis window is centred, in milliseconds.
pub const LEAD_MS: f32 = 20.0;
/// Length of the RMS window, in milliseconds (at least one frame).
pub const WINDOW_MS: u32 = 40;

/// The jaw closes at most this fast (full opening per second): a fully open mouth takes at least
/// about 110 ms to close.
pub const MAX_CLOSE_PER_S: f32 = 9.0;
/// Exponent applied to the 0..1 position of the level in its dB range: above 1 the jaw closes
/// further in the dips between syllables (with 2, the opening is close to proportional to the
/// amplitude over the top 20 dB).
const OPEN_CURVE: f32 = 2.0;
/// Lowest the adaptive voice peak may go, in dBFS.
const PEAK_MIN_DB: f32 = -42.0;
/// Highest the adaptive voice peak may go, in dBFS.
const PEAK_MAX_DB: f32 = 0.0;
/// Attack time constant of the peak tracker, in milliseconds.
const PEAK_ATTACK_MS: f32 = 60.0;
/// How fast the peak falls while the voice stays under it, in dB per second.
const PEAK_DECAY_DB_PER_S: f32 = 4.0;
/// Silence is represented this many dB under the bottom of the range, which bounds how long
/// the release takes to close the mouth.
const SILENCE_MARGIN_DB: f32 = 12.0;
/// Upper end of the FFT window length, in milliseconds (the largest power of two not longer
/// than this is used).
const FFT_MS: u32 = 32;
/// How far a consonant other than m/b/p moves the mouth toward its own pose (it shares the
/// moment with the audio's vowel, and the text's timing is a guess).
const CONSONANT_WEIGHT: f32 = 0.7;
/// When asked for a frame far from the last one, the smoothing restarts this many seconds of
/// frames earlier (at least 4 frames).
const WARMUP_S: f32 = 0.5;
/// Audio further back than this before the last frame asked for is dropped automatically.
const AUTO_DISCARD_S: u64 = 30;

/// Audio-driven mouth animation for one stream. See the module documentation.
///
/// ```
/// use talkstream_avatar::{LipSync, MouthPose};
///
/// let mut lips = LipSync::new(16_000, 25);
/// assert_eq!(lips.pose_for_frame(0), MouthPose::CLOSED);
/// // 300 ms of a loud 220 Hz tone starting at 200 ms.
/// let tone: Vec<i16> = (0..4_800)
///     .map(|i| ((i as f32 * 220.0 * std::f32::consts::TAU / 16_000.0).sin() * 8_000.0) as i16)
///     .collect();
/// lips.push_audio(3_200, &tone);
/// let opens: Vec<f32> = (1..20).map(|n| lips.pose_for_frame(n).open).collect();
/// assert!(opens[7] > 0.3); // frame 8, 320 ms
/// assert_eq!(opens[18], 0.0); // frame 19, 760 ms: closed again
/// ```
#[derive(Debug, Clone)]
pub struct LipSync {
    sr: u32,
    fps: u32,
    audio: Audio,
    /// Consonants placed by timing hints, in stream milliseconds.
    marks: Marks,
    analyzer: Analyzer,
    state: State,
    /// State before the last frame was stepped (to answer a repeated frame).
    prev: State,
    /// Last frame stepped.
    last: Option<u64>,
    consts: Consts,
}

/// Per-frame smoothing factors and window sizes, derived from the rates.
#[derive(Debug, Clone, Copy)]
struct Consts {
    attack: f32,
    release: f32,
    shape: f32,
    peak_attack: f32,
    peak_decay_db: f32,
    /// Largest drop of the loudness-derived opening per frame.
    max_close: f32,
    /// RMS window length in samples.
    rms_len: u64,
    /// Samples from the frame start to the analysis centre.
    centre_offset: u64,
    warmup: u64,
}

/// The smoothing state carried from frame to frame.
#[derive(Debug, Clone, Copy, PartialEq)]
struct State {
    /// Smoothed level, dBFS.
    level_db: f32,
    /// Adaptive voice peak, dBFS.
    peak_db: f32,
    /// Smoothed vowel class weights: A, E, I, O, U.
    shape: [f32; 5],
    /// Loudness-derived opening of the last frame (0 = closed).
    loud: f32,
}

impl State {
    fn initial() -> Self {
        State {
            level_db: floor_db(INITIAL_PEAK_DB) - SILENCE_MARGIN_DB,
            peak_db: INITIAL_PEAK_DB,
            shape: [1.0, 0.0, 0.0, 0.0, 0.0],
            loud: 0.0,
        }
    }

    /// Back to silence, keeping what was learnt about the voice.
    fn quiet(self) -> Self {
        State {
            peak_db: self.peak_db,
            ..State::initial()
        }
    }
}

/// Bottom of the mapped range for a peak.
fn floor_db(peak_db: f32) -> f32 {
    (peak_db - TOP_MARGIN_DB - RANGE_DB).max(GATE_DB)
}

impl LipSync {
    /// An analyzer for mono audio at `sample_rate` Hz (meant for 8000..=48000; clamped to
    /// 4000..=192000) and video at `fps` frames per second (clamped to 1..=240).
    pub fn new(sample_rate: u32, fps: u32) -> Self {
        let sr = sample_rate.clamp(4_000, 192_000);
        let fps = fps.clamp(1, 240);
        let frame_ms = 1000.0 / fps as f32;
        let per_frame = |tau_ms: f32| 1.0 - (-frame_ms / tau_ms).exp();
        let rms_len = (u64::from(sr) * u64::from(WINDOW_MS) / 1000).max(u64::from(sr / fps));
        let half_frame = u64::from(sr) / (2 * u64::from(fps));
        let lead = (sr as f32 * LEAD_MS / 1000.0).round() as u64;
        let analyzer = Analyzer::new(sr, rms_len as usize);
        let consts = Consts {
            attack: per_frame(ATTACK_MS),
            release: per_frame(RELEASE_MS),
            shape: per_frame(SHAPE_MS),
            peak_attack: per_frame(PEAK_ATTACK_MS),
            peak_decay_db: PEAK_DECAY_DB_PER_S / fps as f32,
            max_close: MAX_CLOSE_PER_S / fps as f32,
            rms_len,
            centre_offset: half_frame + lead,
            warmup: ((WARMUP_S * fps as f32).ceil() as u64).max(4),
        };
        LipSync {
            sr,
            fps,
            audio: Audio::default(),
            marks: Marks::default(),
            analyzer,
            state: State::initial(),
            prev: State::initial(),
            last: None,
            consts,
        }
    }

    /// The sample rate in use (after clamping).
    pub fn sample_rate(&self) -> u32 {
        self.sr
    }

    /// The frame rate in use (after clamping).
    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// First stream sample of frame `frame_index`: `floor(frame_index * sample_rate / fps)`.
    pub fn frame_start_sample(&self, frame_index: u64) -> u64 {
        let v = u128::from(frame_index) * u128::from(self.sr) / u128::from(self.fps);
        u64::try_from(v).unwrap_or(u64::MAX)
    }

    /// The stream samples `[start, end)` that the pose of `frame_index` depends on (clipped at
    /// sample 0).
    pub fn frame_window(&self, frame_index: u64) -> (u64, u64) {
        let start = self.window_start(frame_index);
        let end = start + self.analyzer.span() as i128;
        let clip = |v: i128| u64::try_from(v.max(0)).unwrap_or(u64::MAX);
        (clip(start), clip(end))
    }

    /// First sample of the analysis window of a frame (negative before the stream start).
    fn window_start(&self, frame_index: u64) -> i128 {
        let centre = i128::from(self.frame_start_sample(frame_index))
            + i128::from(self.consts.centre_offset);
        centre - (self.analyzer.span() / 2) as i128
    }

    /// How many samples past the start of a frame the analyzer reads (about 60 ms at 25 fps):
    /// audio for frame n must have been pushed up to `frame_start_sample(n) + lookahead` for
    /// its pose to be final.
    pub fn lookahead_samples(&self) -> u64 {
        let (_, end) = self.frame_window(1_000);
        end.saturating_sub(self.frame_start_sample(1_000))
    }

    /// Store speech samples starting at stream sample `start_sample`. Chunks may come in any
    /// size; gaps between them are silence; a chunk over already pushed audio replaces it.
    /// Samples before the last [`LipSync::discard_before`] point are ignored.
    pub fn push_audio(&mut self, start_sample: u64, pcm: &[i16]) {
        self.audio.write(start_sample, pcm);
    }

    /// A timing hint from the TTS, in stream milliseconds `[start_ms, end_ms)`: a single
    /// character or phoneme (`"m"`, `"f"`, `"t"` …), or a word or phrase, whose letters are read
    /// as graphemes ([`crate::viseme::graphemes`]: th, sh, ph … are one sound, doubled letters
    /// one, a final `mb` one closure) placed in proportion to their position among the letters.
    /// Each visible consonant gets a mark: bilabial closures last 50..110 ms in words, other
    /// consonants 40..90 ms, and a single character the hinted length (at least that, at most
    /// 300 ms). Vowels, h and other characters add nothing: the audio shapes the vowels.
    pub fn add_hint(&mut self, start_ms: u64, end_ms: u64, text: &str) {
        self.marks.add_hint(start_ms, end_ms, text);
    }

    /// Barge-in: forget all audio and hints from stream sample `sample` on. Frames after that
    /// point close the mouth smoothly within about 40..120 ms (at most 200 ms) of stream time.
    pub fn clear_from(&mut self, sample: u64) {
        self.audio.truncate(sample);
        let ms = self.sample_to_ms(sample);
        self.marks.clear_from(ms);
    }

    /// Drop audio and hints before stream sample `sample` (keeps memory bounded; call it with
    /// a point at least a second behind the frames being rendered). Audio pushed later for
    /// earlier samples is ignored. Audio and hints more than 30 s behind the last frame asked
    /// for are dropped automatically.
    pub fn discard_before(&mut self, sample: u64) {
        self.audio.discard_before(sample);
        let ms = self.sample_to_ms(sample);
        self.marks.discard_before(ms);
    }

    /// Samples of audio held (for monitoring memory use).
    pub fn buffered_samples(&self) -> usize {
        self.audio.len()
    }

    /// Forget everything: audio, hints and the smoothing state (including the learnt voice
    /// peak).
    pub fn reset(&mut self) {
        *self = LipSync::new(self.sr, self.fps);
    }

    fn sample_to_ms(&self, sample: u64) -> u64 {
        let v = u128::from(sample) * 1000 / u128::from(self.sr);
        u64::try_from(v).unwrap_or(u64::MAX)
    }

    /// The mouth pose for video frame `frame_index` (media time `frame_index / fps`).
    ///
    /// Frames are meant to be asked in increasing order, one call per frame: each call advances
    /// the smoothing. Asking the same frame again recomputes it from the state before it (so
    /// it sees audio pushed since). A small forward skip steps through the skipped frames;
    /// a large skip or a step back restarts the smoothing half a second before the frame
    /// (keeping the learnt voice peak). Same calls, same poses.
    pub fn pose_for_frame(&mut self, frame_index: u64) -> MouthPose {
        let n = frame_index;
        let max_skip = 2 * self.consts.warmup;
        let from = match self.last {
            Some(l) if n == l => {
                self.state = self.prev;
                n
            }
            Some(l) if n > l && n - l <= max_skip => l + 1,
            None if n == 0 => 0,
            _ => {
                self.state = self.state.quiet();
                n.saturating_sub(self.consts.warmup)
            }
        };
        let mut pose = MouthPose::CLOSED;
        for k in from..=n {
            self.prev = self.state;
            pose = self.step(k);
        }
        self.last = Some(n);
        let keep = u64::from(self.sr) * AUTO_DISCARD_S;
        let horizon = self.frame_start_sample(n).saturating_sub(keep);
        if horizon > 0 {
            self.audio.discard_before(horizon);
            let ms = self.sample_to_ms(horizon);
            self.marks.discard_before(ms);
        }
        pose
    }

    /// Advance the state by frame `n` and return its pose.
    fn step(&mut self, n: u64) -> MouthPose {
        let start = self.window_start(n);
        let f = self
            .analyzer
            .analyze(&self.audio, start, self.consts.rms_len as usize);
        let c = self.consts;
        let s = &mut self.state;

        // Voice peak: fast up, slowly down while the voice is present.
        let voiced = f.level_db > GATE_DB;
        if voiced {
            if f.level_db > s.peak_db {
                s.peak_db += (f.level_db - s.peak_db) * c.peak_attack;
            } else if f.level_db > s.peak_db - RANGE_DB {
                s.peak_db = (s.peak_db - c.peak_decay_db).max(f.level_db);
            }
            s.peak_db = s.peak_db.clamp(PEAK_MIN_DB, PEAK_MAX_DB);
        }
        let floor = floor_db(s.peak_db);
        let top = s.peak_db - TOP_MARGIN_DB;
        let silence = floor - SILENCE_MARGIN_DB;
        let target = if voiced {
            f.level_db.max(silence)
        } else {
            silence
        };
        let k = if target > s.level_db {
            c.attack
        } else {
            c.release
        };
        s.level_db += (target - s.level_db) * k;
        let x = ((s.level_db - floor) / (top - floor).max(1.0)).clamp(0.0, 1.0);
        // The jaw never closes faster than MAX_CLOSE_PER_S, so even an abrupt stop takes a
        // few frames.
        let loud = x.powf(OPEN_CURVE).max(s.loud - c.max_close).max(0.0);

        // Mouth shape: snap while the mouth is closed (nothing to see), smooth otherwise.
        if voiced {
            let w = f.class_weights();
            if s.loud <= 0.0 {
                s.shape = w;
            } else {
                for (x, t) in s.shape.iter_mut().zip(w) {
                    *x += (t - *x) * c.shape;
                }
            }
        }
        s.loud = loud;

        let pose = if loud <= 0.0 {
            MouthPose::CLOSED
        } else {
            compose(loud, s.shape, f.fricative)
        };
        let fps = f64::from(self.fps);
        let (t0, t1) = (n as f64 * 1000.0 / fps, (n as f64 + 1.0) * 1000.0 / fps);
        match self.marks.strongest(t0, t1) {
            Some((Viseme::Pp, w)) => MouthPose::lerp(pose, Viseme::Pp.pose(), w),
            Some((v, w)) => articulate(pose, v.pose(), w),
            None => pose,
        }
    }
}

/// A consonant's pose `c` blended into the audio's pose by `w` (0..=1): the jaw only closes
/// further, the lips move toward the consonant's shape, the lower lip and the tongue show as
/// far as the mouth is open to show them.
fn articulate(pose: MouthPose, c: MouthPose, w: f32) -> MouthPose {
    let k = w * CONSONANT_WEIGHT;
    let show = (pose.open / 0.1).min(1.0);
    MouthPose {
        open: pose.open + (c.open.min(pose.open) - pose.open) * k,
        wide: pose.wide + (c.wide - pose.wide) * k * show,
        round: pose.round + (c.round - pose.round) * k * show,
        press: 0.0,
        bite: c.bite * w * show,
        tongue: c.tongue * w * show,
    }
    .clamped()
}

/// The pose for a loudness-derived opening, smoothed class weights and fricative share.
fn compose(loud: f32, shape: [f32; 5], fricative: f32) -> MouthPose {
    const CLASSES: [VowelClass; 5] = [
        VowelClass::A,
        VowelClass::E,
        VowelClass::I,
        VowelClass::O,
        VowelClass::U,
    ];
    let total: f32 = shape.iter().sum();
    let mut p = MouthPose::CLOSED;
    if total > 0.0 {
        for (w, class) in shape.iter().zip(CLASSES) {
            let v = MouthPose::for_vowel(class);
            let w = w / total;
            p.open += v.open * w;
            p.wide += v.wide * w;
            p.round += v.round * w;
        }
    } else {
        p = MouthPose::for_vowel(VowelClass::A);
    }
    let a_open = MouthPose::for_vowel(VowelClass::A).open;
    // The jaw follows loudness; the vowel scales it between 75 % ("ee") and 100 % ("ah").
    let jaw = 0.65 + 0.35 * (p.open / a_open).min(1.0);
    // Fricatives (s, f, sh) are loud but show the teeth: less jaw, a little spread.
    let fric = smoothstep(0.35, 0.8, fricative);
    let open = loud * jaw * (1.0 - 0.45 * fric);
    // The lip shape fades in with the opening so a nearly closed mouth is relaxed.
    let show = (loud / 0.3).min(1.0);
    let wide = (p.wide * (1.0 - fric) + 0.7 * fric) * show;
    let round = p.round * (1.0 - fric) * show;
    MouthPose::new(open, wide, round).clamped()
}

fn smoothstep(a: f32, b: f32, x: f32) -> f32 {
    let t = ((x - a) / (b - a)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{
        best_lag, loudness_envelope, pearson, synthetic_speech, synthetic_vowel, vowel_formants,
    };

    fn vowel(sr: u32, class: VowelClass, ms: u32, rms: f32) -> Vec<i16> {
        let f = vowel_formants(class).unwrap_or([500.0, 1500.0, 2500.0]);
        synthetic_vowel(sr, f, 120.0, ms, rms)
    }

    fn poses(ls: &mut LipSync, frames: std::ops::Range<u64>) -> Vec<MouthPose> {
        frames.map(|n| ls.pose_for_frame(n)).collect()
    }

    /// Frame index whose display interval starts at `ms` (25 fps).
    fn frame_at(ms: u64) -> u64 {
        ms / 40
    }

    #[test]
    fn silence_is_exactly_closed() {
        let mut ls = LipSync::new(48_000, 25);
        assert!(poses(&mut ls, 0..50)
            .iter()
            .all(|p| *p == MouthPose::CLOSED));
        // Pushed digital silence and noise under the gate (about -70 dBFS) stay closed.
        let mut ls = LipSync::new(16_000, 25);
        let quiet: Vec<i16> = (0..32_000).map(|i| [7i16, -9, 4, -6, 10][i % 5]).collect();
        ls.push_audio(0, &vec![0; 16_000]);
        ls.push_audio(16_000, &quiet);
        for (n, p) in poses(&mut ls, 0..75).iter().enumerate() {
            assert_eq!(*p, MouthPose::CLOSED, "frame {n}");
        }
    }

    /// A vowel whose level ramps from -50 to -10 dBFS over 1 s from 200 ms, holds until 1.5 s,
    /// then stops.
    fn ramp_burst(sr: u32) -> Vec<i16> {
        let steady = vowel(sr, VowelClass::A, 2_000, 0.1);
        steady
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let t = i as f32 / sr as f32;
                let db = match t {
                    t if t < 0.2 => return 0,
                    t if t < 1.2 => -50.0 + 40.0 * (t - 0.2),
                    t if t < 1.5 => -10.0,
                    _ => return 0,
                };
                // The vowel has -20 dBFS RMS.
                (f32::from(v) * 10f32.powf((db + 20.0) / 20.0)).round() as i16
            })
            .collect()
    }

    #[test]
    fn ramping_burst_opens_monotonically_and_closes_after_it() {
        for sr in [8_000, 48_000] {
            let mut ls = LipSync::new(sr, 25);
            ls.push_audio(0, &ramp_burst(sr));
            let p = poses(&mut ls, 0..60);
            let open: Vec<f32> = p.iter().map(|p| p.open).collect();
            // Closed before the burst (the window reaches ~60 ms past a frame's start).
            for (n, pose) in p.iter().enumerate().take(frame_at(140) as usize) {
                assert_eq!(*pose, MouthPose::CLOSED, "{sr} Hz, frame {n}");
            }
            // Opening follows the rising level, never goes back while it rises or holds.
            let last_full = frame_at(1_440) as usize;
            for n in 1..=last_full {
                assert!(
                    open[n] >= open[n - 1],
                    "{sr} Hz: not monotonic at {n}: {open:?}"
                );
            }
            assert!(open[frame_at(400) as usize] < 0.1, "{open:?}");
            assert!(open[frame_at(800) as usize] > 0.2, "{open:?}");
            assert!(open[frame_at(1_300) as usize] > 0.8, "{open:?}");
            // Exactly closed 100 ms after the end, and from then on.
            for (n, pose) in p.iter().enumerate().skip(frame_at(1_600) as usize) {
                assert_eq!(*pose, MouthPose::CLOSED, "{sr} Hz, frame {n}: {open:?}");
            }
        }
    }

    #[test]
    fn opening_follows_the_loudness_of_speech_like_audio() {
        for (sr, seed) in [
            (48_000, 1),
            (16_000, 2),
            (8_000, 3),
            (22_050, 4),
            (44_100, 5),
        ] {
            let pcm = synthetic_speech(sr, 12_000, seed);
            let env = loudness_envelope(&pcm, sr, 25);
            let mut ls = LipSync::new(sr, 25);
            ls.push_audio(0, &pcm);
            let open: Vec<f32> = poses(&mut ls, 0..env.len() as u64)
                .iter()
                .map(|p| p.open)
                .collect();
            let r = pearson(&env, &open);
            let (lag, rl) = best_lag(&env, &open, 5);
            assert!(r >= 0.8, "{sr} Hz: r = {r}");
            assert!(lag.abs() <= 1, "{sr} Hz: best lag {lag} frames (r {rl})");
            // Silent frames (no audio from 120 ms before their start to the end of their
            // lookahead) are exactly closed.
            let ahead = ls.lookahead_samples() as usize;
            for (n, &o) in open.iter().enumerate() {
                let start = ls.frame_start_sample(n as u64) as usize;
                let from = start.saturating_sub(sr as usize * 12 / 100);
                let to = (start + ahead).min(pcm.len());
                if pcm[from..to].iter().all(|&v| v == 0) {
                    assert_eq!(o, 0.0, "{sr} Hz: frame {n} in silence");
                }
            }
        }
    }

    #[test]
    fn other_frame_rates_keep_sync() {
        for fps in [24, 30, 50, 60] {
            let pcm = synthetic_speech(48_000, 10_000, 9);
            let env = loudness_envelope(&pcm, 48_000, fps);
            let mut ls = LipSync::new(48_000, fps);
            ls.push_audio(0, &pcm);
            let open: Vec<f32> = poses(&mut ls, 0..env.len() as u64)
                .iter()
                .map(|p| p.open)
                .collect();
            let (lag, r) = best_lag(&env, &open, 6);
            assert!(r >= 0.75, "{fps} fps: r = {r}");
            // Within 40 ms.
            assert!(
                lag.unsigned_abs() as u32 * 1000 / fps <= 40,
                "{fps} fps: lag {lag}"
            );
        }
    }

    fn steady_shape(sr: u32, class: VowelClass) -> MouthPose {
        let mut ls = LipSync::new(sr, 25);
        ls.push_audio(0, &vowel(sr, class, 1_000, 0.08));
        let p = poses(&mut ls, 0..25);
        let n = p[8..18].len() as f32;
        let sum = p[8..18].iter().fold(MouthPose::CLOSED, |a, b| {
            MouthPose::new(a.open + b.open, a.wide + b.wide, a.round + b.round)
        });
        MouthPose::new(sum.open / n, sum.wide / n, sum.round / n)
    }

    #[test]
    fn vowel_shapes_follow_the_formants() {
        for sr in [8_000, 16_000, 48_000] {
            let u = steady_shape(sr, VowelClass::U);
            let o = steady_shape(sr, VowelClass::O);
            let i = steady_shape(sr, VowelClass::I);
            let e = steady_shape(sr, VowelClass::E);
            let a = steady_shape(sr, VowelClass::A);
            // Energy below 900 Hz: rounded.
            for (name, p) in [("U", u), ("O", o)] {
                assert!(p.round > p.wide + 0.3, "{sr} Hz {name}: {p:?}");
            }
            // Strong second formant: spread.
            for (name, p) in [("I", i), ("E", e)] {
                assert!(p.wide > p.round + 0.3, "{sr} Hz {name}: {p:?}");
            }
            // Broad open spectrum: the widest jaw, neither spread nor round.
            for p in [u, o, i, e] {
                assert!(a.open > p.open, "{sr} Hz: A {a:?} vs {p:?}");
            }
            assert!(a.wide < 0.5 && a.round < 0.5, "{sr} Hz: A {a:?}");
            // Close vowels are more extreme than their open partners.
            assert!(i.wide > e.wide && u.round > o.round, "{sr} Hz");
        }
    }

    #[test]
    fn steady_sound_gives_a_steady_mouth() {
        let mut ls = LipSync::new(48_000, 25);
        ls.push_audio(0, &vowel(48_000, VowelClass::E, 2_000, 0.06));
        let p = poses(&mut ls, 0..50);
        for n in 10..45 {
            let d = (p[n].open - p[n - 1].open).abs()
                + (p[n].wide - p[n - 1].wide).abs()
                + (p[n].round - p[n - 1].round).abs();
            assert!(
                d < 0.02,
                "jitter at frame {n}: {:?} -> {:?}",
                p[n - 1],
                p[n]
            );
        }
    }

    #[test]
    fn bilabial_hints_press_the_lips() {
        let sr = 16_000;
        let speech = vowel(sr, VowelClass::A, 2_000, 0.08);
        let closed = MouthPose::for_vowel(VowelClass::Closed);

        // A character hint: "m" at 400..470 ms.
        let mut ls = LipSync::new(sr, 25);
        ls.push_audio(0, &speech);
        ls.add_hint(400, 470, "m");
        let p = poses(&mut ls, 0..50);
        assert_eq!(p[frame_at(400) as usize], closed);
        assert!(p[frame_at(280) as usize].open > 0.5, "{:?}", p[7]);
        assert!(p[frame_at(560) as usize].open > 0.5, "{:?}", p[14]);
        // Without the hint the same frame is open.
        let mut plain = LipSync::new(sr, 25);
        plain.push_audio(0, &speech);
        assert!(poses(&mut plain, 0..50)[frame_at(400) as usize].open > 0.5);

        // Other characters do nothing; upper case works.
        let mut ls = LipSync::new(sr, 25);
        ls.push_audio(0, &speech);
        ls.add_hint(400, 470, "a");
        ls.add_hint(800, 860, "P");
        let p = poses(&mut ls, 0..50);
        assert!(p[frame_at(400) as usize].open > 0.5);
        assert_eq!(p[frame_at(800) as usize], closed);

        // A word: "moon" from 1000 to 1400 ms closes at its start only; its n raises the
        // tongue and narrows the jaw without closing the lips.
        let mut ls = LipSync::new(sr, 25);
        ls.push_audio(0, &speech);
        ls.add_hint(1_000, 1_400, "moon,");
        let p = poses(&mut ls, 0..50);
        assert_eq!(p[frame_at(1_000) as usize], closed);
        assert!(p[frame_at(1_120) as usize].open > 0.5);
        let n = p[frame_at(1_320) as usize];
        assert!(n.tongue > 0.5 && n.press == 0.0, "{n:?}");
        assert!(
            n.open > 0.2 && n.open < p[frame_at(1_120) as usize].open,
            "{n:?}"
        );
    }

    #[test]
    fn consonant_hints_shape_the_mouth_but_never_open_it() {
        let sr = 16_000;
        let speech = vowel(sr, VowelClass::A, 2_000, 0.08);
        let mut plain = LipSync::new(sr, 25);
        plain.push_audio(0, &speech);
        let free = poses(&mut plain, 0..50);
        // "fat" at 400..700 ms (f 400..500, t 600..700), "think" at 1000..1400 (th first).
        let mut ls = LipSync::new(sr, 25);
        ls.push_audio(0, &speech);
        ls.add_hint(400, 700, "fat");
        ls.add_hint(1_000, 1_400, "think");
        let p = poses(&mut ls, 0..50);
        let f = p[frame_at(440) as usize];
        assert!(
            f.bite > 0.9 && f.tongue == 0.0 && f.press == 0.0,
            "f: {f:?}"
        );
        let t = p[frame_at(640) as usize];
        assert!(t.tongue > 0.5 && t.bite == 0.0, "t: {t:?}");
        let th = p[frame_at(1_040) as usize];
        assert!(th.tongue > 0.9, "th: {th:?}");
        // The vowel between keeps its audio pose; no frame opens wider than the audio says.
        assert_eq!(p[frame_at(560) as usize], free[frame_at(560) as usize]);
        for (n, (a, b)) in p.iter().zip(&free).enumerate() {
            assert!(a.open <= b.open + 1e-6, "frame {n}: {a:?} vs {b:?}");
        }
        // In silence a hint shows nothing.
        let mut quiet = LipSync::new(sr, 25);
        quiet.add_hint(400, 700, "fat");
        assert!(poses(&mut quiet, 0..30)
            .iter()
            .all(|p| *p == MouthPose::CLOSED));
    }

    #[test]
    fn word_hints_place_bilabials_in_proportion() {
        let mut ls = LipSync::new(16_000, 25);
        ls.add_hint(1_000, 1_600, "ramp");
        // r a m p: "mp" is one closure over letters 2..4 = 1300..1600 ms, capped at 110 ms.
        assert_eq!(ls.marks.of(Viseme::Pp), vec![(1_395, 1_505)]);
        let mut ls = LipSync::new(16_000, 25);
        ls.add_hint(0, 500, "phone");
        ls.add_hint(500, 900, "lamb");
        ls.add_hint(900, 1_000, "the");
        // "mb" at the end of lamb is one closure (letters 2..4 = 700..900 ms, capped).
        assert_eq!(
            ls.marks.of(Viseme::Pp),
            vec![(745, 855)],
            "lamb: one closure, phone: none"
        );
        let mut ls = LipSync::new(16_000, 25);
        ls.add_hint(2_000, 2_000, "b");
        ls.add_hint(3_000, 3_900, "m");
        assert_eq!(
            ls.marks.of(Viseme::Pp),
            vec![(1_975, 2_025), (3_300, 3_600)]
        );
    }

    #[test]
    fn clear_from_closes_the_mouth_soon_and_smoothly() {
        for sr in [16_000u32, 48_000] {
            let mut ls = LipSync::new(sr, 25);
            ls.push_audio(0, &vowel(sr, VowelClass::A, 3_000, 0.08));
            ls.add_hint(1_500, 1_560, "b");
            let before = poses(&mut ls, 0..25);
            assert!(before[24].open > 0.7);
            // Barge-in at 1.0 s (frame 25 is the next to render).
            ls.clear_from(u64::from(sr));
            assert!(ls.marks.len() == 0);
            let after = poses(&mut ls, 25..60);
            let open: Vec<f32> = after.iter().map(|p| p.open).collect();
            // Closed within 200 ms...
            for (i, p) in after.iter().enumerate().skip(5) {
                assert_eq!(*p, MouthPose::CLOSED, "{sr} Hz: frame {}: {open:?}", 25 + i);
            }
            // ...but not in one jump: at least one frame in between.
            assert!(open[..5].iter().any(|&o| o > 0.05 && o < 0.6), "{open:?}");
            for w in open.windows(2) {
                assert!(w[1] <= w[0] + 1e-6, "{open:?}");
            }
        }
    }

    #[test]
    fn same_input_same_poses_however_it_arrives() {
        let sr = 24_000;
        let pcm = synthetic_speech(sr, 6_000, 11);
        let mut whole = LipSync::new(sr, 25);
        whole.push_audio(0, &pcm);
        whole.add_hint(900, 1_300, "maybe");
        let a = poses(&mut whole, 0..150);

        // The same audio in uneven chunks, pushed just ahead of rendering.
        let mut streamed = LipSync::new(sr, 25);
        streamed.add_hint(900, 1_300, "maybe");
        let mut pushed = 0usize;
        let mut b = Vec::new();
        let sizes = [480usize, 1_000, 77, 2_400, 960, 13];
        for n in 0..150u64 {
            let need = streamed.frame_window(n).1 as usize;
            let mut k = 0;
            while pushed < need.min(pcm.len()) {
                let len = sizes[k % sizes.len()].min(pcm.len() - pushed);
                streamed.push_audio(pushed as u64, &pcm[pushed..pushed + len]);
                pushed += len;
                k += 1;
            }
            if n % 25 == 0 {
                streamed.discard_before(streamed.frame_start_sample(n).saturating_sub(24_000));
            }
            b.push(streamed.pose_for_frame(n));
        }
        assert_eq!(a, b);
        assert!(a.iter().any(|p| p.open > 0.5));

        // Asking a frame twice gives the same pose; a fresh analyzer repeats the whole run.
        let mut again = LipSync::new(sr, 25);
        again.push_audio(0, &pcm);
        again.add_hint(900, 1_300, "maybe");
        for n in 0..150 {
            let p = again.pose_for_frame(n);
            assert_eq!(p, a[n as usize]);
            assert_eq!(again.pose_for_frame(n), p);
        }
    }

    #[test]
    fn skips_and_seeks_settle_on_the_same_pose() {
        let sr = 16_000;
        let pcm = vowel(sr, VowelClass::O, 3_000, 0.08);
        let mut seq = LipSync::new(sr, 25);
        seq.push_audio(0, &pcm);
        let all = poses(&mut seq, 0..70);
        let mut jump = LipSync::new(sr, 25);
        jump.push_audio(0, &pcm);
        // A seek far ahead warms up on half a second of frames: the same shape, open (the
        // voice peak has had less time to adapt, so the jaw may differ a little).
        let p = jump.pose_for_frame(50);
        assert!(
            (p.wide - all[50].wide).abs() < 0.02,
            "{p:?} vs {:?}",
            all[50]
        );
        assert!(
            (p.round - all[50].round).abs() < 0.02,
            "{p:?} vs {:?}",
            all[50]
        );
        assert!(p.open > 0.5, "{p:?}");
        // A short skip steps through the skipped frames: identical.
        let mut skip = LipSync::new(sr, 25);
        skip.push_audio(0, &pcm);
        poses(&mut skip, 0..10);
        assert_eq!(skip.pose_for_frame(14), all[14]);
        // Going back restarts the smoothing before the frame: still the steady shape.
        let back = skip.pose_for_frame(20);
        assert!(
            (back.round - all[20].round).abs() < 0.02,
            "{back:?} vs {:?}",
            all[20]
        );
        assert!(back.open > 0.5, "{back:?}");
    }

    #[test]
    fn memory_stays_bounded() {
        let sr = 48_000u32;
        let chunk = vowel(sr, VowelClass::E, 1_000, 0.05);
        let mut ls = LipSync::new(sr, 25);
        let mut auto = LipSync::new(sr, 25);
        for s in 0..120u64 {
            for l in [&mut ls, &mut auto] {
                l.push_audio(s * u64::from(sr), &chunk);
                l.add_hint(s * 1_000 + 100, s * 1_000 + 200, "m");
            }
            for n in s * 25..(s + 1) * 25 {
                ls.pose_for_frame(n);
                auto.pose_for_frame(n);
            }
            ls.discard_before((s * u64::from(sr)).saturating_sub(u64::from(sr)));
        }
        assert!(
            ls.buffered_samples() <= 2 * sr as usize,
            "{}",
            ls.buffered_samples()
        );
        assert!(ls.marks.len() <= 2);
        assert!(auto.buffered_samples() <= 31 * sr as usize);
        assert!(auto.marks.len() <= 32, "{}", auto.marks.len());
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        for (sr, fps) in [
            (0, 0),
            (1, 1),
            (u32::MAX, u32::MAX),
            (8_000, 1),
            (48_000, 240),
        ] {
            let mut ls = LipSync::new(sr, fps);
            ls.push_audio(u64::MAX - 3, &[1_000; 100]);
            ls.push_audio(0, &[i16::MIN; 10_000]);
            ls.push_audio(5, &[i16::MAX; 100]);
            ls.add_hint(u64::MAX - 1, u64::MAX, "mmm");
            ls.add_hint(10, 5, "b");
            ls.add_hint(0, u64::MAX, "bamboo");
            ls.add_hint(0, 0, "");
            for n in [0, 1, 2, u64::MAX, u64::MAX - 1, 3] {
                let p = ls.pose_for_frame(n);
                assert_eq!(p, p.clamped());
            }
            ls.clear_from(3);
            ls.discard_before(u64::MAX);
            ls.push_audio(0, &[5; 10]);
            assert_eq!(ls.buffered_samples(), 0);
            let _ = ls.lookahead_samples();
            let _ = ls.frame_window(u64::MAX);
        }
    }

    #[test]
    fn overlapping_pushes_replace_audio() {
        let mut a = Audio::default();
        a.write(10, &[1, 1, 1, 1]);
        a.write(20, &[2, 2]);
        a.write(12, &[3; 10]);
        let mut out = vec![0.0f32; 16];
        a.read(8, &mut out);
        let got: Vec<i16> = out.iter().map(|v| (v * 32_768.0) as i16).collect();
        assert_eq!(got, [0, 0, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0]);
        assert_eq!(a.runs.len(), 1);
        a.truncate(15);
        a.discard_before(11);
        assert_eq!(a.len(), 4);
        let mut head = [1.0f32; 4];
        a.read(-4, &mut head);
        assert_eq!(head, [0.0; 4]);
        a.read(-2, &mut out);
        assert!(out[..13].iter().all(|&v| v == 0.0) && out[13..].iter().all(|&v| v > 0.0));
    }

    #[test]
    fn lookahead_is_about_60_ms_at_25_fps() {
        let ls = LipSync::new(48_000, 25);
        let la = ls.lookahead_samples();
        assert!((2_700..=3_000).contains(&la), "{la}");
        let (s, e) = ls.frame_window(10);
        assert_eq!(e - ls.frame_start_sample(10), la);
        assert!(s <= ls.frame_start_sample(10) + 960 && e > ls.frame_start_sample(11));
    }
}
