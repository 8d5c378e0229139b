//! [`Mp4Error`]: every way the MP4 reader rejects a file, each naming the box and the byte offset
//! in the file where it went wrong, so one log line finds the damage.

use std::fmt;

/// A box type (`moov`, `avcC`, ...), printed as text (`?` for bytes that are not printable).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FourCc(pub [u8; 4]);

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            let c = if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{self}'")
    }
}

/// Why an MP4 file could not be read. Every `offset` is a byte position in the whole file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Mp4Error {
    /// The file holds no box at all.
    #[error("no MP4 boxes in {len} bytes")]
    NoBoxes {
        /// The file's length.
        len: u64,
    },
    /// The file is larger than a generated window can reasonably be.
    #[error("{len} bytes is more than the {limit}-byte limit")]
    TooLarge {
        /// The file's length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The video track has no samples.
    #[error("the video track (id {track_id}) has no samples")]
    NoSamples {
        /// Its `tkhd` id.
        track_id: u32,
    },
    /// A box header declares a size that does not fit in its parent.
    #[error(
        "box '{kind}' at offset {offset} has size {size}, beyond the {available} bytes available"
    )]
    BoxSize {
        /// The box type.
        kind: FourCc,
        /// Offset of its header.
        offset: u64,
        /// Its declared size (0 when the 64-bit size itself is cut off).
        size: u64,
        /// Bytes from its header to the end of its parent.
        available: u64,
    },
    /// A field runs past the end of its box.
    #[error("'{kind}' box truncated: need {need} bytes at offset {offset}, the box ends at {end}")]
    Truncated {
        /// The box (or "sample entry") being read.
        kind: &'static str,
        /// Offset of the field.
        offset: u64,
        /// Bytes the field needs.
        need: u64,
        /// Offset where the box's body ends.
        end: u64,
    },
    /// An entry count larger than the box could hold.
    #[error(
        "'{kind}' box at offset {offset} claims {entries} entries but has only {left} bytes left"
    )]
    Entries {
        /// The box.
        kind: &'static str,
        /// Offset of the count.
        offset: u64,
        /// The claimed count.
        entries: u64,
        /// Bytes left in the box.
        left: u64,
    },
    /// A required box is missing.
    #[error("no '{kind}' box in '{parent}' (its body starts at offset {offset})")]
    Missing {
        /// The missing box.
        kind: FourCc,
        /// Where it should be.
        parent: &'static str,
        /// Offset of the parent's body.
        offset: u64,
    },
    /// A fragmented file.
    #[error(
        "fragmented MP4 (a 'moof' box at offset {offset}) is not supported: write a regular MP4 \
         (moov + mdat)"
    )]
    Fragmented {
        /// Offset of the first `moof`.
        offset: u64,
    },
    /// No `moov` box at the top level.
    #[error("no 'moov' box (top-level boxes: {top})")]
    NoMoov {
        /// The first top-level box types.
        top: String,
    },
    /// `moov` has no video track.
    #[error("no video track (track handlers: {handlers})")]
    NoVideoTrack {
        /// The handlers of the tracks found ("" when there are none).
        handlers: String,
    },
    /// A value that breaks the format's rules (a zero timescale, an unsorted table, ...).
    #[error("bad '{kind}' box at offset {offset}: {reason}")]
    Invalid {
        /// The box.
        kind: &'static str,
        /// Offset of its header.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A video codec other than H.264.
    #[error("video codec '{codec}' (sample entry at offset {offset}) is not supported (only H.264 'avc1'/'avc3')")]
    Codec {
        /// The sample entry type.
        codec: FourCc,
        /// Offset of the sample entry.
        offset: u64,
    },
    /// A sample's bytes lie outside the file.
    #[error("sample at offset {offset} with {size} bytes lies outside the {len}-byte file")]
    SampleOutside {
        /// The sample's offset.
        offset: u64,
        /// Its size.
        size: u32,
        /// The file's length.
        len: u64,
    },
}
