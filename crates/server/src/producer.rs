//! The per-session media thread: renders the avatar, encodes and segments it with the media core,
//! writes the results, and paces all of it against the wall clock so the live stream advances in
//! real time. The async side controls it through [`ProducerCommand`] and hears back through
//! [`ProducerEvent`].

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use talkstream_avatar::{Avatar, MouthPose};
use talkstream_media::{ChannelConfig, I420Frame, LiveChannel, MediaError, Output};
use tokio::sync::mpsc::UnboundedSender;

use crate::files::{FileError, OutputWriter};

/// Commands from the session to its media thread.
#[derive(Debug)]
pub enum ProducerCommand {
    /// Close the open segment, end the playlist and stop.
    Finish,
}

/// What the media thread reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ProducerEvent {
    /// A segment was written and listed in the playlist.
    SegmentPublished {
        /// Its media sequence number.
        msn: u64,
        /// Its duration.
        duration_ms: f64,
    },
    /// The stream stopped because of an error.
    Failed(String),
    /// The playlist was ended.
    Finished,
}

/// Why the media thread stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// The media core rejected a frame or failed to encode.
    #[error("media: {0}")]
    Media(#[from] MediaError),
    /// The avatar could not be rendered.
    #[error("avatar: {0}")]
    Avatar(#[from] talkstream_avatar::AvatarError),
    /// Writing the stream's files failed.
    #[error("files: {0}")]
    Files(#[from] FileError),
}

/// A running media thread.
#[derive(Debug)]
pub struct Producer {
    commands: mpsc::Sender<ProducerCommand>,
    thread: Option<JoinHandle<()>>,
}

impl Producer {
    /// Start the media thread of one session, writing into `dir`.
    pub fn spawn(
        session_id: &str,
        dir: PathBuf,
        channel: ChannelConfig,
        seed: u64,
        events: UnboundedSender<ProducerEvent>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("media-{session_id}"))
            .spawn(move || {
                let result = run(dir, channel, seed, &rx, &events);
                match result {
                    Ok(()) => {
                        let _ = events.send(ProducerEvent::Finished);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "stream stopped");
                        let _ = events.send(ProducerEvent::Failed(e.to_string()));
                    }
                }
            })?;
        Ok(Self {
            commands: tx,
            thread: Some(thread),
        })
    }

    /// Ask the thread to end the stream and wait for it (blocking; call from a blocking context).
    pub fn finish_blocking(mut self) {
        let _ = self.commands.send(ProducerCommand::Finish);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("media thread panicked");
            }
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // Dropping without finish_blocking still stops the thread: it sees the channel close.
        let _ = self.commands.send(ProducerCommand::Finish);
    }
}

fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn run(
    dir: PathBuf,
    cfg: ChannelConfig,
    seed: u64,
    commands: &mpsc::Receiver<ProducerCommand>,
    events: &UnboundedSender<ProducerEvent>,
) -> Result<(), ProducerError> {
    let writer = OutputWriter::create(dir)?;
    let start = Instant::now();
    let start_unix_ms = unix_ms_now();
    // Wall-clock "now" derived from a monotonic clock so a clock step cannot upset deletion.
    let now_ms = || start_unix_ms + start.elapsed().as_millis() as i64;

    let mut channel = LiveChannel::new(cfg.clone(), start_unix_ms)?;
    let mut avatar = Avatar::new(cfg.width, cfg.height, seed)?;
    let mut rgba = vec![0u8; cfg.width as usize * cfg.height as usize * 4];
    let mut frame = I420Frame::new(cfg.width, cfg.height);
    let mut pcm: Vec<i16> = Vec::new();
    let mut last_lag_warning = Instant::now() - Duration::from_secs(60);

    loop {
        let n = channel.next_frame_index();
        let t_ms = channel.frame_time_ms(n);
        let due = start + Duration::from_millis(t_ms);
        let now = Instant::now();
        let command = if now < due {
            match commands.recv_timeout(due - now) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => Some(ProducerCommand::Finish),
            }
        } else {
            if now - due > Duration::from_secs(1) && last_lag_warning.elapsed().as_secs() >= 10 {
                tracing::warn!(
                    behind_ms = (now - due).as_millis() as u64,
                    "the stream is falling behind real time (machine too slow or overloaded)"
                );
                last_lag_warning = Instant::now();
            }
            match commands.try_recv() {
                Ok(c) => Some(c),
                Err(mpsc::TryRecvError::Empty) => None,
                Err(mpsc::TryRecvError::Disconnected) => Some(ProducerCommand::Finish),
            }
        };
        match command {
            Some(ProducerCommand::Finish) => break,
            None => {}
        }

        avatar.render_rgba(t_ms, MouthPose::CLOSED, &mut rgba)?;
        frame.fill_from_rgba(&rgba);
        pcm.clear();
        pcm.resize(channel.samples_for_frame(n), 0);
        let outputs = channel.push_frame(&frame, &pcm, now_ms())?;
        report_segments(&outputs, events);
        writer.apply(outputs)?;
        if n % u64::from(cfg.fps) == 0 {
            writer.apply(channel.poll_expired(now_ms()))?;
        }
    }
    let outputs = channel.finish(now_ms())?;
    report_segments(&outputs, events);
    writer.apply(outputs)?;
    Ok(())
}

fn report_segments(outputs: &[Output], events: &UnboundedSender<ProducerEvent>) {
    for out in outputs {
        if let Output::Segment { info, .. } = out {
            tracing::debug!(
                msn = info.msn,
                duration_ms = info.duration_ms,
                "segment published"
            );
            let _ = events.send(ProducerEvent::SegmentPublished {
                msn: info.msn,
                duration_ms: info.duration_ms,
            });
        }
    }
}
