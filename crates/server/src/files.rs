//! Applies what the media core returns to one session's folder on disk: segments and playlists
//! are written to a temporary name and renamed into place (so a reader never sees a half-written
//! file), deletions tolerate files that are already gone. [`OutputWriter`] is the media loop's
//! HLS [`MediaSink`].
//!
//! Pacing: speech is produced up to [`crate::media_loop::SPEECH_LEAD_MS`] ahead of its media time.
//! Media files (init, segments, parts, captions) are written at once (nothing names them yet),
//! but the playlists that list them, and deletions, wait until the frame's media time: so the
//! live edge (and each LL-HLS part) advances at the pace of real time, without a burst when
//! speech starts nor a pause when it ends. After writing a playlist the writer publishes where
//! the playlists end ([`Publisher::edges_published`]) for blocking requests.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use talkstream_media::{Output, PlaylistEdge};

use crate::media_loop::{FrameOutputs, MediaSink, SinkError};
use crate::registry::Publisher;

/// Playlists and deletions waiting for their media time, with the edges they make visible.
#[derive(Debug)]
struct Pending {
    due: Duration,
    outputs: Vec<Output>,
    edges: Option<(PlaylistEdge, Option<PlaylistEdge>, bool)>,
}

/// Writes one channel's outputs into its folder.
#[derive(Debug)]
pub struct OutputWriter {
    dir: PathBuf,
    publisher: Option<Publisher>,
    paced: bool,
    pending: VecDeque<Pending>,
    video: PlaylistEdge,
    subs: Option<PlaylistEdge>,
    ended: bool,
}

/// A failed file operation, with the path.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct FileError {
    action: &'static str,
    path: PathBuf,
    #[source]
    source: io::Error,
}

impl OutputWriter {
    /// A writer for `dir`, which is created if missing.
    pub fn create(dir: PathBuf) -> Result<Self, FileError> {
        std::fs::create_dir_all(&dir).map_err(|source| FileError {
            action: "creating folder",
            path: dir.clone(),
            source,
        })?;
        Ok(Self {
            dir,
            publisher: None,
            paced: false,
            pending: VecDeque::new(),
            video: PlaylistEdge::default(),
            subs: None,
            ended: false,
        })
    }

    /// Publish the playlists' edges to `publisher` as they are written.
    pub fn with_publisher(mut self, publisher: Publisher) -> Self {
        self.publisher = Some(publisher);
        self
    }

    /// Hold playlists and deletions until their media time (LL-HLS: parts at a steady pace).
    /// Off, everything is written at once.
    pub fn paced(mut self, paced: bool) -> Self {
        self.paced = paced;
        self
    }

    /// Writes the media files of `outputs` now and queues its playlists and deletions until
    /// `due` (stream time).
    fn take(&mut self, outputs: &[Output], due: Duration) -> Result<(), FileError> {
        let mut later = Vec::new();
        let mut playlist = false;
        for out in outputs {
            match out {
                Output::Init { name, bytes }
                | Output::Segment { name, bytes, .. }
                | Output::Part { name, bytes, .. }
                | Output::File { name, bytes } => self.write_atomic(name, bytes)?,
                Output::Playlist { .. } | Output::Delete { .. } => later.push(out.clone()),
            }
            self.track(out, &mut playlist);
        }
        if !later.is_empty() {
            self.pending.push_back(Pending {
                due: if self.paced { due } else { Duration::ZERO },
                outputs: later,
                edges: playlist.then_some((self.video, self.subs, self.ended)),
            });
        }
        Ok(())
    }

    /// Follows the playlists' edges through the outputs.
    fn track(&mut self, out: &Output, playlist: &mut bool) {
        match out {
            Output::Part { msn, index, .. } => {
                self.video.open_msn = *msn;
                self.video.open_parts = index + 1;
            }
            Output::Segment { info, .. } => {
                self.video.last_msn = Some(info.msn);
                self.video.open_msn = info.msn + 1;
                self.video.open_parts = 0;
            }
            Output::File { name, .. } => {
                let msn = name
                    .strip_prefix("subs-")
                    .and_then(|n| n.strip_suffix(".vtt"))
                    .and_then(|n| n.parse::<u64>().ok());
                if let Some(msn) = msn {
                    let subs = self.subs.get_or_insert_with(PlaylistEdge::default);
                    subs.last_msn = Some(msn);
                    subs.open_msn = msn + 1;
                }
            }
            Output::Playlist { text, .. } => {
                *playlist = true;
                if text.contains("#EXT-X-ENDLIST") {
                    self.ended = true;
                    self.video.ended = true;
                    if let Some(s) = &mut self.subs {
                        s.ended = true;
                    }
                }
            }
            Output::Init { .. } | Output::Delete { .. } => {}
        }
    }

    /// Applies the queued playlists and deletions due at `now` (all of them with `None`).
    fn flush(&mut self, now: Option<Duration>) -> Result<(), FileError> {
        while self
            .pending
            .front()
            .is_some_and(|p| now.is_none_or(|now| p.due <= now))
        {
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            self.apply(&p.outputs)?;
            if let (Some(publisher), Some((video, subs, ended))) = (&self.publisher, p.edges) {
                publisher.edges_published(video, subs, ended);
            }
        }
        Ok(())
    }

    /// The session folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Apply outputs in order.
    pub fn apply(&self, outputs: &[Output]) -> Result<(), FileError> {
        for out in outputs {
            match out {
                Output::Init { name, bytes }
                | Output::Segment { name, bytes, .. }
                | Output::Part { name, bytes, .. }
                | Output::File { name, bytes } => self.write_atomic(name, bytes)?,
                Output::Playlist { name, text } => self.write_atomic(name, text.as_bytes())?,
                Output::Delete { name } => self.delete(name)?,
            }
        }
        Ok(())
    }

    fn checked_path(&self, name: &str) -> Result<PathBuf, FileError> {
        if crate::http::is_safe_file_name(name) {
            Ok(self.dir.join(name))
        } else {
            Err(FileError {
                action: "refusing file name",
                path: PathBuf::from(name),
                source: io::Error::new(io::ErrorKind::InvalidInput, "unsafe file name"),
            })
        }
    }

    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), FileError> {
        let path = self.checked_path(name)?;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).map_err(|source| FileError {
            action: "writing",
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &path).map_err(|source| FileError {
            action: "renaming into place",
            path,
            source,
        })
    }

    fn delete(&self, name: &str) -> Result<(), FileError> {
        let path = self.checked_path(name)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(FileError {
                action: "deleting",
                path,
                source,
            }),
        }
    }
}

/// The HLS output: writes each frame's files, its playlists at the frame's media time, then the
/// closing ones.
impl MediaSink for OutputWriter {
    fn on_frame(
        &mut self,
        out: &FrameOutputs,
        _encoder: &talkstream_media::encoder::FrameEncoder,
    ) -> Result<(), SinkError> {
        self.take(&out.hls, out.media_time)?;
        Ok(self.flush(Some(out.produced_at))?)
    }

    fn poll(&mut self, now: Duration) -> Result<(), SinkError> {
        Ok(self.flush(Some(now))?)
    }

    fn next_due(&self) -> Option<Duration> {
        self.pending.front().map(|p| p.due)
    }

    fn finish(&mut self, out: &FrameOutputs) -> Result<(), SinkError> {
        self.take(&out.hls, out.media_time)?;
        self.flush(None)?;
        if let Some(publisher) = &self.publisher {
            publisher.edges_published(self.video, self.subs, true);
        }
        Ok(())
    }
}

/// Remove a session folder and everything in it; a missing folder is fine.
pub fn remove_session_dir(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => tracing::debug!(dir = %dir.display(), "removed session folder"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove session folder")
        }
    }
}
