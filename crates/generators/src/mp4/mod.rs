//! A small reader and writer for *regular* (non-fragmented) MP4 files with one H.264 video
//! track, the output format of the InfiniteTalk command contract.
//!
//! [`parse_video_track`] walks `moov/trak/mdia` and takes the first track whose `hdlr` says
//! `vide`: its `mdhd` timescale, the `stsd` sample entry (`avc1`/`avc3` with `avcC` for the
//! SPS/PPS and the NAL length size), and the sample table (`stts` durations, `ctts` composition
//! offsets, `stsz` sizes, `stsc` + `stco`/`co64` chunk layout) flattened into one
//! [`Sample`] per picture with its absolute file offset. Fragmented files (`moof`) are rejected
//! with a clear message. Every size and offset is bounds-checked: a damaged file is an
//! [`Mp4Error`] naming the box and its byte offset in the file, never a panic.
//!
//! [`write_mp4`] (in `write.rs`) does the reverse for the test generator: `ftyp`, `mdat`, then `moov` (the
//! layout most encoders produce without "faststart").

mod error;
mod read;
mod write;

pub use error::{FourCc, Mp4Error};
pub use read::{parse_avcc, parse_video_track, sample_bytes, AvcConfig, Sample, VideoTrack};
pub use write::{write_mp4, MuxSample, MuxTrack};

#[cfg(test)]
mod tests {
    use super::write::bx;
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
        assert!(err.to_string().contains("fragmented"), "{err}");
        // ftyp (16 bytes) + an empty moov (8 bytes): the moof starts at 24.
        assert_eq!(err, Mp4Error::Fragmented { offset: 24 });
    }

    #[test]
    fn errors_name_the_box_and_its_file_offset() {
        let file = write_mp4(&track(3, false), &samples(5));
        // A sample size table cut short: the error points into the stsz box of this file.
        let stsz = file.windows(4).position(|w| w == b"stsz").unwrap() - 4;
        let mut f = file.clone();
        f[stsz + 16..stsz + 20].copy_from_slice(&1000u32.to_be_bytes()); // sample count
        let err = parse_video_track(&f).unwrap_err();
        assert!(
            matches!(&err, Mp4Error::Invalid { kind: "stsz", offset, .. } if *offset == stsz as u64),
            "{err:?}"
        );
        assert!(err.to_string().contains(&format!("offset {stsz}")), "{err}");
        // A box whose size runs past the file.
        let mut f = file.clone();
        let moov = file.windows(4).position(|w| w == b"moov").unwrap() - 4;
        f[moov..moov + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            parse_video_track(&f).unwrap_err(),
            Mp4Error::BoxSize { offset, .. } if offset == moov as u64
        ));
    }
}
