//! External video generators in the live stream: a turn's speech is cut into the seed's audio
//! windows (16 kHz, `SEG_LEN_MS` long with `SEG_OVERLAP_MS` of context), each window is sent to
//! the generator at once with a playout deadline (the wall-clock time its first frame is due),
//! and the media thread asks, frame by frame, whether the generator's frames are ready. A window
//! whose frames are not ready when its first frame is due is rendered by the built-in renderer,
//! and the generator's late output is dropped: the stream never waits.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use talkstream_generators::{GeneratorError, VideoGenerator, WindowRequest};
use talkstream_media::{AudioWindow, AudioWindows, I420Frame, WindowConfig};
use talkstream_providers::Resampler;
use tokio_util::sync::CancellationToken;

/// Sample rate of the audio windows sent to generators (the seed's contract).
pub const WINDOW_RATE: u32 = 16_000;

/// What a session needs to use an external generator.
#[derive(Clone)]
pub struct GeneratorLink {
    /// The generator.
    pub generator: Arc<dyn VideoGenerator>,
    /// Runtime the generation futures run on.
    pub runtime: tokio::runtime::Handle,
    /// `AVATAR_REF_IMAGE` (passed to the generator as is).
    pub ref_image: PathBuf,
    /// Session id (a worker may keep per-session state).
    pub session_id: String,
    /// Window length (ms, context included) and overlap.
    pub window_ms: u32,
    /// Context carried into each window.
    pub overlap_ms: u32,
    /// Silence inserted before each answer so a slow generator can keep up.
    pub buffer_ms: u32,
}

/// Where one window's frames come from.
enum Slot {
    /// Sent, no answer yet.
    Pending,
    /// The generator's frames, ready.
    Ready(Vec<I420Frame>),
    /// The generator failed for this window.
    Failed(String),
}

/// A window that reached its first frame: which renderer fills it.
pub enum Decision {
    /// The generator's frames fill the window.
    Generator,
    /// The built-in renderer fills the window; `why` says what went wrong with the generator.
    Builtin {
        /// Why (late, failed).
        why: String,
    },
}

/// The generator side of one turn.
pub struct TurnGeneration {
    link: GeneratorLink,
    fps: u32,
    windows: AudioWindows,
    resampler: Resampler,
    /// Stream position (16 kHz samples) of the turn's first speech sample.
    offset: u64,
    cancel: CancellationToken,
    /// Slots by first frame.
    slots: BTreeMap<u64, Slot>,
    results_tx: mpsc::Sender<(u64, Result<Vec<I420Frame>, GeneratorError>)>,
    results_rx: mpsc::Receiver<(u64, Result<Vec<I420Frame>, GeneratorError>)>,
    /// The window being played from the generator: first frame and its frames.
    playing: Option<(u64, Vec<I420Frame>)>,
    /// Per-turn counts of windows by source.
    pub from_generator: u32,
    /// Windows the built-in renderer filled.
    pub from_builtin: u32,
    wall_start: Instant,
}

impl TurnGeneration {
    /// Start the generator side of a turn whose speech begins at stream frame `first_frame`;
    /// `wall_start` is the wall-clock time of media time 0.
    pub fn new(
        link: GeneratorLink,
        stream_rate: u32,
        fps: u32,
        first_frame: u64,
        wall_start: Instant,
    ) -> Result<Self, String> {
        let windows = AudioWindows::new(WindowConfig {
            sample_rate: WINDOW_RATE,
            window_ms: link.window_ms,
            overlap_ms: link.overlap_ms,
        })
        .map_err(|e| e.to_string())?;
        let resampler = Resampler::new(stream_rate, WINDOW_RATE).map_err(|e| e.to_string())?;
        let (results_tx, results_rx) = mpsc::channel();
        Ok(Self {
            offset: first_frame * u64::from(WINDOW_RATE) / u64::from(fps.max(1)),
            link,
            fps,
            windows,
            resampler,
            cancel: CancellationToken::new(),
            slots: BTreeMap::new(),
            results_tx,
            results_rx,
            playing: None,
            from_generator: 0,
            from_builtin: 0,
            wall_start,
        })
    }

    /// More of the turn's speech (at the stream rate).
    pub fn push_audio(&mut self, pcm: &[i16]) {
        let resampled = self.resampler.process(pcm);
        for w in self.windows.push(&resampled) {
            self.send(w);
        }
    }

    /// The turn's speech is complete: send the last, shorter window.
    pub fn finish(&mut self) {
        let tail = self.resampler.finish();
        for w in self.windows.push(&tail) {
            self.send(w);
        }
        if let Some(w) = self.windows.flush() {
            self.send(w);
        }
    }

    fn send(&mut self, window: AudioWindow) {
        let mut req = WindowRequest::from_window(
            &window,
            WINDOW_RATE,
            self.link.session_id.clone(),
            self.link.ref_image.clone(),
        );
        req.start_sample += self.offset;
        let (first, end) = req.frame_range(self.fps);
        if end <= first {
            return;
        }
        let due_ms = first * 1000 / u64::from(self.fps.max(1));
        req.deadline = Some(self.wall_start + Duration::from_millis(due_ms));
        self.slots.insert(first, Slot::Pending);
        let generator = Arc::clone(&self.link.generator);
        let tx = self.results_tx.clone();
        let cancel = self.cancel.child_token();
        self.link.runtime.spawn(async move {
            let result = generator.generate(req, cancel).await.map(|w| w.frames);
            let _ = tx.send((first, result));
        });
    }

    fn collect(&mut self) {
        while let Ok((first, result)) = self.results_rx.try_recv() {
            // A window whose first frame already passed is not in `slots` any more: its late
            // output is dropped here.
            if let Some(slot) = self.slots.get_mut(&first) {
                if matches!(slot, Slot::Pending) {
                    *slot = match result {
                        Ok(frames) => Slot::Ready(frames),
                        Err(e) => Slot::Failed(e.to_string()),
                    };
                }
            }
        }
    }

    /// The generator's frame for stream frame `n`, if the window covering it came from the
    /// generator. At a window's first frame the decision is made and counted.
    pub fn frame(&mut self, n: u64) -> (Option<&I420Frame>, Option<Decision>) {
        self.collect();
        let mut decision = None;
        if let Some(slot) = self.slots.remove(&n) {
            self.playing = None;
            decision = Some(match slot {
                Slot::Ready(frames) => {
                    self.from_generator += 1;
                    self.playing = Some((n, frames));
                    Decision::Generator
                }
                Slot::Pending => {
                    self.from_builtin += 1;
                    Decision::Builtin {
                        why: "the generator was not ready by the window's deadline".into(),
                    }
                }
                Slot::Failed(why) => {
                    self.from_builtin += 1;
                    Decision::Builtin { why }
                }
            });
        }
        let frame = match &self.playing {
            Some((first, frames)) if n >= *first => frames.get((n - first) as usize),
            _ => None,
        };
        (frame, decision)
    }
}

impl Drop for TurnGeneration {
    fn drop(&mut self) {
        // Barge-in or the end of the turn: stop whatever the generator is still doing.
        self.cancel.cancel();
    }
}
