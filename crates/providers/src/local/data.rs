//! The bundled eSpeak NG English data on disk: unpacked once per process into a fresh private
//! folder under the system temp folder (`$TMPDIR`, else `/tmp`), because the engine reads its
//! data from files. About 2.7 MB; folders left by processes that are gone are removed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::tts::TtsError;

/// Folder name prefix; the process id follows.
const PREFIX: &str = "talkstream-espeak-ng-";

/// The unpacked folder, or where and why unpacking failed (kept as parts: `io::Error` is not
/// `Clone`).
static DATA_DIR: OnceLock<Result<PathBuf, (PathBuf, io::ErrorKind, String)>> = OnceLock::new();

/// The folder holding the English voice data, unpacking it on first use.
pub(crate) fn data_dir() -> Result<PathBuf, TtsError> {
    DATA_DIR
        .get_or_init(|| unpack().map_err(|(path, e)| (path, e.kind(), e.to_string())))
        .clone()
        .map_err(|(path, kind, message)| TtsError::Data {
            provider: super::LocalTts::NAME,
            path,
            source: io::Error::new(kind, message),
        })
}

fn unpack() -> Result<PathBuf, (PathBuf, io::Error)> {
    let base = std::env::temp_dir();
    remove_stale(&base);
    let dir = base.join(format!("{PREFIX}{}", std::process::id()));
    // Left by an earlier process with the same id: start clean.
    if dir.symlink_metadata().is_ok() {
        let removed = if dir.is_dir() && !dir.is_symlink() {
            std::fs::remove_dir_all(&dir)
        } else {
            std::fs::remove_file(&dir)
        };
        removed.map_err(|e| (dir.clone(), e))?;
    }
    // `create_dir`, not `create_dir_all`: the folder must be new and ours.
    std::fs::create_dir(&dir).map_err(|e| (dir.clone(), e))?;
    let started = std::time::Instant::now();
    espeak_ng::install_bundled_languages(&dir, &["en"]).map_err(|e| (dir.clone(), e))?;
    tracing::debug!(
        dir = %dir.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "unpacked eSpeak NG data"
    );
    Ok(dir)
}

/// Removes data folders of processes that no longer run (Linux: checked through `/proc`).
fn remove_stale(base: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => tracing::debug!(dir = %path.display(), "removed stale eSpeak NG data"),
                Err(e) => {
                    tracing::debug!(dir = %path.display(), error = %e, "cannot remove stale eSpeak NG data")
                }
            }
        }
    }
}

/// Remove this process's unpacked data folder, if there is one (call at exit; the local TTS
/// cannot be used afterwards in this process).
pub(crate) fn remove_own() {
    if let Some(Ok(dir)) = DATA_DIR.get() {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove eSpeak NG data");
            }
        }
    }
}
