//! Reference images over a TCP worker connection. A worker on another machine cannot open the
//! `ref_image` path of a window (it is on talkstream's machine: an uploaded photo's private copy,
//! or `AVATAR_REF_IMAGE`), so over TCP a window also names its image by the SHA-256 of the file
//! (`ref_image_sha256`) and carries the file itself (`ref_image_data`, base64) the first time.
//! Both ends keep the most recently used images in the same order ([`Recent`]): talkstream
//! counts on the worker keeping [`REF_IMAGES_KEPT`], and the worker keeps twice that, so an image
//! talkstream names by hash alone is always there (a least-recently-used list holds every image
//! a shorter one under the same uses holds).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::protocol::{WindowHeader, REF_IMAGES_KEPT};

/// Largest reference image sent or accepted, bytes (the file, before base64).
pub const MAX_REF_IMAGE_BYTES: usize = 16 << 20;

/// A reference image file, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefImage {
    /// SHA-256 of the file's bytes, lower-case hex.
    pub sha256: String,
    /// The file, standard base64.
    pub base64: Arc<str>,
}

/// Why an image could not be loaded or accepted.
#[derive(Debug, thiserror::Error)]
pub enum RefImageError {
    /// The file could not be read.
    #[error("reading the reference image {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Larger than [`MAX_REF_IMAGE_BYTES`].
    #[error("the reference image is {bytes} bytes; at most {MAX_REF_IMAGE_BYTES} are sent")]
    TooLarge {
        /// Its size.
        bytes: usize,
    },
    /// `ref_image_data` is not base64.
    #[error("ref_image_data is not base64")]
    NotBase64,
    /// `ref_image_data` came without `ref_image_sha256`.
    #[error("ref_image_data came without ref_image_sha256")]
    NoHash,
    /// The data's hash is not the one the window names.
    #[error("ref_image_data does not match ref_image_sha256 {named}")]
    Mismatch {
        /// The hash the window named.
        named: String,
    },
    /// The window names an image the connection never carried (or no longer keeps).
    #[error("reference image {sha256} was not sent on this connection")]
    Unknown {
        /// The hash the window named.
        sha256: String,
    },
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl RefImage {
    /// Read, hash and encode a file (blocking: call it off the async threads).
    pub fn load(path: &Path) -> Result<Self, RefImageError> {
        let read = |source| RefImageError::Read {
            path: path.display().to_string(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read)?.len();
        if len > MAX_REF_IMAGE_BYTES as u64 {
            return Err(RefImageError::TooLarge {
                bytes: usize::try_from(len).unwrap_or(usize::MAX),
            });
        }
        let bytes = std::fs::read(path).map_err(read)?;
        Ok(Self::from_bytes(&bytes))
    }

    /// From a file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        RefImage {
            sha256: hex_sha256(bytes),
            base64: Arc::from(base64::engine::general_purpose::STANDARD.encode(bytes)),
        }
    }
}

/// The most recently used items, newest last, at most `cap`.
#[derive(Debug)]
struct Recent<T> {
    items: VecDeque<(String, T)>,
    cap: usize,
}

impl<T> Recent<T> {
    fn new(cap: usize) -> Self {
        Recent {
            items: VecDeque::new(),
            cap,
        }
    }

    /// Use `key`: moved to the newest place if kept (true), else false.
    fn touch(&mut self, key: &str) -> bool {
        let Some(i) = self.items.iter().position(|(k, _)| k == key) else {
            return false;
        };
        if let Some(item) = self.items.remove(i) {
            self.items.push_back(item);
        }
        true
    }

    fn insert(&mut self, key: String, value: T) {
        while self.items.len() >= self.cap {
            self.items.pop_front();
        }
        self.items.push_back((key, value));
    }

    fn newest(&self) -> Option<&T> {
        self.items.back().map(|(_, v)| v)
    }
}

/// talkstream's side, per connection: which images the worker holds.
#[derive(Debug)]
pub struct SentImages(Recent<()>);

impl Default for SentImages {
    fn default() -> Self {
        SentImages(Recent::new(REF_IMAGES_KEPT))
    }
}

impl SentImages {
    /// Name `image` in `header`: its hash always, the data only when the worker may not hold it.
    pub fn name(&mut self, image: &RefImage, header: &mut WindowHeader) {
        header.ref_image_sha256 = Some(image.sha256.clone());
        header.ref_image_data = if self.0.touch(&image.sha256) {
            None
        } else {
            self.0.insert(image.sha256.clone(), ());
            Some(image.base64.to_string())
        };
    }
}

/// A window's reference image on the worker's side: its SHA-256 (hex) and the file's bytes.
pub type Received = (String, Arc<[u8]>);

/// The worker's side, per connection: the images it was sent.
#[derive(Debug)]
pub struct ReceivedImages(Recent<Arc<[u8]>>);

impl Default for ReceivedImages {
    fn default() -> Self {
        ReceivedImages(Recent::new(2 * REF_IMAGES_KEPT))
    }
}

impl ReceivedImages {
    /// The image a window names, if any (its hash and the file's bytes): kept when the window
    /// carries it (checked against the hash), else looked up.
    pub fn resolve(&mut self, header: &WindowHeader) -> Result<Option<Received>, RefImageError> {
        let Some(sha) = &header.ref_image_sha256 else {
            return match header.ref_image_data {
                Some(_) => Err(RefImageError::NoHash),
                None => Ok(None),
            };
        };
        if let Some(data) = &header.ref_image_data {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|_| RefImageError::NotBase64)?;
            if bytes.len() > MAX_REF_IMAGE_BYTES {
                return Err(RefImageError::TooLarge { bytes: bytes.len() });
            }
            if hex_sha256(&bytes) != *sha {
                return Err(RefImageError::Mismatch { named: sha.clone() });
            }
            if !self.0.touch(sha) {
                self.0.insert(sha.clone(), Arc::from(bytes));
            }
        } else if !self.0.touch(sha) {
            return Err(RefImageError::Unknown {
                sha256: sha.clone(),
            });
        }
        Ok(self.0.newest().map(|b| (sha.clone(), Arc::clone(b))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> WindowHeader {
        WindowHeader {
            id: 1,
            session: "s".into(),
            window: 0,
            sample_rate: 16_000,
            context_samples: 0,
            samples: 0,
            start_sample: 0,
            fps: 25,
            first_frame: 0,
            frames: 1,
            ref_image: "/on/talkstreams/machine.jpg".into(),
            ref_image_sha256: None,
            ref_image_data: None,
        }
    }

    /// What the worker resolves for each window talkstream sends, with how many carried data.
    fn exchange(images: &[&RefImage]) -> (Vec<String>, usize) {
        let (mut sent, mut received) = (SentImages::default(), ReceivedImages::default());
        let mut with_data = 0;
        let got = images
            .iter()
            .map(|img| {
                let mut h = header();
                sent.name(img, &mut h);
                with_data += usize::from(h.ref_image_data.is_some());
                let (sha, bytes) = received.resolve(&h).unwrap().unwrap();
                assert_eq!(RefImage::from_bytes(&bytes), **img);
                sha
            })
            .collect();
        (got, with_data)
    }

    #[test]
    fn an_image_travels_once_and_is_named_by_its_hash_after() {
        let a = RefImage::from_bytes(b"photo a");
        let b = RefImage::from_bytes(b"photo b");
        assert_eq!(a.sha256.len(), 64);
        assert_ne!(a.sha256, b.sha256);
        let (got, with_data) = exchange(&[&a, &a, &b, &a, &b]);
        assert_eq!(got, [&a, &a, &b, &a, &b].map(|i| i.sha256.clone()).to_vec());
        assert_eq!(with_data, 2);
    }

    #[test]
    fn many_images_in_turn_stay_in_step_at_both_ends() {
        let imgs: Vec<RefImage> = (0..9)
            .map(|i| RefImage::from_bytes(format!("photo {i}").as_bytes()))
            .collect();
        // Nine sessions' photos, used over and over in a pattern: the worker always has what
        // talkstream names without data.
        let order: Vec<&RefImage> = (0..200).map(|k| &imgs[(k * 7 + k / 5) % 9]).collect();
        let (got, with_data) = exchange(&order);
        assert_eq!(got.len(), 200);
        assert!(with_data > 9, "{with_data}");
        // A few images used in turn travel once each.
        let (_, with_data) =
            exchange(&[&imgs[0], &imgs[1], &imgs[2], &imgs[0], &imgs[1], &imgs[2]]);
        assert_eq!(with_data, 3);
    }

    #[test]
    fn a_worker_refuses_data_that_lies_and_names_it_does_not_hold() {
        let mut r = ReceivedImages::default();
        let mut h = header();
        assert!(r.resolve(&h).unwrap().is_none(), "no image named");
        h.ref_image_data = Some("cGhvdG8=".into());
        assert!(matches!(r.resolve(&h), Err(RefImageError::NoHash)));
        h.ref_image_sha256 = Some(RefImage::from_bytes(b"other").sha256);
        assert!(matches!(r.resolve(&h), Err(RefImageError::Mismatch { .. })));
        h.ref_image_data = Some("not base64!".into());
        assert!(matches!(r.resolve(&h), Err(RefImageError::NotBase64)));
        h.ref_image_data = None;
        assert!(matches!(r.resolve(&h), Err(RefImageError::Unknown { .. })));
    }

    #[test]
    fn a_file_is_loaded_and_a_missing_one_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("talkstream-refimage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("me.jpg");
        std::fs::write(&path, b"jpeg bytes").unwrap();
        assert_eq!(
            RefImage::load(&path).unwrap(),
            RefImage::from_bytes(b"jpeg bytes")
        );
        let e = RefImage::load(&dir.join("gone.jpg")).unwrap_err();
        assert!(e.to_string().contains("gone.jpg"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
