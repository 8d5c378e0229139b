//! The MP4 reader: [`parse_video_track`] and [`sample_bytes`]. Every box keeps its offset in the
//! file, so every [`Mp4Error`] names where the damage is.

use super::error::{FourCc, Mp4Error};

/// H.264 decoder configuration from the `avcC` box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// Bytes in each NAL unit length prefix (1, 2 or 4).
    pub nal_length_size: u8,
    /// Sequence parameter sets (NAL units without start codes).
    pub sps: Vec<Vec<u8>>,
    /// Picture parameter sets.
    pub pps: Vec<Vec<u8>>,
}

/// One coded picture of the track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Absolute offset in the file.
    pub offset: u64,
    /// Size in bytes.
    pub size: u32,
    /// Decode time in track timescale units.
    pub dts: u64,
    /// Duration in track timescale units.
    pub duration: u32,
    /// Composition offset (presentation time = dts + this).
    pub cts_offset: i64,
}

/// The video track of an MP4 file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTrack {
    /// `tkhd` track id (0 if absent).
    pub track_id: u32,
    /// Sample entry type (`avc1`, `avc3`, `hvc1`, ...).
    pub codec: [u8; 4],
    /// Width from the sample entry.
    pub width: u16,
    /// Height from the sample entry.
    pub height: u16,
    /// Units per second of the sample times.
    pub timescale: u32,
    /// The `avcC` configuration (absent for `avc3` streams that carry it in-band).
    pub avc: Option<AvcConfig>,
    /// The pictures in decode order.
    pub samples: Vec<Sample>,
}

impl VideoTrack {
    /// The codec as text (`"avc1"`).
    pub fn codec_str(&self) -> String {
        String::from_utf8_lossy(&self.codec).into_owned()
    }
}

/// A box: its type, where its header starts in the file, and its body.
#[derive(Debug, Clone, Copy)]
struct Mp4Box<'a> {
    kind: [u8; 4],
    /// File offset of the box header.
    offset: u64,
    body: &'a [u8],
    /// File offset of `body[0]`.
    body_offset: u64,
}

impl<'a> Mp4Box<'a> {
    /// A reader over the body, named `what` in errors.
    fn reader(&self, what: &'static str) -> Rd<'a> {
        Rd {
            data: self.body,
            pos: 0,
            base: self.body_offset,
            what,
        }
    }

    /// The child boxes of the body.
    fn children(&self) -> Result<Vec<Mp4Box<'a>>, Mp4Error> {
        children(self.body, self.body_offset)
    }

    fn invalid(&self, kind: &'static str, reason: String) -> Mp4Error {
        Mp4Error::Invalid {
            kind,
            offset: self.offset,
            reason,
        }
    }
}

/// Big-endian reader over a box body; every read is bounds-checked.
struct Rd<'a> {
    data: &'a [u8],
    pos: usize,
    /// File offset of `data[0]`.
    base: u64,
    what: &'static str,
}

impl<'a> Rd<'a> {
    /// File offset of the next byte.
    fn at(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Mp4Error> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return Err(Mp4Error::Truncated {
                kind: self.what,
                offset: self.at(),
                need: n as u64,
                end: self.base + self.data.len() as u64,
            });
        };
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn skip(&mut self, n: usize) -> Result<(), Mp4Error> {
        self.bytes(n).map(|_| ())
    }

    fn u8(&mut self) -> Result<u8, Mp4Error> {
        Ok(self.bytes(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Mp4Error> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Mp4Error> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, Mp4Error> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// Version and flags of a full box.
    fn full(&mut self) -> Result<(u8, u32), Mp4Error> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }

    /// Bytes left in the box.
    fn left(&self) -> usize {
        self.data.len() - self.pos
    }

    /// An entry count, checked against the bytes left (each entry at least `entry_len` bytes).
    fn count(&mut self, entry_len: usize) -> Result<usize, Mp4Error> {
        let offset = self.at();
        let n = self.u32()? as usize;
        let left = self.left();
        if n.saturating_mul(entry_len) > left {
            return Err(Mp4Error::Entries {
                kind: self.what,
                offset,
                entries: n as u64,
                left: left as u64,
            });
        }
        Ok(n)
    }
}

/// The boxes in `data`, which starts at file offset `base`.
fn children(data: &[u8], base: u64) -> Result<Vec<Mp4Box<'_>>, Mp4Error> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        if data.len() - pos < 8 {
            // Trailing padding shorter than a box header.
            break;
        }
        let offset = base + pos as u64;
        let available = (data.len() - pos) as u64;
        let size32 = u32::from_be_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]);
        let mut kind = [0u8; 4];
        kind.copy_from_slice(&data[pos + 4..pos + 8]);
        let (header, size) = match size32 {
            0 => (8usize, available),
            1 => {
                if available < 16 {
                    return Err(Mp4Error::BoxSize {
                        kind: FourCc(kind),
                        offset,
                        size: 0,
                        available,
                    });
                }
                let mut a = [0u8; 8];
                a.copy_from_slice(&data[pos + 8..pos + 16]);
                (16usize, u64::from_be_bytes(a))
            }
            s => (8usize, u64::from(s)),
        };
        if size < header as u64 || size > available {
            return Err(Mp4Error::BoxSize {
                kind: FourCc(kind),
                offset,
                size,
                available,
            });
        }
        let end = pos + size as usize;
        out.push(Mp4Box {
            kind,
            offset,
            body: &data[pos + header..end],
            body_offset: offset + header as u64,
        });
        pos = end;
    }
    Ok(out)
}

fn child<'a>(boxes: &[Mp4Box<'a>], kind: &[u8; 4]) -> Option<Mp4Box<'a>> {
    boxes.iter().find(|b| &b.kind == kind).copied()
}

/// The child `kind` of `parent` (named `parent_name`), which must be there.
fn need<'a>(
    boxes: &[Mp4Box<'a>],
    kind: &[u8; 4],
    parent: &Mp4Box<'_>,
    parent_name: &'static str,
) -> Result<Mp4Box<'a>, Mp4Error> {
    child(boxes, kind).ok_or(Mp4Error::Missing {
        kind: FourCc(*kind),
        parent: parent_name,
        offset: parent.body_offset,
    })
}

/// Finds the first video track (`hdlr` = `vide`) of a regular MP4 file and flattens its sample
/// table. See the module docs.
pub fn parse_video_track(file: &[u8]) -> Result<VideoTrack, Mp4Error> {
    let top = children(file, 0)?;
    if top.is_empty() {
        return Err(Mp4Error::NoBoxes {
            len: file.len() as u64,
        });
    }
    if let Some(moof) = child(&top, b"moof") {
        return Err(Mp4Error::Fragmented {
            offset: moof.offset,
        });
    }
    let moov = child(&top, b"moov").ok_or_else(|| {
        let kinds: Vec<String> = top
            .iter()
            .take(8)
            .map(|b| FourCc(b.kind).to_string())
            .collect();
        Mp4Error::NoMoov {
            top: kinds.join(", "),
        }
    })?;
    let mut handlers = Vec::new();
    for trak in moov.children()? {
        if &trak.kind != b"trak" {
            continue;
        }
        let trak_boxes = trak.children()?;
        let mdia = need(&trak_boxes, b"mdia", &trak, "trak")?;
        let mdia_boxes = mdia.children()?;
        let handler = parse_hdlr(&need(&mdia_boxes, b"hdlr", &mdia, "mdia")?)?;
        if &handler != b"vide" {
            handlers.push(FourCc(handler).to_string());
            continue;
        }
        let track_id = match child(&trak_boxes, b"tkhd") {
            Some(tkhd) => parse_tkhd_id(&tkhd)?,
            None => 0,
        };
        let timescale = parse_mdhd_timescale(&need(&mdia_boxes, b"mdhd", &mdia, "mdia")?)?;
        let minf = need(&mdia_boxes, b"minf", &mdia, "mdia")?;
        let minf_boxes = minf.children()?;
        let stbl = need(&minf_boxes, b"stbl", &minf, "minf")?;
        let stbl_boxes = stbl.children()?;
        let (codec, width, height, avc) = parse_stsd(&need(&stbl_boxes, b"stsd", &stbl, "stbl")?)?;
        let samples = sample_table(&stbl, &stbl_boxes)?;
        return Ok(VideoTrack {
            track_id,
            codec,
            width,
            height,
            timescale,
            avc,
            samples,
        });
    }
    Err(Mp4Error::NoVideoTrack {
        handlers: handlers.join(", "),
    })
}

/// The bytes of one sample, bounds-checked.
pub fn sample_bytes<'a>(file: &'a [u8], s: &Sample) -> Result<&'a [u8], Mp4Error> {
    let start = usize::try_from(s.offset).ok();
    let end = start.and_then(|a| a.checked_add(s.size as usize));
    match (start, end) {
        (Some(a), Some(b)) if b <= file.len() => Ok(&file[a..b]),
        _ => Err(Mp4Error::SampleOutside {
            offset: s.offset,
            size: s.size,
            len: file.len() as u64,
        }),
    }
}

fn parse_hdlr(hdlr: &Mp4Box<'_>) -> Result<[u8; 4], Mp4Error> {
    let mut r = hdlr.reader("hdlr");
    r.full()?;
    r.skip(4)?; // pre_defined
    let mut k = [0u8; 4];
    k.copy_from_slice(r.bytes(4)?);
    Ok(k)
}

fn parse_tkhd_id(tkhd: &Mp4Box<'_>) -> Result<u32, Mp4Error> {
    let mut r = tkhd.reader("tkhd");
    let (v, _) = r.full()?;
    r.skip(if v == 1 { 16 } else { 8 })?;
    r.u32()
}

fn parse_mdhd_timescale(mdhd: &Mp4Box<'_>) -> Result<u32, Mp4Error> {
    let mut r = mdhd.reader("mdhd");
    let (v, _) = r.full()?;
    r.skip(if v == 1 { 16 } else { 8 })?;
    let ts = r.u32()?;
    if ts == 0 {
        return Err(mdhd.invalid("mdhd", "timescale is 0".into()));
    }
    Ok(ts)
}

type SampleEntry = ([u8; 4], u16, u16, Option<AvcConfig>);

fn parse_stsd(stsd: &Mp4Box<'_>) -> Result<SampleEntry, Mp4Error> {
    let mut r = stsd.reader("stsd");
    r.full()?;
    let n = r.count(8)?;
    let entries = if n == 0 {
        Vec::new()
    } else {
        children(&stsd.body[r.pos..], r.at())?
    };
    let Some(entry) = entries.first() else {
        return Err(stsd.invalid("stsd", "no sample entry".into()));
    };
    let mut e = entry.reader("visual sample entry");
    e.skip(6 + 2 + 2 + 2 + 12)?;
    let width = e.u16()?;
    let height = e.u16()?;
    e.skip(4 + 4 + 4 + 2 + 32 + 2 + 2)?;
    let boxes = children(&entry.body[e.pos..], e.at())?;
    let avc = match child(&boxes, b"avcC") {
        Some(c) => Some(parse_avcc_box(&c)?),
        None => None,
    };
    match &entry.kind {
        b"avc1" | b"avc2" if avc.is_none() => Err(Mp4Error::Missing {
            kind: FourCc(*b"avcC"),
            parent: "avc1 sample entry",
            offset: entry.body_offset,
        }),
        b"avc1" | b"avc2" | b"avc3" | b"avc4" => Ok((entry.kind, width, height, avc)),
        other => Err(Mp4Error::Codec {
            codec: FourCc(*other),
            offset: entry.offset,
        }),
    }
}

/// Parses an `avcC` box body (offsets in errors are relative to the body).
pub fn parse_avcc(body: &[u8]) -> Result<AvcConfig, Mp4Error> {
    parse_avcc_box(&Mp4Box {
        kind: *b"avcC",
        offset: 0,
        body,
        body_offset: 0,
    })
}

fn parse_avcc_box(avcc: &Mp4Box<'_>) -> Result<AvcConfig, Mp4Error> {
    let mut r = avcc.reader("avcC");
    let version = r.u8()?;
    if version != 1 {
        return Err(avcc.invalid("avcC", format!("version {version}, expected 1")));
    }
    r.skip(3)?; // profile, compatibility, level
    let nal_length_size = (r.u8()? & 3) + 1;
    if nal_length_size == 3 {
        return Err(avcc.invalid("avcC", "NAL length size 3 is invalid".into()));
    }
    let nsps = r.u8()? & 0x1f;
    let mut sps = Vec::new();
    for _ in 0..nsps {
        let len = r.u16()? as usize;
        sps.push(r.bytes(len)?.to_vec());
    }
    let npps = r.u8()?;
    let mut pps = Vec::new();
    for _ in 0..npps {
        let len = r.u16()? as usize;
        pps.push(r.bytes(len)?.to_vec());
    }
    Ok(AvcConfig {
        nal_length_size,
        sps,
        pps,
    })
}

fn sample_table(stbl: &Mp4Box<'_>, boxes: &[Mp4Box<'_>]) -> Result<Vec<Sample>, Mp4Error> {
    // stsz: sizes.
    let stsz = need(boxes, b"stsz", stbl, "stbl")?;
    let mut r = stsz.reader("stsz");
    r.full()?;
    let fixed = r.u32()?;
    let count = r.u32()? as usize;
    let sizes: Vec<u32> = if fixed == 0 {
        if count.saturating_mul(4) > r.left() {
            return Err(stsz.invalid("stsz", format!("claims {count} sizes beyond its end")));
        }
        (0..count).map(|_| r.u32()).collect::<Result<_, _>>()?
    } else {
        if count > 10_000_000 {
            return Err(stsz.invalid("stsz", format!("claims {count} samples")));
        }
        vec![fixed; count]
    };
    // stts: durations.
    let stts = need(boxes, b"stts", stbl, "stbl")?;
    let mut r = stts.reader("stts");
    r.full()?;
    let n = r.count(8)?;
    let mut durations = Vec::with_capacity(count);
    for _ in 0..n {
        let c = r.u32()? as usize;
        let d = r.u32()?;
        let take = c.min(count - durations.len());
        durations.extend(std::iter::repeat_n(d, take));
    }
    if durations.len() != count {
        return Err(stts.invalid(
            "stts",
            format!("covers {} samples, stsz has {count}", durations.len()),
        ));
    }
    // ctts: composition offsets (optional).
    let mut cts = vec![0i64; count];
    if let Some(ctts) = child(boxes, b"ctts") {
        let mut r = ctts.reader("ctts");
        let (version, _) = r.full()?;
        let n = r.count(8)?;
        let mut i = 0usize;
        for _ in 0..n {
            let c = r.u32()? as usize;
            let raw = r.u32()?;
            let off = if version == 1 {
                i64::from(raw as i32)
            } else {
                i64::from(raw)
            };
            for slot in cts.iter_mut().skip(i).take(c) {
                *slot = off;
            }
            i = i.saturating_add(c);
        }
    }
    // Chunk offsets.
    let offsets: Vec<u64> = if let Some(stco) = child(boxes, b"stco") {
        let mut r = stco.reader("stco");
        r.full()?;
        let n = r.count(4)?;
        (0..n)
            .map(|_| r.u32().map(u64::from))
            .collect::<Result<_, _>>()?
    } else if let Some(co64) = child(boxes, b"co64") {
        let mut r = co64.reader("co64");
        r.full()?;
        let n = r.count(8)?;
        (0..n).map(|_| r.u64()).collect::<Result<_, _>>()?
    } else {
        return Err(Mp4Error::Missing {
            kind: FourCc(*b"stco"),
            parent: "stbl (nor 'co64')",
            offset: stbl.body_offset,
        });
    };
    // stsc: samples per chunk, as runs starting at a (1-based) chunk.
    let stsc = need(boxes, b"stsc", stbl, "stbl")?;
    let mut r = stsc.reader("stsc");
    r.full()?;
    let n = r.count(12)?;
    let mut runs = Vec::with_capacity(n);
    for _ in 0..n {
        let first = r.u32()?;
        let per = r.u32()?;
        r.skip(4)?;
        if first == 0 || runs.last().is_some_and(|&(f, _)| f >= first) {
            return Err(stsc.invalid("stsc", format!("first_chunk {first} out of order")));
        }
        runs.push((first, per));
    }
    let mut samples = Vec::with_capacity(count);
    let mut dts = 0u64;
    'chunks: for (ci, &chunk_offset) in offsets.iter().enumerate() {
        let chunk_no = ci as u32 + 1;
        let per = runs
            .iter()
            .rev()
            .find(|&&(f, _)| f <= chunk_no)
            .map_or(0, |&(_, p)| p);
        let mut off = chunk_offset;
        for _ in 0..per {
            let i = samples.len();
            if i == count {
                break 'chunks;
            }
            samples.push(Sample {
                offset: off,
                size: sizes[i],
                dts,
                duration: durations[i],
                cts_offset: cts[i],
            });
            off = off.saturating_add(u64::from(sizes[i]));
            dts = dts.saturating_add(u64::from(durations[i]));
        }
    }
    if samples.len() != count {
        return Err(stsc.invalid(
            "stsc",
            format!(
                "the chunk table (stsc/stco) places {} samples, stsz has {count}",
                samples.len()
            ),
        ));
    }
    Ok(samples)
}
