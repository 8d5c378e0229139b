//! Applies what the media core returns to one session's folder on disk: segments and playlists
//! are written to a temporary name and renamed into place (so a reader never sees a half-written
//! file), deletions tolerate files that are already gone. [`OutputWriter`] is the media loop's
//! HLS [`MediaSink`].

use std::io;
use std::path::{Path, PathBuf};

use talkstream_media::Output;

use crate::media_loop::{FrameOutputs, MediaSink, SinkError};

/// Writes one channel's outputs into its folder.
#[derive(Debug)]
pub struct OutputWriter {
    dir: PathBuf,
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
        Ok(Self { dir })
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

/// The HLS output: writes each frame's files, then the closing ones.
impl MediaSink for OutputWriter {
    fn on_frame(
        &mut self,
        out: &FrameOutputs,
        _encoder: &talkstream_media::encoder::FrameEncoder,
    ) -> Result<(), SinkError> {
        Ok(self.apply(&out.hls)?)
    }

    fn finish(&mut self, out: &FrameOutputs) -> Result<(), SinkError> {
        Ok(self.apply(&out.hls)?)
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
