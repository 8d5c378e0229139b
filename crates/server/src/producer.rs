//! The per-session media thread: it owns the clock, the command channel, the stream's
//! [`MediaLoop`] (the sans-I/O state machine that mixes, renders, encodes and keeps the turns'
//! bookkeeping) and its [`MediaSink`]s (HLS files, WebRTC, RTMP). It passes the time into the
//! loop, waits until the next frame is due or a command arrives, hands every produced frame to
//! the sinks and forwards the loop's [`Event`]s to the session, so the live stream advances in
//! real time.
//!
//! It receives [`MediaCommand`]s and reports [`Event`]s.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use talkstream_avatar::Portrait;
use talkstream_media::ChannelConfig;
use tokio::sync::mpsc::UnboundedSender;

use crate::files::{FileError, OutputWriter};
use crate::generation::GeneratorLink;
use crate::load::NodeLoad;
use crate::media_loop::{MediaLoop, MediaLoopError, MediaSink, SinkError, Step, StreamClock};
pub use crate::media_loop::{FIRST_SPEECH_SEGMENT_MS, SPEECH_LEAD_MS};
use crate::pipeline::{Event, MediaCommand};
use crate::registry::Publisher;
use crate::rtmp::{RtmpOutput, RtmpSink};
use crate::webrtc::{WebRtcSink, WebRtcStream};

/// Why the media thread stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// The media loop failed (encoding, rendering).
    #[error(transparent)]
    Loop(#[from] MediaLoopError),
    /// The stream's folder could not be created.
    #[error("files: {0}")]
    Files(#[from] FileError),
    /// A sink failed.
    #[error("sink: {0}")]
    Sink(#[from] SinkError),
}

/// A running media thread.
#[derive(Debug)]
pub struct Producer {
    commands: mpsc::Sender<MediaCommand>,
    thread: Option<JoinHandle<()>>,
}

/// What a stream's media thread is made of.
pub struct StreamSetup {
    /// Folder of the HLS files.
    pub dir: PathBuf,
    /// The stream's publication watch (also in its registry entry): the HLS sink records each
    /// playlist's edge there once it is on disk, for blocking requests.
    pub published: Publisher,
    /// Picture, audio and segmenting settings.
    pub channel: ChannelConfig,
    /// Seed of the avatar's idle motion.
    pub seed: u64,
    /// The user's portrait, else the drawn avatar.
    pub portrait: Option<Arc<Portrait>>,
    /// The external video generator, if any.
    pub generator: Option<GeneratorLink>,
    /// The stream's WebRTC output, fed by a sink beside the HLS files, if WebRTC is on.
    pub webrtc: Option<WebRtcStream>,
    /// The stream's RTMP publisher, fed by a sink too, if RTMP_PUBLISH_URL is set.
    pub rtmp: Option<RtmpOutput>,
    /// The node's load, to which this stream reports every frame (time taken, lag).
    pub node_load: Arc<NodeLoad>,
    /// How late a frame may be before the stream repeats pictures to catch up (`None`: never).
    pub degrade_after: Option<Duration>,
}

impl Producer {
    /// Start the media thread of one stream.
    pub fn spawn(
        stream_id: &str,
        setup: StreamSetup,
        events: UnboundedSender<Event>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("media-{stream_id}"))
            .spawn(move || match run(setup, &rx, &events) {
                Ok(()) => {
                    let _ = events.send(Event::StreamFinished);
                }
                Err(e) => {
                    tracing::error!(error = %e, "stream stopped");
                    let _ = events.send(Event::StreamFailed(e.to_string()));
                }
            })?;
        Ok(Self {
            commands: tx,
            thread: Some(thread),
        })
    }

    /// A sender of commands into this thread.
    pub fn sender(&self) -> mpsc::Sender<MediaCommand> {
        self.commands.clone()
    }

    /// Ask the thread to end the stream and wait for it (blocking; call from a blocking context).
    pub fn finish_blocking(mut self) {
        let _ = self.commands.send(MediaCommand::Finish);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("media thread panicked");
            }
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // Dropping without finish_blocking still stops the thread.
        let _ = self.commands.send(MediaCommand::Finish);
    }
}

/// The wall clock in Unix milliseconds (0 if the clock is before 1970).
pub(crate) fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The thread's body: the clock, the command channel, the media loop and its sinks.
fn run(
    setup: StreamSetup,
    commands: &mpsc::Receiver<MediaCommand>,
    events: &UnboundedSender<Event>,
) -> Result<(), ProducerError> {
    let StreamSetup {
        dir,
        published,
        channel: cfg,
        seed,
        portrait,
        generator,
        webrtc,
        rtmp,
        node_load,
        degrade_after,
    } = setup;
    let load = node_load.register();
    // The stream's totals stay in the node's counters once it ends, however it ends.
    struct Retire<'a>(&'a NodeLoad, &'a Arc<crate::load::StreamLoad>);
    impl Drop for Retire<'_> {
        fn drop(&mut self) {
            self.0.retire(self.1);
        }
    }
    let _retire = Retire(&node_load, &load);
    // Stream time comes from a monotonic clock so a wall-clock step cannot upset deletion.
    let clock = StreamClock {
        start: Instant::now(),
        start_unix_ms: unix_ms_now(),
    };
    let mut sinks: Vec<Box<dyn MediaSink>> = vec![Box::new(
        OutputWriter::create(dir)?
            .with_publisher(published)
            .paced(cfg.part_target_ms.is_some()),
    )];
    if let Some(stream) = webrtc {
        sinks.push(Box::new(WebRtcSink::new(stream, clock.start)));
    }
    if let Some(output) = rtmp {
        sinks.push(Box::new(RtmpSink::new(output, clock.start)));
    }
    let now = || clock.start.elapsed();
    let report = |list: Vec<Event>, sinks: &mut Vec<Box<dyn MediaSink>>| {
        // Queued speech was dropped (barge-in, or a new turn took over): sinks that hold frames
        // until their time drop them too.
        if list.iter().any(|e| {
            matches!(
                e,
                Event::TurnComplete {
                    interrupted: true,
                    ..
                }
            )
        }) {
            for sink in sinks.iter_mut() {
                sink.interrupted();
            }
        }
        for e in list {
            let _ = events.send(e);
        }
    };
    let mut media = MediaLoop::new(cfg, seed, portrait, generator, clock)?;
    media.set_degrade_after(degrade_after);

    loop {
        // Take everything that is waiting, urgent or not, before deciding what to render.
        loop {
            match commands.try_recv() {
                Ok(cmd) => report(media.handle_command(cmd, now()), &mut sinks),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    report(
                        media.handle_command(MediaCommand::Finish, now()),
                        &mut sinks,
                    );
                    break;
                }
            }
        }
        let lead = sinks
            .iter()
            .filter_map(|s| s.speech_lead())
            .min()
            .unwrap_or(Duration::from_millis(SPEECH_LEAD_MS));
        media.set_speech_lead(lead);
        let at = now();
        match media.poll(at) {
            Step::Finish => break,
            Step::Wait(until) => {
                // Sinks that hold outputs until their time wake the thread too.
                let wake = sinks
                    .iter()
                    .filter_map(|s| s.next_due())
                    .fold(until, Duration::min);
                match commands.recv_timeout(wake.saturating_sub(at)) {
                    Ok(cmd) => report(media.handle_command(cmd, now()), &mut sinks),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        report(
                            media.handle_command(MediaCommand::Finish, now()),
                            &mut sinks,
                        );
                    }
                }
            }
            Step::Produce => {
                // Every sink is asked (each throttles its own requests).
                let mut keyframe = false;
                for sink in &mut sinks {
                    keyframe |= sink.wants_keyframe();
                }
                if keyframe {
                    media.request_keyframe();
                }
                let started = Instant::now();
                let mut out = media.produce(at)?;
                for sink in &mut sinks {
                    sink.on_frame(&out, media.encoder())?;
                }
                load.frame(out.kind, out.behind, started.elapsed(), media.is_speaking());
                report(std::mem::take(&mut out.events), &mut sinks);
            }
        }
        let at = now();
        for sink in &mut sinks {
            sink.poll(at)?;
        }
    }
    let mut out = media.finish(now())?;
    for sink in &mut sinks {
        sink.finish(&out)?;
    }
    report(std::mem::take(&mut out.events), &mut sinks);
    Ok(())
}
