//! The driver's side of photo uploads: the expensive check off the session's loop (under the
//! server-wide semaphore of [`crate::uploads`]), applying a checked photo to the live stream
//! (and to the server's default, and to the external generator's reference image), the reset.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use talkstream_avatar::{Face, Portrait};

use super::Driver;
use crate::pipeline::{Event, MediaCommand};
use crate::uploads::{check_blocking, ref_image_dir, RefImageFile};

impl Driver {
    /// The external generator's reference image now: the session's photo, else the server's
    /// default photo (an upload with `PORTRAIT_UPLOADS=default`; the session holds on to its
    /// file while the generator may read it), else `AVATAR_REF_IMAGE`.
    pub(super) fn ref_image(&mut self) -> PathBuf {
        if let (Some(f), Some(_)) = (self.ref_files.back(), &self.portrait) {
            return f.path().to_path_buf();
        }
        self.default_ref = self.state.uploads.default_ref_image();
        match &self.default_ref {
            Some(f) => f.path().to_path_buf(),
            None => self
                .state
                .config
                .avatar_ref_image
                .clone()
                .unwrap_or_default(),
        }
    }

    /// Check a photo off the session's loop, at most [`crate::uploads::CONCURRENT_CHECKS`] on
    /// the server at once; the result comes back as [`Event::PortraitChecked`].
    pub(super) fn check_portrait(&mut self, upload: u64, image: Vec<u8>, landmarks: Vec<[f32; 2]>) {
        let checks = Arc::clone(&self.state.uploads.checks);
        let events = self.events_tx.clone();
        let cancel = self.listening.clone();
        let span = self.span.clone();
        let max = self.state.config.portrait_max_bytes;
        let keep_file = self.state.generator.is_some();
        tokio::spawn(async move {
            let permit = tokio::select! {
                p = checks.acquire_owned() => p,
                _ = cancel.cancelled() => return,
            };
            let Ok(permit) = permit else { return };
            let started = Instant::now();
            let bytes = image.len();
            let joined = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                check_blocking(&image, &landmarks, max, keep_file)
            })
            .await;
            let check_ms = started.elapsed().as_secs_f64() * 1000.0;
            let outcome = match joined {
                Ok(Ok(c)) => {
                    tracing::info!(
                        parent: &span,
                        upload,
                        bytes,
                        format = c.kind.name(),
                        photo_width = c.source_size.0,
                        photo_height = c.source_size.1,
                        width = c.portrait.width(),
                        height = c.portrait.height(),
                        check_ms,
                        "photo checked"
                    );
                    Ok(c)
                }
                Ok(Err(e)) => {
                    tracing::info!(parent: &span, upload, bytes, check_ms, "photo refused by its check: {e}");
                    Err(e.to_string())
                }
                Err(e) => {
                    tracing::error!(parent: &span, upload, "the photo check failed: {e}");
                    Err("the photo could not be checked (a server error)".to_string())
                }
            };
            if events
                .send(Event::PortraitChecked { upload, outcome })
                .is_err()
            {
                tracing::debug!(parent: &span, upload, "a photo's check ended after the session");
            }
        });
    }

    /// Animate a checked photo: the session's stream shows it from the next frame (a turn
    /// under way goes on); with `make_default`, later sessions start with it.
    pub(super) async fn apply_portrait(
        &mut self,
        upload: u64,
        checked: crate::uploads::CheckedPortrait,
        make_default: bool,
    ) {
        self.portrait = Some(Arc::clone(&checked.portrait));
        let mut ref_image = None;
        let mut file_kept = None;
        // The file is kept by the check only when an external generator is configured.
        if let Some(bytes) = checked.encoded {
            let (dir, id, kind) = (ref_image_dir(), self.id.clone(), checked.kind);
            let written = tokio::task::spawn_blocking(move || {
                RefImageFile::write(&dir, &id, upload, kind, &bytes)
            })
            .await;
            match written {
                Ok(Ok(file)) => {
                    let file = Arc::new(file);
                    ref_image = Some(file.path().to_path_buf());
                    while self.ref_files.len() >= 2 {
                        self.ref_files.pop_front();
                    }
                    self.ref_files.push_back(Arc::clone(&file));
                    file_kept = Some(file);
                }
                Ok(Err(e)) => {
                    tracing::warn!(parent: &self.span, upload, "the photo could not be handed to the video generator, which keeps AVATAR_REF_IMAGE: {e}");
                }
                Err(e) => {
                    tracing::error!(parent: &self.span, "writing the generator's copy failed: {e}")
                }
            }
        }
        if make_default {
            // With its generator copy, if one was made: later sessions' generator reads it.
            self.state
                .uploads
                .set_default(Arc::clone(&checked.portrait), file_kept);
            tracing::info!(parent: &self.span, upload, "the photo is the server's default portrait now");
        }
        self.show_portrait(Some(checked.portrait), ref_image).await;
    }

    /// Back to the server's default portrait (or the drawn avatar).
    pub(super) async fn reset_portrait(&mut self) {
        self.portrait = None;
        let ref_image = self.state.generator.is_some().then(|| self.ref_image());
        self.show_portrait(self.state.uploads.default_portrait(), ref_image)
            .await;
    }

    /// Build the face for the live stream off the session's loop (tens of milliseconds for a
    /// large photo, which the media thread must not spend) and hand it over.
    async fn show_portrait(&self, portrait: Option<Arc<Portrait>>, ref_image: Option<PathBuf>) {
        let Some(stream) = &self.stream else {
            return;
        };
        let (width, height, seed) = stream.face;
        let built = tokio::task::spawn_blocking(move || {
            Face::new(width, height, seed, portrait.as_deref())
        })
        .await;
        match built {
            Ok(Ok(face)) => {
                let _ = stream.producer.sender().send(MediaCommand::SetFace {
                    face: Box::new(face),
                    ref_image,
                });
            }
            Ok(Err(e)) => tracing::error!(parent: &self.span, "the face could not be built: {e}"),
            Err(e) => tracing::error!(parent: &self.span, "building the face failed: {e}"),
        }
    }
}
