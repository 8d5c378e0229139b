//! The MP4 writer: [`write_mp4`], a regular MP4 (`ftyp`, `mdat`, `moov`) with one H.264 video
//! track, for the test generator and the tests.

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

pub(super) fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
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
