//! One session's microphone, without a socket or a clock: checks each binary audio frame
//! (framing, size, no faster than real time), runs voice activity detection on it, and says
//! what the session must do — tell the page speech started or stopped, interrupt the avatar
//! (barge-in by voice), transcribe an utterance — or why an utterance is dropped (the avatar's
//! own echo, too short to interrupt, no speech). The session core ([`super::core`]) acts on it.

use talkstream_providers::vad::{Utterance, Vad, VadEvent, VadMode, VadSettings};

use crate::protocol::{MicMode, Playback};

/// Most samples in one binary frame (500 ms at 16 kHz).
pub const MAX_FRAME_SAMPLES: usize = 8000;
/// Microphone audio allowed ahead of real time (samples: 1 s).
const BURST_SAMPLES: u64 = 16_000;
/// Samples per ms of real time.
const SAMPLES_PER_MS: u64 = 16;
/// The least a frame costs against the real-time budget (10 ms), so a flood of tiny frames is
/// limited too.
const MIN_FRAME_COST: u64 = 160;

/// The listening rules of a session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MicSettings {
    /// Voice activity detection.
    pub vad: VadSettings,
    /// Speech that interrupts the avatar (ms; 0: never).
    pub barge_in_ms: u32,
    /// With HLS playback: how long after the avatar's speech its echo may still be heard (ms).
    pub echo_tail_ms: u32,
}

/// Why a binary frame was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioRejected {
    /// No `mic` `start` came first (or a `stop` came since).
    #[error("microphone audio before {{\"type\":\"mic\",\"action\":\"start\"}}; dropped")]
    NotStarted,
    /// An empty frame.
    #[error("an empty audio frame; send 16-bit PCM samples")]
    Empty,
    /// An odd number of bytes cannot be 16-bit samples.
    #[error("an audio frame of {0} bytes; 16-bit samples need an even number")]
    OddLength(usize),
    /// Too many samples in one frame.
    #[error("an audio frame of {0} samples; the limit is {MAX_FRAME_SAMPLES} (500 ms at 16 kHz)")]
    TooLarge(usize),
    /// Audio faster than real time beyond the burst.
    #[error("microphone audio faster than real time (16 000 samples a second); dropped")]
    TooFast {
        /// When the budget allows this frame.
        retry_after_ms: u64,
    },
}

/// Why an utterance is not transcribed.
pub mod dropped {
    /// Push-to-talk held with no speech in it.
    pub const NO_SPEECH: &str = "no speech";
    /// Heard while the avatar was audible with HLS playback: taken as its own voice.
    pub const ECHO: &str = "avatar speaking";
    /// Heard while the avatar spoke, shorter than BARGE_IN_MS.
    pub const TOO_SHORT: &str = "too short to interrupt";
}

/// What the session must do.
#[derive(Clone, PartialEq)]
pub enum Heard {
    /// Tell the page the user started speaking.
    Started,
    /// Interrupt the avatar: the user has spoken over it for BARGE_IN_MS.
    BargeIn,
    /// Tell the page the utterance ended; transcribe `audio` (16 kHz mono) when it is there,
    /// else say why it was `dropped`.
    Stopped {
        /// Length of the utterance's audio.
        duration_ms: u64,
        /// Why it is not transcribed, if so.
        dropped: Option<&'static str>,
        /// Its audio, to transcribe.
        audio: Option<Vec<i16>>,
        /// It interrupted the avatar (its words may yet turn out to be the avatar's own echo).
        barged_in: bool,
    },
}

impl std::fmt::Debug for Heard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Started => f.write_str("Started"),
            Self::BargeIn => f.write_str("BargeIn"),
            Self::Stopped {
                duration_ms,
                dropped,
                audio,
                barged_in,
            } => f
                .debug_struct("Stopped")
                .field("duration_ms", duration_ms)
                .field("dropped", dropped)
                .field("samples", &audio.as_ref().map(Vec::len))
                .field("barged_in", barged_in)
                .finish(),
        }
    }
}

/// True when `heard` is mostly a stretch of `spoken` (the avatar's own words): at least half of
/// its word pairs occur, in order, in the avatar's words. A user who talks over the avatar
/// rarely repeats half of its word pairs; an echo the canceller let through does.
pub fn is_echo_of(heard: &str, spoken: &str) -> bool {
    fn words(text: &str) -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric() && c != '\'')
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    }
    let heard = words(heard);
    let spoken = words(spoken);
    let pairs: std::collections::HashSet<(&str, &str)> = spoken
        .windows(2)
        .map(|w| (w[0].as_str(), w[1].as_str()))
        .collect();
    let total = heard.len().saturating_sub(1);
    if total < 2 {
        return false;
    }
    let found = heard
        .windows(2)
        .filter(|w| pairs.contains(&(w[0].as_str(), w[1].as_str())))
        .count();
    found * 2 >= total
}

/// What the session knows of the avatar when audio arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Avatar {
    /// A turn is under way (thinking or speaking).
    pub busy: bool,
    /// Its voice may still be heard (busy, or ended less than ECHO_TAIL_MS ago).
    pub audible: bool,
}

/// The microphone of one session.
#[derive(Debug)]
pub struct Mic {
    settings: MicSettings,
    vad: Option<Vad>,
    playback: Playback,
    open: bool,
    /// Samples the client may still send ahead of real time, and when that was reckoned.
    budget: u64,
    budget_at_ms: u64,
    /// The utterance under way began while the avatar was busy / audible.
    during_answer: bool,
    heard_echo: bool,
    barged: bool,
}

impl Mic {
    /// A closed microphone.
    pub fn new(settings: MicSettings) -> Self {
        Self {
            settings,
            vad: None,
            playback: Playback::Webrtc,
            open: false,
            budget: BURST_SAMPLES,
            budget_at_ms: 0,
            during_answer: false,
            heard_echo: false,
            barged: false,
        }
    }

    /// The microphone is open.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Open the microphone (push-to-talk: pressed) at `now_ms`. A change of mode ends an
    /// utterance under way first.
    pub fn start(&mut self, mode: MicMode, playback: Playback, now_ms: u64) -> Vec<Heard> {
        let vad_mode = match mode {
            MicMode::HandsFree => VadMode::HandsFree,
            MicMode::PushToTalk => VadMode::PushToTalk,
        };
        let mut out = Vec::new();
        if self.vad.as_ref().is_some_and(|v| v.mode() != vad_mode) {
            out.extend(self.stop());
            self.vad = None;
        }
        let vad = self
            .vad
            .get_or_insert_with(|| Vad::new(self.settings.vad, vad_mode));
        vad.begin();
        if !self.open {
            self.budget = BURST_SAMPLES;
            self.budget_at_ms = now_ms;
        }
        self.open = true;
        self.playback = playback;
        out
    }

    /// Close the microphone (push-to-talk: released): an utterance under way ends now.
    pub fn stop(&mut self) -> Vec<Heard> {
        self.open = false;
        let Some(vad) = self.vad.as_mut() else {
            return Vec::new();
        };
        match vad.end() {
            Some(u) => vec![self.stopped(u)],
            None => Vec::new(),
        }
    }

    /// A binary frame of microphone audio at `now_ms`.
    pub fn audio(
        &mut self,
        frame: &[u8],
        now_ms: u64,
        avatar: Avatar,
    ) -> Result<Vec<Heard>, AudioRejected> {
        if !self.open {
            return Err(AudioRejected::NotStarted);
        }
        if frame.is_empty() {
            return Err(AudioRejected::Empty);
        }
        if !frame.len().is_multiple_of(2) {
            return Err(AudioRejected::OddLength(frame.len()));
        }
        let n = frame.len() / 2;
        if n > MAX_FRAME_SAMPLES {
            return Err(AudioRejected::TooLarge(n));
        }
        self.spend(n as u64, now_ms)?;
        let samples: Vec<i16> = frame
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let Some(vad) = self.vad.as_mut() else {
            return Err(AudioRejected::NotStarted);
        };
        let events = vad.push(&samples);
        let mut out = Vec::new();
        for event in events {
            match event {
                VadEvent::Started { .. } => {
                    self.during_answer = avatar.busy;
                    self.heard_echo = avatar.audible && self.playback == Playback::Hls;
                    self.barged = false;
                    out.push(Heard::Started);
                }
                VadEvent::Stopped(u) => out.push(self.stopped(u)),
            }
        }
        if self.barge_in_due(avatar) {
            self.barged = true;
            out.push(Heard::BargeIn);
        }
        Ok(out)
    }

    /// Take `n` samples from the real-time budget.
    fn spend(&mut self, n: u64, now_ms: u64) -> Result<(), AudioRejected> {
        let elapsed = now_ms.saturating_sub(self.budget_at_ms);
        self.budget = (self.budget + elapsed * SAMPLES_PER_MS).min(BURST_SAMPLES);
        self.budget_at_ms = self.budget_at_ms.max(now_ms);
        let cost = n.max(MIN_FRAME_COST);
        if cost > self.budget {
            return Err(AudioRejected::TooFast {
                retry_after_ms: (cost - self.budget).div_ceil(SAMPLES_PER_MS),
            });
        }
        self.budget -= cost;
        Ok(())
    }

    fn barge_in_due(&self, avatar: Avatar) -> bool {
        let Some(vad) = self.vad.as_ref() else {
            return false;
        };
        let limit = self.settings.barge_in_ms;
        vad.mode() == VadMode::HandsFree
            && limit > 0
            && avatar.busy
            && self.during_answer
            && !self.heard_echo
            && !self.barged
            && self.playback == Playback::Webrtc
            && vad.speech_run_ms().is_some_and(|ms| ms >= limit)
    }

    fn stopped(&mut self, u: Utterance) -> Heard {
        let hands_free = self.vad.as_ref().map(Vad::mode) == Some(VadMode::HandsFree);
        let dropped = if !u.has_speech(&self.settings.vad) {
            Some(dropped::NO_SPEECH)
        } else if hands_free && self.heard_echo {
            Some(dropped::ECHO)
        } else if hands_free && self.during_answer && !self.barged {
            Some(dropped::TOO_SHORT)
        } else {
            None
        };
        let barged_in = self.barged;
        self.during_answer = false;
        self.heard_echo = false;
        self.barged = false;
        Heard::Stopped {
            duration_ms: u.duration_ms(),
            dropped,
            audio: dropped.is_none().then_some(u.samples),
            barged_in,
        }
    }
}

#[cfg(test)]
mod tests;
