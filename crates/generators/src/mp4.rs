//! A small reader and writer for *regular* (non-fragmented) MP4 files with one H.264 video
//! track, the output format of the InfiniteTalk command contract.
//!
//! [`parse_video_track`] walks `moov/trak/mdia` and takes the first track whose `hdlr` says
//! `vide`: its `mdhd` timescale, the `stsd` sample entry (`avc1`/`avc3` with `avcC` for the
//! SPS/PPS and the NAL length size), and the sample table (`stts` durations, `ctts` composition
//! offsets, `stsz` sizes, `stsc` + `stco`/`co64` chunk layout) flattened into one
//! [`Sample`] per picture with its absolute file offset. Fragmented files (`moof`) are rejected
//! with a clear message. Every size and offset is bounds-checked: a damaged file is an error,
//! never a panic.
//!
//! [`write_mp4`] does the reverse for the test generator: `ftyp`, `mdat`, then `moov` (the
//! layout most encoders produce without "faststart").

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

/// Big-endian reader over a slice; every read is bounds-checked.
struct Rd<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Rd<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, pos: 0, what }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return Err(format!(
                "{} box truncated: need {n} bytes at offset {}, have {}",
                self.what,
                self.pos,
                self.data.len()
            ));
        };
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn skip(&mut self, n: usize) -> Result<(), String> {
        self.bytes(n).map(|_| ())
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.bytes(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// Version and flags of a full box.
    fn full(&mut self) -> Result<(u8, u32), String> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }

    /// An entry count, checked against the bytes left (each entry at least `entry_len` bytes).
    fn count(&mut self, entry_len: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        let left = self.data.len() - self.pos;
        if n.saturating_mul(entry_len) > left {
            return Err(format!(
                "{} box claims {n} entries but has only {left} bytes left",
                self.what
            ));
        }
        Ok(n)
    }
}

/// A box: (type, body).
type Mp4Box<'a> = ([u8; 4], &'a [u8]);

/// The child boxes of a box body.
fn children(data: &[u8]) -> Result<Vec<Mp4Box<'_>>, String> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        if data.len() - pos < 8 {
            // Trailing padding shorter than a box header.
            break;
        }
        let size32 = u32::from_be_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]);
        let mut kind = [0u8; 4];
        kind.copy_from_slice(&data[pos + 4..pos + 8]);
        let (header, size) = match size32 {
            0 => (8usize, (data.len() - pos) as u64),
            1 => {
                if data.len() - pos < 16 {
                    return Err(format!(
                        "box '{}' at {pos}: truncated 64-bit size",
                        fourcc(&kind)
                    ));
                }
                let mut a = [0u8; 8];
                a.copy_from_slice(&data[pos + 8..pos + 16]);
                (16usize, u64::from_be_bytes(a))
            }
            s => (8usize, u64::from(s)),
        };
        let end = (pos as u64)
            .checked_add(size)
            .filter(|&e| e <= data.len() as u64);
        let Some(end) = end.filter(|_| size >= header as u64) else {
            return Err(format!(
                "box '{}' at {pos} has size {size}, beyond the {} bytes available",
                fourcc(&kind),
                data.len() - pos
            ));
        };
        let end = end as usize;
        out.push((kind, &data[pos + header..end]));
        pos = end;
    }
    Ok(out)
}

fn fourcc(k: &[u8; 4]) -> String {
    k.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

fn child<'a>(boxes: &[Mp4Box<'a>], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes.iter().find(|(k, _)| k == kind).map(|(_, b)| *b)
}

fn need<'a>(boxes: &[Mp4Box<'a>], kind: &[u8; 4], parent: &str) -> Result<&'a [u8], String> {
    child(boxes, kind).ok_or_else(|| format!("no '{}' box in '{parent}'", fourcc(kind)))
}

/// Finds the first video track (`hdlr` = `vide`) of a regular MP4 file and flattens its sample
/// table. See the module docs.
pub fn parse_video_track(file: &[u8]) -> Result<VideoTrack, String> {
    let top = children(file)?;
    if top.is_empty() {
        return Err(format!("no MP4 boxes in {} bytes", file.len()));
    }
    if child(&top, b"moof").is_some() {
        return Err(
            "fragmented MP4 (moof boxes) is not supported: write a regular MP4 (moov + mdat)"
                .into(),
        );
    }
    let moov = child(&top, b"moov").ok_or_else(|| {
        let kinds: Vec<String> = top.iter().take(8).map(|(k, _)| fourcc(k)).collect();
        format!("no 'moov' box (top-level boxes: {})", kinds.join(", "))
    })?;
    let moov = children(moov)?;
    let mut handlers = Vec::new();
    for (kind, trak) in &moov {
        if kind != b"trak" {
            continue;
        }
        let trak = children(trak)?;
        let mdia = children(need(&trak, b"mdia", "trak")?)?;
        let handler = parse_hdlr(need(&mdia, b"hdlr", "mdia")?)?;
        if &handler != b"vide" {
            handlers.push(fourcc(&handler));
            continue;
        }
        let track_id = match child(&trak, b"tkhd") {
            Some(tkhd) => parse_tkhd_id(tkhd)?,
            None => 0,
        };
        let timescale = parse_mdhd_timescale(need(&mdia, b"mdhd", "mdia")?)?;
        let minf = children(need(&mdia, b"minf", "mdia")?)?;
        let stbl = children(need(&minf, b"stbl", "minf")?)?;
        let (codec, width, height, avc) = parse_stsd(need(&stbl, b"stsd", "stbl")?)?;
        let samples = sample_table(&stbl)?;
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
    Err(if handlers.is_empty() {
        "no tracks in 'moov'".into()
    } else {
        format!("no video track (track handlers: {})", handlers.join(", "))
    })
}

/// The bytes of one sample, bounds-checked.
pub fn sample_bytes<'a>(file: &'a [u8], s: &Sample) -> Result<&'a [u8], String> {
    let start = usize::try_from(s.offset).ok();
    let end = start.and_then(|a| a.checked_add(s.size as usize));
    match (start, end) {
        (Some(a), Some(b)) if b <= file.len() => Ok(&file[a..b]),
        _ => Err(format!(
            "sample at offset {} with {} bytes lies outside the {}-byte file",
            s.offset,
            s.size,
            file.len()
        )),
    }
}

fn parse_hdlr(body: &[u8]) -> Result<[u8; 4], String> {
    let mut r = Rd::new(body, "hdlr");
    r.full()?;
    r.skip(4)?; // pre_defined
    let mut k = [0u8; 4];
    k.copy_from_slice(r.bytes(4)?);
    Ok(k)
}

fn parse_tkhd_id(body: &[u8]) -> Result<u32, String> {
    let mut r = Rd::new(body, "tkhd");
    let (v, _) = r.full()?;
    r.skip(if v == 1 { 16 } else { 8 })?;
    r.u32()
}

fn parse_mdhd_timescale(body: &[u8]) -> Result<u32, String> {
    let mut r = Rd::new(body, "mdhd");
    let (v, _) = r.full()?;
    r.skip(if v == 1 { 16 } else { 8 })?;
    let ts = r.u32()?;
    if ts == 0 {
        return Err("mdhd timescale is 0".into());
    }
    Ok(ts)
}

type SampleEntry = ([u8; 4], u16, u16, Option<AvcConfig>);

fn parse_stsd(body: &[u8]) -> Result<SampleEntry, String> {
    let mut r = Rd::new(body, "stsd");
    r.full()?;
    let n = r.count(8)?;
    if n == 0 {
        return Err("stsd has no sample entry".into());
    }
    let entries = children(&body[r.pos..])?;
    let Some((codec, entry)) = entries.first() else {
        return Err("stsd has no sample entry".into());
    };
    let mut e = Rd::new(entry, "visual sample entry");
    e.skip(6 + 2 + 2 + 2 + 12)?;
    let width = e.u16()?;
    let height = e.u16()?;
    e.skip(4 + 4 + 4 + 2 + 32 + 2 + 2)?;
    let boxes = children(&entry[e.pos..])?;
    let avc = match child(&boxes, b"avcC") {
        Some(c) => Some(parse_avcc(c)?),
        None => None,
    };
    match codec {
        b"avc1" | b"avc2" if avc.is_none() => Err(format!(
            "'{}' sample entry without an 'avcC' box",
            fourcc(codec)
        )),
        b"avc1" | b"avc2" | b"avc3" | b"avc4" => Ok((*codec, width, height, avc)),
        other => Err(format!(
            "video codec '{}' is not supported (only H.264 'avc1'/'avc3')",
            fourcc(other)
        )),
    }
}

/// Parses an `avcC` box body.
pub fn parse_avcc(body: &[u8]) -> Result<AvcConfig, String> {
    let mut r = Rd::new(body, "avcC");
    let version = r.u8()?;
    if version != 1 {
        return Err(format!("avcC version {version}, expected 1"));
    }
    r.skip(3)?; // profile, compatibility, level
    let nal_length_size = (r.u8()? & 3) + 1;
    if nal_length_size == 3 {
        return Err("avcC NAL length size 3 is invalid".into());
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

fn sample_table(stbl: &[Mp4Box<'_>]) -> Result<Vec<Sample>, String> {
    // stsz: sizes.
    let mut r = Rd::new(need(stbl, b"stsz", "stbl")?, "stsz");
    r.full()?;
    let fixed = r.u32()?;
    let count = r.u32()? as usize;
    let sizes: Vec<u32> = if fixed == 0 {
        if count.saturating_mul(4) > r.data.len() - r.pos {
            return Err(format!("stsz claims {count} sizes beyond its end"));
        }
        (0..count).map(|_| r.u32()).collect::<Result<_, _>>()?
    } else {
        if count > 10_000_000 {
            return Err(format!("stsz claims {count} samples"));
        }
        vec![fixed; count]
    };
    // stts: durations.
    let mut r = Rd::new(need(stbl, b"stts", "stbl")?, "stts");
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
        return Err(format!(
            "stts covers {} samples, stsz has {count}",
            durations.len()
        ));
    }
    // ctts: composition offsets (optional).
    let mut cts = vec![0i64; count];
    if let Some(body) = child(stbl, b"ctts") {
        let mut r = Rd::new(body, "ctts");
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
    let offsets: Vec<u64> = if let Some(body) = child(stbl, b"stco") {
        let mut r = Rd::new(body, "stco");
        r.full()?;
        let n = r.count(4)?;
        (0..n)
            .map(|_| r.u32().map(u64::from))
            .collect::<Result<_, _>>()?
    } else if let Some(body) = child(stbl, b"co64") {
        let mut r = Rd::new(body, "co64");
        r.full()?;
        let n = r.count(8)?;
        (0..n).map(|_| r.u64()).collect::<Result<_, _>>()?
    } else {
        return Err("no 'stco' or 'co64' box in 'stbl'".into());
    };
    // stsc: samples per chunk, as runs starting at a (1-based) chunk.
    let mut r = Rd::new(need(stbl, b"stsc", "stbl")?, "stsc");
    r.full()?;
    let n = r.count(12)?;
    let mut runs = Vec::with_capacity(n);
    for _ in 0..n {
        let first = r.u32()?;
        let per = r.u32()?;
        r.skip(4)?;
        if first == 0 || runs.last().is_some_and(|&(f, _)| f >= first) {
            return Err(format!("stsc first_chunk {first} out of order"));
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
        return Err(format!(
            "the chunk table (stsc/stco) places {} samples, stsz has {count}",
            samples.len()
        ));
    }
    Ok(samples)
}

/// A picture to write with [`write_mp4`].
#[derive(Debug, Clone)]
pub struct MuxSample {
    /// AVCC sample: 4-byte length-prefixed NAL units (no SPS/PPS).
    pub data: Vec<u8>,
    /// Duration in track timescale units.
    pub duration: u32,
    /// True for IDR pictures.
    pub is_sync: bool,
}

/// What [`write_mp4`] writes.
#[derive(Debug, Clone)]
pub struct MuxTrack {
    /// Picture width.
    pub width: u16,
    /// Picture height.
    pub height: u16,
    /// Units per second of the durations.
    pub timescale: u32,
    /// Sequence parameter set (NAL unit without start code).
    pub sps: Vec<u8>,
    /// Picture parameter set.
    pub pps: Vec<u8>,
    /// Samples per chunk (at least 1).
    pub samples_per_chunk: usize,
    /// Use 64-bit chunk offsets (`co64`) instead of `stco`.
    pub co64: bool,
}

fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 8);
    v.extend_from_slice(&(body.len() as u32 + 8).to_be_bytes());
    v.extend_from_slice(kind);
    v.extend_from_slice(body);
    v
}

fn full(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(body.len() + 4);
    b.extend_from_slice(&((u32::from(version) << 24) | (flags & 0x00ff_ffff)).to_be_bytes());
    b.extend_from_slice(body);
    bx(kind, &b)
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// Writes a regular MP4 (`ftyp`, `mdat`, `moov`) with one H.264 video track.
pub fn write_mp4(track: &MuxTrack, samples: &[MuxSample]) -> Vec<u8> {
    let be32 = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_be_bytes());
    let be16 = |v: &mut Vec<u8>, x: u16| v.extend_from_slice(&x.to_be_bytes());
    let ftyp = bx(b"ftyp", b"isom\0\0\x02\0isomiso2avc1mp41");
    let data_len: usize = samples.iter().map(|s| s.data.len()).sum();
    let mdat_start = ftyp.len() as u64 + 8;
    let per = track.samples_per_chunk.max(1);
    let mut chunk_offsets = Vec::new();
    let mut off = mdat_start;
    for (i, s) in samples.iter().enumerate() {
        if i % per == 0 {
            chunk_offsets.push(off);
        }
        off += s.data.len() as u64;
    }
    let total: u64 = samples.iter().map(|s| u64::from(s.duration)).sum();
    let dur_ms = u32::try_from(total * 1000 / u64::from(track.timescale.max(1))).unwrap_or(0);
    let dur_ts = u32::try_from(total).unwrap_or(u32::MAX);

    let mut mvhd = Vec::new();
    be32(&mut mvhd, 0);
    be32(&mut mvhd, 0);
    be32(&mut mvhd, 1000);
    be32(&mut mvhd, dur_ms);
    be32(&mut mvhd, 0x0001_0000);
    be16(&mut mvhd, 0x0100);
    mvhd.extend_from_slice(&[0; 10]);
    MATRIX.iter().for_each(|&m| be32(&mut mvhd, m));
    mvhd.extend_from_slice(&[0; 24]);
    be32(&mut mvhd, 2);

    let mut tkhd = Vec::new();
    be32(&mut tkhd, 0);
    be32(&mut tkhd, 0);
    be32(&mut tkhd, 1);
    be32(&mut tkhd, 0);
    be32(&mut tkhd, dur_ms);
    tkhd.extend_from_slice(&[0; 8]);
    tkhd.extend_from_slice(&[0; 8]); // layer, alternate group, volume, reserved
    MATRIX.iter().for_each(|&m| be32(&mut tkhd, m));
    be32(&mut tkhd, u32::from(track.width) << 16);
    be32(&mut tkhd, u32::from(track.height) << 16);

    let mut mdhd = Vec::new();
    be32(&mut mdhd, 0);
    be32(&mut mdhd, 0);
    be32(&mut mdhd, track.timescale);
    be32(&mut mdhd, dur_ts);
    be16(&mut mdhd, 0x55c4);
    be16(&mut mdhd, 0);

    let mut hdlr = Vec::new();
    be32(&mut hdlr, 0);
    hdlr.extend_from_slice(b"vide");
    hdlr.extend_from_slice(&[0; 12]);
    hdlr.extend_from_slice(b"VideoHandler\0");

    let mut avcc = vec![1u8];
    avcc.extend_from_slice(track.sps.get(1..4).unwrap_or(&[66, 0xc0, 30]));
    avcc.push(0xfc | 3);
    avcc.push(0xe0 | 1);
    be16(&mut avcc, track.sps.len() as u16);
    avcc.extend_from_slice(&track.sps);
    avcc.push(1);
    be16(&mut avcc, track.pps.len() as u16);
    avcc.extend_from_slice(&track.pps);

    let mut avc1 = vec![0u8; 6];
    be16(&mut avc1, 1);
    avc1.extend_from_slice(&[0; 16]);
    be16(&mut avc1, track.width);
    be16(&mut avc1, track.height);
    be32(&mut avc1, 0x0048_0000);
    be32(&mut avc1, 0x0048_0000);
    be32(&mut avc1, 0);
    be16(&mut avc1, 1);
    avc1.extend_from_slice(&[0; 32]);
    be16(&mut avc1, 0x0018);
    be16(&mut avc1, 0xffff);
    avc1.extend_from_slice(&bx(b"avcC", &avcc));
    let mut stsd = Vec::new();
    be32(&mut stsd, 1);
    stsd.extend_from_slice(&bx(b"avc1", &avc1));

    let mut runs: Vec<(u32, u32)> = Vec::new();
    for s in samples {
        match runs.last_mut() {
            Some((c, d)) if *d == s.duration => *c += 1,
            _ => runs.push((1, s.duration)),
        }
    }
    let mut stts = Vec::new();
    be32(&mut stts, runs.len() as u32);
    for (c, d) in runs {
        be32(&mut stts, c);
        be32(&mut stts, d);
    }
    let syncs: Vec<u32> = (1..=samples.len() as u32)
        .filter(|&i| samples[i as usize - 1].is_sync)
        .collect();
    let mut stss = Vec::new();
    be32(&mut stss, syncs.len() as u32);
    syncs.iter().for_each(|&i| be32(&mut stss, i));
    let mut stsc = Vec::new();
    let last = samples.len() % per;
    let full_chunks = samples.len() / per;
    let mut entries = Vec::new();
    if full_chunks > 0 {
        entries.push((1u32, per as u32));
    }
    if last > 0 {
        entries.push((full_chunks as u32 + 1, last as u32));
    }
    be32(&mut stsc, entries.len() as u32);
    for (first, n) in entries {
        be32(&mut stsc, first);
        be32(&mut stsc, n);
        be32(&mut stsc, 1);
    }
    let mut stsz = Vec::new();
    be32(&mut stsz, 0);
    be32(&mut stsz, samples.len() as u32);
    samples
        .iter()
        .for_each(|s| be32(&mut stsz, s.data.len() as u32));
    let mut co = Vec::new();
    be32(&mut co, chunk_offsets.len() as u32);
    for &o in &chunk_offsets {
        if track.co64 {
            co.extend_from_slice(&o.to_be_bytes());
        } else {
            be32(&mut co, u32::try_from(o).unwrap_or(u32::MAX));
        }
    }
    let stbl = [
        full(b"stsd", 0, 0, &stsd),
        full(b"stts", 0, 0, &stts),
        full(b"stss", 0, 0, &stss),
        full(b"stsc", 0, 0, &stsc),
        full(b"stsz", 0, 0, &stsz),
        full(if track.co64 { b"co64" } else { b"stco" }, 0, 0, &co),
    ]
    .concat();
    let dinf = bx(
        b"dinf",
        &full(
            b"dref",
            0,
            0,
            &[&1u32.to_be_bytes()[..], &full(b"url ", 0, 1, &[])].concat(),
        ),
    );
    let minf = bx(
        b"minf",
        &[full(b"vmhd", 0, 1, &[0; 8]), dinf, bx(b"stbl", &stbl)].concat(),
    );
    let mdia = bx(
        b"mdia",
        &[full(b"mdhd", 0, 0, &mdhd), full(b"hdlr", 0, 0, &hdlr), minf].concat(),
    );
    let trak = bx(b"trak", &[full(b"tkhd", 0, 3, &tkhd), mdia].concat());
    let moov = bx(b"moov", &[full(b"mvhd", 0, 0, &mvhd), trak].concat());

    let mut out = Vec::with_capacity(ftyp.len() + 8 + data_len + moov.len());
    out.extend_from_slice(&ftyp);
    out.extend_from_slice(&(data_len as u32 + 8).to_be_bytes());
    out.extend_from_slice(b"mdat");
    for s in samples {
        out.extend_from_slice(&s.data);
    }
    out.extend_from_slice(&moov);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(per: usize, co64: bool) -> MuxTrack {
        MuxTrack {
            width: 64,
            height: 48,
            timescale: 12_800,
            sps: vec![0x67, 0x42, 0xc0, 0x1e, 1, 2],
            pps: vec![0x68, 3],
            samples_per_chunk: per,
            co64,
        }
    }

    fn samples(n: usize) -> Vec<MuxSample> {
        (0..n)
            .map(|i| MuxSample {
                data: vec![i as u8; 10 + i],
                duration: 512,
                is_sync: i == 0,
            })
            .collect()
    }

    #[test]
    fn round_trip_with_various_chunk_layouts() {
        for (per, co64) in [(1, false), (4, false), (7, true), (100, false)] {
            let ss = samples(10);
            let file = write_mp4(&track(per, co64), &ss);
            let t = parse_video_track(&file).unwrap();
            assert_eq!((t.width, t.height, t.timescale), (64, 48, 12_800));
            assert_eq!(&t.codec, b"avc1");
            assert_eq!(t.track_id, 1);
            let avc = t.avc.as_ref().unwrap();
            assert_eq!(avc.nal_length_size, 4);
            assert_eq!(avc.sps, vec![vec![0x67, 0x42, 0xc0, 0x1e, 1, 2]]);
            assert_eq!(avc.pps, vec![vec![0x68, 3]]);
            assert_eq!(t.samples.len(), 10);
            for (i, s) in t.samples.iter().enumerate() {
                assert_eq!(sample_bytes(&file, s).unwrap(), &ss[i].data[..]);
                assert_eq!(s.dts, 512 * i as u64);
                assert_eq!(s.duration, 512);
            }
        }
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let file = write_mp4(&track(3, false), &samples(5));
        assert!(parse_video_track(&[]).is_err());
        assert!(parse_video_track(b"garbage garbage garbage").is_err());
        // Every truncation either parses (cut inside trailing data) or fails cleanly.
        for cut in 0..file.len() {
            let _ = parse_video_track(&file[..cut]);
        }
        // Every single-byte corruption of the moov never panics.
        let moov_at = file.len() - 400.min(file.len());
        for i in moov_at..file.len() {
            let mut f = file.clone();
            f[i] ^= 0xff;
            if let Ok(t) = parse_video_track(&f) {
                for s in &t.samples {
                    let _ = sample_bytes(&f, s);
                }
            }
        }
        // A fragmented file is rejected by name.
        let mut frag = bx(b"ftyp", b"iso6\0\0\0\0");
        frag.extend(bx(b"moov", &[]));
        frag.extend(bx(b"moof", &[]));
        let err = parse_video_track(&frag).unwrap_err();
        assert!(err.contains("fragmented"), "{err}");
    }
}
