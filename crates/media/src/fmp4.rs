//! fMP4 / CMAF byte builders: the init segment (`ftyp` + `moov` with one H.264 and one AAC track
//! and `mvex`) and CMAF chunks (`moof` + `mdat`). Pure functions from values to bytes; no state,
//! no timing decisions (those belong to [`crate::channel`]).

use crate::MediaError;

/// Track id of the video track.
pub const VIDEO_TRACK_ID: u32 = 1;
/// Track id of the audio track.
pub const AUDIO_TRACK_ID: u32 = 2;
/// Timescale of the video track (ticks per second).
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// Movie (mvhd) timescale.
const MOVIE_TIMESCALE: u32 = 1000;

/// `trun` sample flags of a sync sample (sample_depends_on = 2).
pub const SAMPLE_FLAGS_SYNC: u32 = 0x0200_0000;
/// `trun` sample flags of a non-sync sample (sample_depends_on = 1, is_non_sync_sample).
pub const SAMPLE_FLAGS_NON_SYNC: u32 = 0x0101_0000;

const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
const TRUN_DATA_OFFSET: u32 = 0x0001;
const TRUN_SAMPLE_DURATION: u32 = 0x0100;
const TRUN_SAMPLE_SIZE: u32 = 0x0200;
const TRUN_SAMPLE_FLAGS: u32 = 0x0400;

/// What the init segment needs to know about the H.264 track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTrack {
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Sequence parameter set NAL unit (no start code).
    pub sps: Vec<u8>,
    /// Picture parameter set NAL unit (no start code).
    pub pps: Vec<u8>,
}

/// What the init segment needs to know about the AAC track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTrack {
    /// Sample rate in Hz; also the track timescale.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
    /// AudioSpecificConfig.
    pub asc: Vec<u8>,
    /// Average bitrate in bits per second (informative, for `esds`).
    pub avg_bitrate: u32,
}

/// One sample of a track run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample<'a> {
    /// Duration in the track's timescale.
    pub duration: u32,
    /// Sample bytes (AVCC access unit or raw AAC access unit).
    pub data: &'a [u8],
    /// True for a sync sample (IDR; every AAC access unit).
    pub sync: bool,
}

/// The samples of one track inside a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackRun<'a> {
    /// Track id ([`VIDEO_TRACK_ID`] or [`AUDIO_TRACK_ID`]).
    pub track_id: u32,
    /// Decode time of the first sample (`tfdt`), in the track's timescale.
    pub base_media_decode_time: u64,
    /// Samples in decode order.
    pub samples: &'a [Sample<'a>],
}

/// Box writer: nested boxes get their size patched when closed.
struct Writer {
    buf: Vec<u8>,
    open: Vec<usize>,
}

impl Writer {
    fn new() -> Self {
        Self {
            buf: Vec::with_capacity(1024),
            open: Vec::new(),
        }
    }

    fn begin(&mut self, kind: &[u8; 4]) {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(kind);
    }

    fn begin_full(&mut self, kind: &[u8; 4], version: u8, flags: u32) {
        self.begin(kind);
        self.u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
    }

    fn end(&mut self) -> Result<(), MediaError> {
        let Some(start) = self.open.pop() else {
            return Err(MediaError::Fmp4 {
                message: "box writer: end() without begin()".into(),
            });
        };
        let size = to_u32(self.buf.len() - start, "box size")?;
        self.buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
        Ok(())
    }

    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn u24(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes()[1..]);
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }
    fn matrix(&mut self) {
        for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
            self.u32(v);
        }
    }

    fn finish(self) -> Result<Vec<u8>, MediaError> {
        if !self.open.is_empty() {
            return Err(MediaError::Fmp4 {
                message: format!("box writer: {} boxes left open", self.open.len()),
            });
        }
        Ok(self.buf)
    }
}

fn to_u32(v: usize, what: &str) -> Result<u32, MediaError> {
    u32::try_from(v).map_err(|_| MediaError::Fmp4 {
        message: format!("{what} {v} does not fit in 32 bits"),
    })
}

fn to_u16(v: usize, what: &str) -> Result<u16, MediaError> {
    u16::try_from(v).map_err(|_| MediaError::Fmp4 {
        message: format!("{what} {v} does not fit in 16 bits"),
    })
}

/// The AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1; the body of `avcC`, and of
/// FLV's AVC sequence header): version 1, profile/compatibility/level copied from the SPS,
/// 4-byte NAL unit lengths, one SPS and one PPS.
pub fn avc_decoder_config(sps: &[u8], pps: &[u8]) -> Result<Vec<u8>, MediaError> {
    if sps.len() < 4 || pps.is_empty() {
        return Err(MediaError::Fmp4 {
            message: format!(
                "an AVC configuration needs an SPS of at least 4 bytes and a PPS (got {} and {})",
                sps.len(),
                pps.len()
            ),
        });
    }
    let mut out = Vec::with_capacity(11 + sps.len() + pps.len());
    out.push(1);
    out.extend_from_slice(&sps[1..4]); // profile, compatibility, level
    out.push(0xff); // 4-byte NAL lengths
    out.push(0xe1); // one SPS
    out.extend_from_slice(&to_u16(sps.len(), "SPS length")?.to_be_bytes());
    out.extend_from_slice(sps);
    out.push(1); // one PPS
    out.extend_from_slice(&to_u16(pps.len(), "PPS length")?.to_be_bytes());
    out.extend_from_slice(pps);
    Ok(out)
}

/// Builds the init segment: `ftyp` (major `iso6`, CMAF compatible) and a `moov` with an H.264
/// track (id 1, timescale 90000) and an AAC track (id 2, timescale = sample rate), no samples,
/// and `mvex`/`trex` for both.
pub fn init_segment(video: &VideoTrack, audio: &AudioTrack) -> Result<Vec<u8>, MediaError> {
    if video.sps.len() < 4 || video.pps.is_empty() {
        return Err(MediaError::Fmp4 {
            message: format!(
                "video parameter sets too short (SPS {} bytes, PPS {} bytes)",
                video.sps.len(),
                video.pps.len()
            ),
        });
    }
    if audio.sample_rate == 0 || audio.channels == 0 || audio.asc.is_empty() {
        return Err(MediaError::Fmp4 {
            message: format!(
                "bad audio track: {} Hz, {} channels, ASC {} bytes",
                audio.sample_rate,
                audio.channels,
                audio.asc.len()
            ),
        });
    }
    let w16 = to_u16(video.width as usize, "video width")?;
    let h16 = to_u16(video.height as usize, "video height")?;

    let mut w = Writer::new();
    w.begin(b"ftyp");
    w.bytes(b"iso6");
    w.u32(0);
    for brand in [b"iso6", b"cmfc", b"mp41", b"avc1"] {
        w.bytes(brand);
    }
    w.end()?;

    w.begin(b"moov");
    // mvhd v0
    w.begin_full(b"mvhd", 0, 0);
    w.u32(0); // creation_time
    w.u32(0); // modification_time
    w.u32(MOVIE_TIMESCALE);
    w.u32(0); // duration
    w.u32(0x0001_0000); // rate 1.0
    w.u16(0x0100); // volume 1.0
    w.zeros(10);
    w.matrix();
    w.zeros(24); // pre_defined
    w.u32(AUDIO_TRACK_ID + 1); // next_track_ID
    w.end()?;

    // Video trak.
    w.begin(b"trak");
    tkhd(&mut w, VIDEO_TRACK_ID, 0, video.width, video.height)?;
    w.begin(b"mdia");
    mdhd(&mut w, VIDEO_TIMESCALE)?;
    hdlr(&mut w, b"vide", "VideoHandler")?;
    w.begin(b"minf");
    w.begin_full(b"vmhd", 0, 1);
    w.u16(0); // graphicsmode
    w.zeros(6); // opcolor
    w.end()?;
    dinf(&mut w)?;
    w.begin(b"stbl");
    w.begin_full(b"stsd", 0, 0);
    w.u32(1);
    w.begin(b"avc1");
    w.zeros(6);
    w.u16(1); // data_reference_index
    w.u16(0);
    w.u16(0);
    w.zeros(12);
    w.u16(w16);
    w.u16(h16);
    w.u32(0x0048_0000); // 72 dpi
    w.u32(0x0048_0000);
    w.u32(0);
    w.u16(1); // frame_count
    w.zeros(32); // compressorname
    w.u16(0x0018); // depth
    w.u16(0xffff); // pre_defined = -1
    w.begin(b"avcC");
    w.bytes(&avc_decoder_config(&video.sps, &video.pps)?);
    w.end()?; // avcC
    w.end()?; // avc1
    w.end()?; // stsd
    empty_sample_tables(&mut w)?;
    w.end()?; // stbl
    w.end()?; // minf
    w.end()?; // mdia
    w.end()?; // trak

    // Audio trak.
    w.begin(b"trak");
    tkhd(&mut w, AUDIO_TRACK_ID, 0x0100, 0, 0)?;
    w.begin(b"mdia");
    mdhd(&mut w, audio.sample_rate)?;
    hdlr(&mut w, b"soun", "SoundHandler")?;
    w.begin(b"minf");
    w.begin_full(b"smhd", 0, 0);
    w.u16(0); // balance
    w.u16(0);
    w.end()?;
    dinf(&mut w)?;
    w.begin(b"stbl");
    w.begin_full(b"stsd", 0, 0);
    w.u32(1);
    w.begin(b"mp4a");
    w.zeros(6);
    w.u16(1); // data_reference_index
    w.zeros(8);
    w.u16(audio.channels);
    w.u16(16); // samplesize
    w.u16(0);
    w.u16(0);
    // 16.16 sample rate; rates above 65535 Hz do not fit and are signalled by the ASC alone.
    w.u32(if audio.sample_rate < 0x1_0000 {
        audio.sample_rate << 16
    } else {
        0
    });
    esds(&mut w, audio)?;
    w.end()?; // mp4a
    w.end()?; // stsd
    empty_sample_tables(&mut w)?;
    w.end()?; // stbl
    w.end()?; // minf
    w.end()?; // mdia
    w.end()?; // trak

    w.begin(b"mvex");
    for id in [VIDEO_TRACK_ID, AUDIO_TRACK_ID] {
        w.begin_full(b"trex", 0, 0);
        w.u32(id);
        w.u32(1); // default_sample_description_index
        w.u32(0);
        w.u32(0);
        w.u32(0);
        w.end()?;
    }
    w.end()?; // mvex
    w.end()?; // moov
    w.finish()
}

fn tkhd(w: &mut Writer, id: u32, volume: u16, width: u32, height: u32) -> Result<(), MediaError> {
    w.begin_full(b"tkhd", 0, 0x000003); // enabled | in_movie
    w.u32(0);
    w.u32(0);
    w.u32(id);
    w.u32(0);
    w.u32(0); // duration
    w.zeros(8);
    w.u16(0); // layer
    w.u16(0); // alternate_group
    w.u16(volume);
    w.u16(0);
    w.matrix();
    w.u32(width << 16);
    w.u32(height << 16);
    w.end()
}

fn mdhd(w: &mut Writer, timescale: u32) -> Result<(), MediaError> {
    w.begin_full(b"mdhd", 0, 0);
    w.u32(0);
    w.u32(0);
    w.u32(timescale);
    w.u32(0); // duration
              // Language "und": three 5-bit letters, each minus 0x60.
    let lang =
        (u16::from(b'u' - 0x60) << 10) | (u16::from(b'n' - 0x60) << 5) | u16::from(b'd' - 0x60);
    w.u16(lang);
    w.u16(0);
    w.end()
}

fn hdlr(w: &mut Writer, handler: &[u8; 4], name: &str) -> Result<(), MediaError> {
    w.begin_full(b"hdlr", 0, 0);
    w.u32(0);
    w.bytes(handler);
    w.zeros(12);
    w.bytes(name.as_bytes());
    w.u8(0);
    w.end()
}

fn dinf(w: &mut Writer) -> Result<(), MediaError> {
    w.begin(b"dinf");
    w.begin_full(b"dref", 0, 0);
    w.u32(1);
    w.begin_full(b"url ", 0, 1); // self-contained
    w.end()?;
    w.end()?;
    w.end()
}

fn empty_sample_tables(w: &mut Writer) -> Result<(), MediaError> {
    for kind in [b"stts", b"stsc"] {
        w.begin_full(kind, 0, 0);
        w.u32(0);
        w.end()?;
    }
    w.begin_full(b"stsz", 0, 0);
    w.u32(0); // sample_size
    w.u32(0); // sample_count
    w.end()?;
    w.begin_full(b"stco", 0, 0);
    w.u32(0);
    w.end()
}

fn esds(w: &mut Writer, audio: &AudioTrack) -> Result<(), MediaError> {
    let asc_len = audio.asc.len();
    if asc_len > 100 {
        return Err(MediaError::Fmp4 {
            message: format!("AudioSpecificConfig of {asc_len} bytes is too long"),
        });
    }
    // Descriptor lengths below 128 fit in one byte.
    let dsi_len = asc_len as u8;
    let dcd_len = 13 + 2 + dsi_len;
    let es_len = 3 + 2 + dcd_len + 3;
    w.begin_full(b"esds", 0, 0);
    w.u8(0x03); // ES_Descriptor
    w.u8(es_len);
    w.u16(0); // ES_ID
    w.u8(0); // flags
    w.u8(0x04); // DecoderConfigDescriptor
    w.u8(dcd_len);
    w.u8(0x40); // MPEG-4 Audio
    w.u8(0x15); // AudioStream << 2 | reserved 1
    w.u24(0); // bufferSizeDB
    w.u32(audio.avg_bitrate); // maxBitrate
    w.u32(audio.avg_bitrate); // avgBitrate
    w.u8(0x05); // DecoderSpecificInfo
    w.u8(dsi_len);
    w.bytes(&audio.asc);
    w.u8(0x06); // SLConfigDescriptor
    w.u8(1);
    w.u8(0x02);
    w.end()
}

/// Builds one CMAF chunk: a `moof` (sequence number `sequence_number`, one `traf` per run that has
/// samples, each with `tfhd` default-base-is-moof, `tfdt` v1 and a `trun` with data offset and
/// per-sample duration, size and flags) followed by one `mdat` holding the runs' samples in order.
pub fn chunk(sequence_number: u32, runs: &[TrackRun<'_>]) -> Result<Vec<u8>, MediaError> {
    let runs: Vec<&TrackRun<'_>> = runs.iter().filter(|r| !r.samples.is_empty()).collect();
    if runs.is_empty() {
        return Err(MediaError::Fmp4 {
            message: format!("chunk {sequence_number} has no samples"),
        });
    }
    let mut w = Writer::new();
    w.begin(b"moof");
    w.begin_full(b"mfhd", 0, 0);
    w.u32(sequence_number);
    w.end()?;
    let mut offset_fields = Vec::with_capacity(runs.len());
    for run in &runs {
        w.begin(b"traf");
        w.begin_full(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF);
        w.u32(run.track_id);
        w.end()?;
        w.begin_full(b"tfdt", 1, 0);
        w.u64(run.base_media_decode_time);
        w.end()?;
        let flags = TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE | TRUN_SAMPLE_FLAGS;
        w.begin_full(b"trun", 0, flags);
        w.u32(to_u32(run.samples.len(), "sample count")?);
        offset_fields.push(w.buf.len());
        w.u32(0); // data_offset, patched below
        for s in run.samples {
            w.u32(s.duration);
            w.u32(to_u32(s.data.len(), "sample size")?);
            w.u32(if s.sync {
                SAMPLE_FLAGS_SYNC
            } else {
                SAMPLE_FLAGS_NON_SYNC
            });
        }
        w.end()?; // trun
        w.end()?; // traf
    }
    w.end()?; // moof
    let moof_len = w.buf.len();
    // Data offsets are relative to the start of the moof: skip it and the mdat header.
    let mut offset = moof_len + 8;
    for (run, field) in runs.iter().zip(offset_fields) {
        let value = i32::try_from(offset).map_err(|_| MediaError::Fmp4 {
            message: format!("data offset {offset} does not fit in 32 bits"),
        })?;
        w.buf[field..field + 4].copy_from_slice(&value.to_be_bytes());
        offset += run.samples.iter().map(|s| s.data.len()).sum::<usize>();
    }
    w.begin(b"mdat");
    for run in &runs {
        for s in run.samples {
            w.bytes(s.data);
        }
    }
    w.end()?;
    w.finish()
}

/// Turns a channel's init segment followed by all its media segments (in order) into one
/// regular (fragmented) MP4 file whose header knows the total duration: `mvhd.duration` is set
/// and an `mvex/mehd` (fragment duration) is added or updated, both in the movie timescale,
/// from `duration_ms`. The fragments are copied unchanged (their data offsets are relative to
/// their own `moof`, so growing the header moves nothing they point at).
///
/// Errors if `init` has no well-formed top-level `moov` with `mvhd` and `mvex` (32-bit box sizes,
/// as [`init_segment`] writes).
pub fn offline_mp4(
    init: &[u8],
    segments: &[&[u8]],
    duration_ms: u64,
) -> Result<Vec<u8>, MediaError> {
    let bad = |what: &str| MediaError::Fmp4 {
        message: format!("offline_mp4: {what}"),
    };
    let moov = find_box(init, 0..init.len(), b"moov").ok_or_else(|| bad("no moov box"))?;
    let mvhd = find_box(init, moov.payload.clone(), b"mvhd").ok_or_else(|| bad("no mvhd box"))?;
    let mvex = find_box(init, moov.payload.clone(), b"mvex").ok_or_else(|| bad("no mvex box"))?;
    let field = |at: usize, len: usize| -> Result<&[u8], MediaError> {
        init.get(at..at + len)
            .filter(|_| at + len <= mvhd.payload.end)
            .ok_or_else(|| bad("mvhd too short"))
    };
    let version = field(mvhd.payload.start, 1)?[0];
    // (timescale offset, duration offset, duration width) after version+flags and the times.
    let (ts_at, dur_at, dur_len) = if version == 1 {
        (mvhd.payload.start + 20, mvhd.payload.start + 24, 8)
    } else {
        (mvhd.payload.start + 12, mvhd.payload.start + 16, 4)
    };
    let mut ts = [0u8; 4];
    ts.copy_from_slice(field(ts_at, 4)?);
    let timescale = u64::from(u32::from_be_bytes(ts));
    field(dur_at, dur_len)?;
    let duration = u64::try_from(u128::from(duration_ms) * u128::from(timescale) / 1000)
        .map_err(|_| bad("duration does not fit in 64 bits"))?;
    if dur_len == 4 && duration > u64::from(u32::MAX) {
        return Err(bad("duration does not fit the 32-bit mvhd (version 0)"));
    }
    let mut head = init.to_vec();
    head[dur_at..dur_at + dur_len].copy_from_slice(&duration.to_be_bytes()[8 - dur_len..]);
    // mehd: version 1 only when the value needs 64 bits.
    let mehd = {
        let mut w = Writer::new();
        if let Ok(d) = u32::try_from(duration) {
            w.begin_full(b"mehd", 0, 0);
            w.u32(d);
        } else {
            w.begin_full(b"mehd", 1, 0);
            w.u64(duration);
        }
        w.end()?;
        w.finish()?
    };
    let (cut, old_len) = match find_box(init, mvex.payload.clone(), b"mehd") {
        Some(old) => (old.start, old.payload.end - old.start),
        None => (mvex.payload.start, 0),
    };
    let growth = mehd.len() as i64 - old_len as i64;
    for b in [&moov, &mvex] {
        let size = i64::from(read_u32(init, b.start).unwrap_or(0)) + growth;
        let size = u32::try_from(size).map_err(|_| bad("box size overflow"))?;
        head[b.start..b.start + 4].copy_from_slice(&size.to_be_bytes());
    }
    let total = head.len() + mehd.len() + segments.iter().map(|s| s.len()).sum::<usize>();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&head[..cut]);
    out.extend_from_slice(&mehd);
    out.extend_from_slice(&head[cut + old_len..]);
    for s in segments {
        out.extend_from_slice(s);
    }
    Ok(out)
}

/// A box found by [`find_box`]: offset of its header and its payload range.
struct FoundBox {
    start: usize,
    payload: std::ops::Range<usize>,
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The first box of type `kind` among the boxes tiling `data[range]` (32-bit sizes only).
fn find_box(data: &[u8], range: std::ops::Range<usize>, kind: &[u8; 4]) -> Option<FoundBox> {
    let mut at = range.start;
    while at.checked_add(8)? <= range.end {
        let size = read_u32(data, at)? as usize;
        let end = at.checked_add(size)?;
        if size < 8 || end > range.end {
            return None;
        }
        if data.get(at + 4..at + 8)? == kind {
            return Some(FoundBox {
                start: at,
                payload: at + 8..end,
            });
        }
        at = end;
    }
    None
}

#[cfg(test)]
pub(crate) mod testutil {
    //! A tiny ISO BMFF box walker for tests.

    /// One parsed box: type, absolute offset of its header, and its payload range.
    #[derive(Debug, Clone)]
    pub struct Bx {
        pub kind: [u8; 4],
        pub start: usize,
        pub payload: std::ops::Range<usize>,
    }

    impl Bx {
        pub fn kind_str(&self) -> String {
            String::from_utf8_lossy(&self.kind).into_owned()
        }
    }

    /// Parses the boxes in `data[range]`, asserting that sizes tile the range exactly.
    pub fn boxes(data: &[u8], range: std::ops::Range<usize>) -> Vec<Bx> {
        let mut out = Vec::new();
        let mut i = range.start;
        while i < range.end {
            assert!(i + 8 <= range.end, "truncated box header at {i}");
            let size = u32::from_be_bytes(data[i..i + 4].try_into().unwrap()) as usize;
            assert!(size >= 8, "box at {i} has size {size}");
            assert!(
                i + size <= range.end,
                "box at {i} (size {size}) overruns its parent"
            );
            let kind: [u8; 4] = data[i + 4..i + 8].try_into().unwrap();
            out.push(Bx {
                kind,
                start: i,
                payload: i + 8..i + size,
            });
            i += size;
        }
        assert_eq!(i, range.end, "boxes do not tile the parent");
        out
    }

    pub fn child<'a>(list: &'a [Bx], kind: &[u8; 4]) -> &'a Bx {
        list.iter()
            .find(|b| &b.kind == kind)
            .unwrap_or_else(|| panic!("no {} box", String::from_utf8_lossy(kind)))
    }

    pub fn children_of(data: &[u8], b: &Bx) -> Vec<Bx> {
        boxes(data, b.payload.clone())
    }

    pub fn be32(d: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(d[at..at + 4].try_into().unwrap())
    }

    pub fn be64(d: &[u8], at: usize) -> u64 {
        u64::from_be_bytes(d[at..at + 8].try_into().unwrap())
    }

    /// A parsed `traf`: track, tfdt, and (duration, size, flags) per sample plus the data offset.
    #[derive(Debug)]
    pub struct Traf {
        pub track_id: u32,
        pub tfdt: u64,
        pub data_offset: i32,
        pub samples: Vec<(u32, u32, u32)>,
    }

    /// A parsed chunk: moof start, mfhd sequence, trafs, mdat payload range.
    #[derive(Debug)]
    pub struct Chunk {
        pub moof_start: usize,
        pub sequence: u32,
        pub trafs: Vec<Traf>,
        pub mdat: std::ops::Range<usize>,
    }

    /// Parses consecutive moof+mdat pairs in `data`, checking every structural rule the writer
    /// promises (tfhd default-base-is-moof, tfdt v1, trun flags 0x701).
    pub fn parse_chunks(data: &[u8]) -> Vec<Chunk> {
        let top = boxes(data, 0..data.len());
        assert_eq!(top.len() % 2, 0, "moof/mdat pairs expected");
        let mut out = Vec::new();
        for pair in top.chunks(2) {
            assert_eq!(&pair[0].kind, b"moof");
            assert_eq!(&pair[1].kind, b"mdat");
            let moof = &pair[0];
            let kids = children_of(data, moof);
            let mfhd = child(&kids, b"mfhd");
            let sequence = be32(data, mfhd.payload.start + 4);
            let mut trafs = Vec::new();
            for traf in kids.iter().filter(|b| &b.kind == b"traf") {
                let tk = children_of(data, traf);
                let tfhd = child(&tk, b"tfhd");
                assert_eq!(be32(data, tfhd.payload.start) & 0x00ff_ffff, 0x02_0000);
                let track_id = be32(data, tfhd.payload.start + 4);
                let tfdt = child(&tk, b"tfdt");
                assert_eq!(data[tfdt.payload.start], 1, "tfdt version 1");
                let tfdt_v = be64(data, tfdt.payload.start + 4);
                let trun = child(&tk, b"trun");
                let p = trun.payload.start;
                assert_eq!(be32(data, p) & 0x00ff_ffff, 0x701);
                let count = be32(data, p + 4) as usize;
                let data_offset = be32(data, p + 8) as i32;
                assert_eq!(trun.payload.len(), 12 + count * 12, "trun size");
                let samples = (0..count)
                    .map(|k| {
                        let at = p + 12 + k * 12;
                        (be32(data, at), be32(data, at + 4), be32(data, at + 8))
                    })
                    .collect();
                trafs.push(Traf {
                    track_id,
                    tfdt: tfdt_v,
                    data_offset,
                    samples,
                });
            }
            out.push(Chunk {
                moof_start: moof.start,
                sequence,
                trafs,
                mdat: pair[1].payload.clone(),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    fn video_track() -> VideoTrack {
        VideoTrack {
            width: 512,
            height: 288,
            sps: vec![0x67, 0x42, 0xc0, 0x1e, 0xab, 0xcd],
            pps: vec![0x68, 0xce, 0x3c, 0x80],
        }
    }

    fn audio_track() -> AudioTrack {
        AudioTrack {
            sample_rate: 48_000,
            channels: 1,
            asc: vec![0x11, 0x88],
            avg_bitrate: 64_000,
        }
    }

    /// Finds a box by path of types from the top level.
    fn find(data: &[u8], path: &[&[u8; 4]]) -> Bx {
        let mut list = boxes(data, 0..data.len());
        let mut found = None;
        for (i, kind) in path.iter().enumerate() {
            let b = child(&list, kind).clone();
            if i + 1 < path.len() {
                list = children_of(data, &b);
            }
            found = Some(b);
        }
        found.unwrap()
    }

    #[test]
    fn init_segment_structure() {
        let init = init_segment(&video_track(), &audio_track()).unwrap();
        let top = boxes(&init, 0..init.len());
        let kinds: Vec<String> = top.iter().map(Bx::kind_str).collect();
        assert_eq!(kinds, ["ftyp", "moov"]);
        assert_eq!(&init[8..12], b"iso6");
        let moov = children_of(&init, &top[1]);
        let kinds: Vec<String> = moov.iter().map(Bx::kind_str).collect();
        assert_eq!(
            kinds,
            ["mvhd", "trak", "trak", "mvex"],
            "mvex must follow the last trak"
        );

        let mdhd = find(&init, &[b"moov", b"trak", b"mdia", b"mdhd"]);
        assert_eq!(be32(&init, mdhd.payload.start + 12), 90_000);
        let audio_trak = &moov[2];
        let mdia = children_of(&init, audio_trak);
        let mdhd = child(&children_of(&init, child(&mdia, b"mdia")), b"mdhd").clone();
        assert_eq!(be32(&init, mdhd.payload.start + 12), 48_000);

        // avcC: version 1, profile/compat/level copied from the SPS, one SPS, one PPS.
        let stsd = find(
            &init,
            &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"],
        );
        let avc1_at = stsd.payload.start + 8;
        assert_eq!(&init[avc1_at + 4..avc1_at + 8], b"avc1");
        let avc1_size = be32(&init, avc1_at) as usize;
        let avc1_children = boxes(&init, avc1_at + 8 + 78..avc1_at + avc1_size);
        let avcc = child(&avc1_children, b"avcC");
        let a = &init[avcc.payload.clone()];
        assert_eq!(&a[..6], &[1, 0x42, 0xc0, 0x1e, 0xff, 0xe1]);
        assert_eq!(&a[6..8], &[0, 6]);
        assert_eq!(&a[8..14], &video_track().sps[..]);
        assert_eq!(&a[14..17], &[1, 0, 4]);

        // trex for both tracks.
        let mvex = children_of(&init, &moov[3]);
        let ids: Vec<u32> = mvex
            .iter()
            .map(|b| be32(&init, b.payload.start + 4))
            .collect();
        assert_eq!(ids, [VIDEO_TRACK_ID, AUDIO_TRACK_ID]);

        // esds carries the ASC.
        let needle = [0x05, 0x02, 0x11, 0x88, 0x06, 0x01, 0x02];
        assert!(init.windows(needle.len()).any(|w| w == needle));
    }

    #[test]
    fn offline_mp4_sets_mvhd_and_mehd_durations() {
        let init = init_segment(&video_track(), &audio_track()).unwrap();
        let seg = [1u8, 2, 3];
        let out = offline_mp4(&init, &[&seg, &seg], 6_040).unwrap();
        assert_eq!(out.len(), init.len() + 16 + 6);
        assert_eq!(&out[out.len() - 6..], &[1, 2, 3, 1, 2, 3]);
        let head = &out[..init.len() + 16];
        let mvhd = find(head, &[b"moov", b"mvhd"]);
        assert_eq!(be32(head, mvhd.payload.start + 12), 1000, "movie timescale");
        assert_eq!(be32(head, mvhd.payload.start + 16), 6_040);
        let mvex = find(head, &[b"moov", b"mvex"]);
        let kids: Vec<String> = children_of(head, &mvex).iter().map(Bx::kind_str).collect();
        assert_eq!(kids, ["mehd", "trex", "trex"]);
        let mehd = find(head, &[b"moov", b"mvex", b"mehd"]);
        assert_eq!(be32(head, mehd.payload.start), 0, "version 0, no flags");
        assert_eq!(be32(head, mehd.payload.start + 4), 6_040);
        // Patching again replaces the mehd instead of adding a second one.
        let again = offline_mp4(head, &[], 100).unwrap();
        assert_eq!(again.len(), head.len());
        let mehd = find(&again, &[b"moov", b"mvex", b"mehd"]);
        assert_eq!(be32(&again, mehd.payload.start + 4), 100);
        // Rejects what is not an init segment, without panicking.
        assert!(offline_mp4(&[0, 0, 0, 8], &[], 1).is_err());
        assert!(offline_mp4(&init[..init.len() - 3], &[], 1).is_err());
        assert!(offline_mp4(&[], &[], 1).is_err());
        assert!(
            offline_mp4(&init, &[], 5_000_000_000).is_err(),
            "mvhd v0 overflow"
        );
    }

    #[test]
    fn init_rejects_missing_parameter_sets() {
        let mut v = video_track();
        v.sps.truncate(2);
        assert!(init_segment(&v, &audio_track()).is_err());
    }

    #[test]
    fn chunk_offsets_sizes_flags_and_tfdt_continuity() {
        let v: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 100 + i as usize]).collect();
        let a: Vec<Vec<u8>> = (0..4u8).map(|i| vec![0xa0 + i; 10 + i as usize]).collect();
        let mut stream = Vec::new();
        let mut vt = 0u64;
        let mut at = 0u64;
        // Two chunks: 3 video + 2 audio, then 2 video + 2 audio.
        for (seq, (vr, ar)) in [(0..3, 0..2), (3..5, 2..4)].into_iter().enumerate() {
            let vs: Vec<Sample> = v[vr.clone()]
                .iter()
                .enumerate()
                .map(|(k, d)| Sample {
                    duration: 3600,
                    data: d,
                    sync: vr.start + k == 0,
                })
                .collect();
            let as_: Vec<Sample> = a[ar.clone()]
                .iter()
                .map(|d| Sample {
                    duration: 1024,
                    data: d,
                    sync: true,
                })
                .collect();
            let bytes = chunk(
                seq as u32 + 1,
                &[
                    TrackRun {
                        track_id: VIDEO_TRACK_ID,
                        base_media_decode_time: vt,
                        samples: &vs,
                    },
                    TrackRun {
                        track_id: AUDIO_TRACK_ID,
                        base_media_decode_time: at,
                        samples: &as_,
                    },
                ],
            )
            .unwrap();
            vt += 3600 * vs.len() as u64;
            at += 1024 * as_.len() as u64;
            stream.extend_from_slice(&bytes);
        }
        let chunks = parse_chunks(&stream);
        assert_eq!(chunks.len(), 2);
        let mut expect_v = 0u64;
        let mut expect_a = 0u64;
        let mut vi = 0usize;
        let mut ai = 0usize;
        for (n, c) in chunks.iter().enumerate() {
            assert_eq!(c.sequence, n as u32 + 1);
            assert_eq!(c.trafs.len(), 2);
            let mut pos = c.moof_start + c.trafs[0].data_offset as usize;
            assert_eq!(pos, c.mdat.start, "first trun points at the mdat payload");
            for t in &c.trafs {
                assert_eq!(c.moof_start + t.data_offset as usize, pos);
                let (expect, src, idx, dur) = if t.track_id == VIDEO_TRACK_ID {
                    (&mut expect_v, &v, &mut vi, 3600)
                } else {
                    (&mut expect_a, &a, &mut ai, 1024)
                };
                assert_eq!(t.tfdt, *expect, "tfdt continuity of track {}", t.track_id);
                for &(d, size, flags) in &t.samples {
                    assert_eq!(d, dur);
                    assert_eq!(&stream[pos..pos + size as usize], &src[*idx][..]);
                    let sync = t.track_id == AUDIO_TRACK_ID || *idx == 0;
                    let want = if sync {
                        SAMPLE_FLAGS_SYNC
                    } else {
                        SAMPLE_FLAGS_NON_SYNC
                    };
                    assert_eq!(flags, want);
                    pos += size as usize;
                    *expect += u64::from(d);
                    *idx += 1;
                }
            }
            assert_eq!(pos, c.mdat.end, "samples fill the mdat exactly");
        }
        assert_eq!((vi, ai), (5, 4));
    }

    #[test]
    fn chunk_skips_empty_runs_and_rejects_all_empty() {
        let d = [1u8, 2, 3];
        let s = [Sample {
            duration: 3600,
            data: &d,
            sync: true,
        }];
        let bytes = chunk(
            7,
            &[
                TrackRun {
                    track_id: VIDEO_TRACK_ID,
                    base_media_decode_time: 1 << 40,
                    samples: &s,
                },
                TrackRun {
                    track_id: AUDIO_TRACK_ID,
                    base_media_decode_time: 0,
                    samples: &[],
                },
            ],
        )
        .unwrap();
        let c = parse_chunks(&bytes);
        assert_eq!(c[0].trafs.len(), 1);
        assert_eq!(c[0].trafs[0].tfdt, 1 << 40, "64-bit tfdt");
        assert!(chunk(1, &[]).is_err());
    }
}
