//! Photos sent by pages (`{"type":"portrait"}`): the expensive part of checking one (decoding,
//! geometry: [`talkstream_avatar::portrait::upload`]) off the async threads under a server-wide
//! limit of [`CONCURRENT_CHECKS`], the server's default portrait that `PORTRAIT_UPLOADS=default`
//! replaces (in memory only), and the private copy of a photo an external video generator reads
//! (the only file an upload ever leads to: mode 0600 in a 0700 folder of the system's temporary
//! directory, named by the server, removed when no session uses it and it is not the default).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use talkstream_avatar::mesh::Point;
use talkstream_avatar::portrait::upload::{
    portrait_from_upload, ImageKind, UploadError, UploadLimits,
};
use talkstream_avatar::Portrait;
use tokio::sync::Semaphore;

/// Photos checked at once on the whole server (each decode takes a core for a while).
pub const CONCURRENT_CHECKS: usize = 2;

/// A photo that passed the checks, ready to animate.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedPortrait {
    /// The portrait.
    pub portrait: Arc<Portrait>,
    /// Notes for the person (e.g. the photo's mouth is open).
    pub notes: Vec<String>,
    /// The file's format.
    pub kind: ImageKind,
    /// The file's size, bytes.
    pub file_bytes: usize,
    /// The decoded photo's size (before scaling down).
    pub source_size: (u32, u32),
    /// The file itself, kept only when an external generator needs it.
    pub encoded: Option<Arc<[u8]>>,
}

/// Check a photo and its landmarks (blocking: call it in `spawn_blocking`). `keep_file` keeps
/// the encoded bytes (for an external generator).
pub fn check_blocking(
    image: &[u8],
    landmarks: &[[f32; 2]],
    max_bytes: usize,
    keep_file: bool,
) -> Result<CheckedPortrait, UploadError> {
    let points: Vec<Point> = landmarks.iter().map(|&[x, y]| Point::new(x, y)).collect();
    let limits = UploadLimits {
        max_bytes,
        ..UploadLimits::default()
    };
    let checked = portrait_from_upload(image, &points, &limits)?;
    Ok(CheckedPortrait {
        portrait: Arc::new(checked.portrait),
        notes: checked.notes,
        kind: checked.kind,
        file_bytes: image.len(),
        source_size: (checked.source_width, checked.source_height),
        encoded: keep_file.then(|| Arc::from(image)),
    })
}

/// The portrait new sessions start with, and its copy for an external generator.
#[derive(Debug, Default)]
struct DefaultPortrait {
    portrait: Option<Arc<Portrait>>,
    /// `None`: the generator keeps `AVATAR_REF_IMAGE`.
    file: Option<Arc<RefImageFile>>,
}

/// What the server shares about uploads: the check slots and the default portrait.
#[derive(Debug)]
pub struct Uploads {
    /// Permits for [`check_blocking`] runs.
    pub checks: Arc<Semaphore>,
    default: RwLock<DefaultPortrait>,
}

impl Uploads {
    /// With `portrait` (`AVATAR_REF_IMAGE`) as the default, if any.
    pub fn new(portrait: Option<Arc<Portrait>>) -> Self {
        Uploads {
            checks: Arc::new(Semaphore::new(CONCURRENT_CHECKS)),
            default: RwLock::new(DefaultPortrait {
                portrait,
                file: None,
            }),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&DefaultPortrait) -> T) -> T {
        match self.default.read() {
            Ok(g) => f(&g),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// The default portrait for a new session now (`None`: the drawn avatar).
    pub fn default_portrait(&self) -> Option<Arc<Portrait>> {
        self.read(|d| d.portrait.clone())
    }

    /// The external generator's copy of the default portrait, when an upload made it the
    /// default (`None`: `AVATAR_REF_IMAGE`). Holding it keeps the file.
    pub fn default_ref_image(&self) -> Option<Arc<RefImageFile>> {
        self.read(|d| d.file.clone())
    }

    /// Make `portrait` (and `file`, its copy for an external generator, if any) the default for
    /// sessions started from now on.
    pub fn set_default(&self, portrait: Arc<Portrait>, file: Option<Arc<RefImageFile>>) {
        let new = DefaultPortrait {
            portrait: Some(portrait),
            file,
        };
        match self.default.write() {
            Ok(mut g) => *g = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }
}

/// An uploaded photo written for an external generator; the file goes when this is dropped
/// (shared as an `Arc` by the session that sent it and, as the default, by the server).
#[derive(Debug)]
pub struct RefImageFile {
    path: PathBuf,
}

impl RefImageFile {
    /// Write `bytes` as `<dir>/<session>-<upload>.<ext>`, readable by this user only. `dir` is
    /// created (mode 0700) if missing; an existing file is never overwritten.
    pub fn write(
        dir: &Path,
        session: &str,
        upload: u64,
        kind: ImageKind,
        bytes: &[u8],
    ) -> std::io::Result<Self> {
        use std::io::Write;
        // The name is the server's own: the session id is hex digits (and a node prefix that
        // validation keeps to letters, digits and '-').
        let safe: String = session
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir)?;
        let path = dir.join(format!("{safe}-{upload}.{}", kind.extension()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path)?;
        let written = file.write_all(bytes).and_then(|()| file.sync_all());
        let this = RefImageFile { path };
        written.map(|()| this)
    }

    /// The file's path (for the generator's `--ref_image`).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RefImageFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The folder for generator copies of uploaded photos: per server process, in the system's
/// temporary directory.
pub fn ref_image_dir() -> PathBuf {
    std::env::temp_dir().join(format!("talkstream-portraits-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generator_copy_is_private_and_goes_away() {
        let dir = std::env::temp_dir().join(format!(
            "talkstream-uploads-test-{}",
            crate::session::new_id()
        ));
        let f = RefImageFile::write(&dir, "node-1/../x", 3, ImageKind::Jpeg, b"bytes").unwrap();
        assert_eq!(f.path().parent(), Some(dir.as_path()));
        assert_eq!(
            f.path().file_name().unwrap().to_str().unwrap(),
            "node-1x-3.jpg"
        );
        assert_eq!(std::fs::read(f.path()).unwrap(), b"bytes");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(f.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        // Never overwritten.
        assert!(RefImageFile::write(&dir, "node-1x", 3, ImageKind::Jpeg, b"other").is_err());
        let path = f.path().to_path_buf();
        drop(f);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_default_portrait_is_swappable() {
        let u = Uploads::new(None);
        assert!(u.default_portrait().is_none());
        let fixture = include_bytes!("../../avatar/tests/fixtures/face128.jpg");
        let points: Vec<[f32; 2]> =
            talkstream_avatar::mesh::template_landmarks(Point::new(64.0, 66.4), 22.5)
                .iter()
                .map(|p| [p.x, p.y])
                .collect();
        let checked = check_blocking(fixture, &points, 1 << 20, true).unwrap();
        assert_eq!(checked.encoded.as_deref(), Some(&fixture[..]));
        assert!(u.default_ref_image().is_none());
        let dir = std::env::temp_dir().join(format!(
            "talkstream-uploads-default-{}",
            crate::session::new_id()
        ));
        let file = Arc::new(RefImageFile::write(&dir, "s1", 1, ImageKind::Jpeg, fixture).unwrap());
        let path = file.path().to_path_buf();
        u.set_default(Arc::clone(&checked.portrait), Some(Arc::clone(&file)));
        assert!(u
            .default_portrait()
            .is_some_and(|p| Arc::ptr_eq(&p, &checked.portrait)));
        // The uploading session lets go of its copy: the default keeps the file.
        drop(file);
        assert_eq!(
            u.default_ref_image().map(|f| f.path().to_path_buf()),
            Some(path.clone())
        );
        assert!(path.exists());
        // Another default without a file: the old copy goes.
        u.set_default(Arc::clone(&checked.portrait), None);
        assert!(u.default_ref_image().is_none());
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
