//! Video: the planar [`I420Frame`] (with a fast BT.601 RGBA conversion) and [`H264Encoder`], a
//! wrapper around OpenH264 that turns frames into AVCC access units at a constant frame rate and
//! captures the SPS/PPS needed for the `avcC` box.

use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, Profile,
    RateControlMode, UsageType, VuiConfig,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};

use crate::MediaError;

/// Largest picture OpenH264 accepts (3840x2160 in either orientation).
const MAX_LONG_SIDE: u32 = 3840;
const MAX_SHORT_SIDE: u32 = 2160;

/// One picture in planar YUV 4:2:0 (I420), 8 bits per sample, tightly packed (stride = width).
///
/// `width` and `height` must be even for a frame to be encodable; [`crate::LiveChannel`] and
/// [`H264Encoder`] reject odd sizes. For odd sizes the chroma planes are `ceil(w/2) x ceil(h/2)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct I420Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Luma plane, `width * height` bytes.
    pub y: Vec<u8>,
    /// Cb plane, `(width / 2) * (height / 2)` bytes.
    pub u: Vec<u8>,
    /// Cr plane, `(width / 2) * (height / 2)` bytes.
    pub v: Vec<u8>,
}

impl I420Frame {
    /// A black frame (limited range: Y = 16, U = V = 128). `width` and `height` should be even.
    pub fn new(width: u32, height: u32) -> Self {
        let (luma, chroma) = plane_sizes(width, height);
        Self {
            width,
            height,
            y: vec![16; luma],
            u: vec![128; chroma],
            v: vec![128; chroma],
        }
    }

    /// Converts a straight-alpha RGBA8 buffer of `width * height * 4` bytes into this frame
    /// (BT.601, limited range; alpha is ignored; chroma is the average of each 2x2 block).
    ///
    /// A buffer of the wrong length never panics: only the complete rows it holds are converted
    /// and the rest of the frame is left as it was. Use [`I420Frame::try_fill_from_rgba`] to get an
    /// error instead.
    pub fn fill_from_rgba(&mut self, rgba: &[u8]) {
        let row_bytes = self.width as usize * 4;
        let rows = rgba
            .len()
            .checked_div(row_bytes)
            .map_or(0, |r| r.min(self.height as usize));
        self.convert_rows(rgba, rows);
    }

    /// Like [`I420Frame::fill_from_rgba`] but rejects a buffer whose length is not exactly
    /// `width * height * 4`, leaving the frame untouched.
    pub fn try_fill_from_rgba(&mut self, rgba: &[u8]) -> Result<(), MediaError> {
        let expected = self.width as usize * self.height as usize * 4;
        if rgba.len() != expected {
            return Err(MediaError::BadRgbaLength {
                width: self.width,
                height: self.height,
                expected,
                got: rgba.len(),
            });
        }
        self.convert_rows(rgba, self.height as usize);
        Ok(())
    }

    /// True if the planes have the lengths `width` and `height` call for.
    pub fn planes_consistent(&self) -> bool {
        let (luma, chroma) = plane_sizes(self.width, self.height);
        self.y.len() == luma && self.u.len() == chroma && self.v.len() == chroma
    }

    fn convert_rows(&mut self, rgba: &[u8], rows: usize) {
        let w = self.width as usize;
        if w == 0 || rows == 0 || !self.planes_consistent() {
            return;
        }
        let cw = w.div_ceil(2);
        // Luma: one pass over every pixel of the rows present.
        for (src_row, dst_row) in rgba
            .chunks_exact(w * 4)
            .take(rows)
            .zip(self.y.chunks_exact_mut(w))
        {
            for (px, out) in src_row.chunks_exact(4).zip(dst_row.iter_mut()) {
                let (r, g, b) = (i32::from(px[0]), i32::from(px[1]), i32::from(px[2]));
                *out = (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8;
            }
        }
        // Chroma: average the 2x2 block in RGB, then convert (edge pixels repeat for odd sizes).
        let chroma_rows = rows.div_ceil(2);
        for cy in 0..chroma_rows {
            let y0 = 2 * cy;
            let y1 = (y0 + 1).min(rows - 1);
            let row0 = &rgba[y0 * w * 4..(y0 + 1) * w * 4];
            let row1 = &rgba[y1 * w * 4..(y1 + 1) * w * 4];
            let u_row = &mut self.u[cy * cw..(cy + 1) * cw];
            let v_row = &mut self.v[cy * cw..(cy + 1) * cw];
            for cx in 0..cw {
                let x0 = 2 * cx * 4;
                let x1 = (2 * cx + 1).min(w - 1) * 4;
                let sum = |c: usize| -> i32 {
                    i32::from(row0[x0 + c])
                        + i32::from(row0[x1 + c])
                        + i32::from(row1[x0 + c])
                        + i32::from(row1[x1 + c])
                };
                let (r, g, b) = (sum(0), sum(1), sum(2));
                // Sums are 4x the average: shift by 10 instead of 8.
                u_row[cx] = (((-38 * r - 74 * g + 112 * b + 512) >> 10) + 128) as u8;
                v_row[cx] = (((112 * r - 94 * g - 18 * b + 512) >> 10) + 128) as u8;
            }
        }
    }
}

/// (luma bytes, bytes per chroma plane) for a frame size.
fn plane_sizes(width: u32, height: u32) -> (usize, usize) {
    let (w, h) = (width as usize, height as usize);
    (w * h, w.div_ceil(2) * h.div_ceil(2))
}

/// One encoded picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedVideo {
    /// AVCC sample: 4-byte big-endian length-prefixed NAL units, without SPS/PPS/AUD/SEI.
    pub data: Vec<u8>,
    /// True if the picture is an IDR (a sync sample).
    pub is_idr: bool,
}

/// H.264 (Constrained Baseline) encoder over OpenH264 with frame skipping disabled: every call to
/// [`H264Encoder::encode`] yields exactly one picture.
pub struct H264Encoder {
    encoder: Encoder,
    width: u32,
    height: u32,
    fps: u32,
    frames: u64,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("fps", &self.fps)
            .field("frames", &self.frames)
            .field("has_parameter_sets", &self.sps.is_some())
            .finish_non_exhaustive()
    }
}

impl H264Encoder {
    /// A new encoder for `width x height` (even, at most 3840x2160) at `fps` frames per second and
    /// a target of `bitrate_kbps`.
    pub fn new(width: u32, height: u32, fps: u32, bitrate_kbps: u32) -> Result<Self, MediaError> {
        validate_video_size(width, height)?;
        if fps == 0 || fps > 240 {
            return Err(MediaError::InvalidConfig {
                field: "fps",
                value: fps.to_string(),
                reason: "must be 1..=240".into(),
            });
        }
        let bps = bitrate_kbps
            .checked_mul(1000)
            .filter(|&b| b > 0 && b <= 200_000_000);
        let Some(bps) = bps else {
            return Err(MediaError::InvalidConfig {
                field: "video_bitrate_kbps",
                value: bitrate_kbps.to_string(),
                reason: "must be 1..=200000".into(),
            });
        };
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(bps))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .skip_frames(false)
            .usage_type(UsageType::CameraVideoRealTime)
            .profile(Profile::Baseline)
            .complexity(Complexity::Medium)
            .scene_change_detect(false)
            .background_detection(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            .num_threads(1)
            .vui(VuiConfig::bt601());
        let encoder =
            Encoder::with_api_config(OpenH264API::from_source(), config).map_err(|e| {
                MediaError::VideoEncoder {
                    frame_index: 0,
                    message: format!("cannot create OpenH264 encoder: {e}"),
                }
            })?;
        Ok(Self {
            encoder,
            width,
            height,
            fps,
            frames: 0,
            sps: None,
            pps: None,
        })
    }

    /// Encodes one frame. The first frame, and any frame with `force_idr`, is an IDR.
    pub fn encode(
        &mut self,
        frame: &I420Frame,
        force_idr: bool,
    ) -> Result<EncodedVideo, MediaError> {
        let index = self.frames;
        check_frame(frame, self.width, self.height, index)?;
        if force_idr && index > 0 {
            self.encoder.force_intra_frame();
        }
        let millis = index.saturating_mul(1000) / u64::from(self.fps);
        let stream = self
            .encoder
            .encode_at(&Yuv(frame), Timestamp::from_millis(millis))
            .map_err(|e| MediaError::VideoEncoder {
                frame_index: index,
                message: format!("encode failed: {e}"),
            })?;
        let mut out = EncodedVideo {
            data: Vec::new(),
            is_idr: false,
        };
        let mut sps = None;
        let mut pps = None;
        for l in 0..stream.num_layers() {
            let Some(layer) = stream.layer(l) else {
                continue;
            };
            for n in 0..layer.nal_count() {
                let Some(unit) = layer.nal_unit(n) else {
                    continue;
                };
                for nal in split_annex_b(unit) {
                    let Some(&header) = nal.first() else {
                        continue;
                    };
                    match header & 0x1f {
                        7 => sps = Some(nal.to_vec()),
                        8 => pps = Some(nal.to_vec()),
                        6 | 9 | 10 | 11 | 12 => {} // SEI, AUD, end of seq/stream, filler
                        t => {
                            if t == 5 {
                                out.is_idr = true;
                            }
                            let len =
                                u32::try_from(nal.len()).map_err(|_| MediaError::VideoEncoder {
                                    frame_index: index,
                                    message: format!("NAL unit of {} bytes", nal.len()),
                                })?;
                            out.data.extend_from_slice(&len.to_be_bytes());
                            out.data.extend_from_slice(nal);
                        }
                    }
                }
            }
        }
        self.frames += 1;
        if out.data.is_empty() {
            return Err(MediaError::VideoEncoder {
                frame_index: index,
                message: "encoder produced no picture (skipped frame)".into(),
            });
        }
        self.update_parameter_sets(sps, pps, index)?;
        if out.is_idr && self.sps.is_none() {
            return Err(MediaError::VideoEncoder {
                frame_index: index,
                message: "IDR without SPS/PPS".into(),
            });
        }
        if force_idr && !out.is_idr {
            return Err(MediaError::VideoEncoder {
                frame_index: index,
                message: "an IDR was requested but the encoder produced a non-IDR picture".into(),
            });
        }
        Ok(out)
    }

    fn update_parameter_sets(
        &mut self,
        sps: Option<Vec<u8>>,
        pps: Option<Vec<u8>>,
        index: u64,
    ) -> Result<(), MediaError> {
        match (&self.sps, sps) {
            (None, Some(s)) => self.sps = Some(s),
            (Some(old), Some(s)) if *old != s => {
                return Err(MediaError::VideoEncoder {
                    frame_index: index,
                    message: "SPS changed mid-stream (would need a new init segment)".into(),
                });
            }
            _ => {}
        }
        match (&self.pps, pps) {
            (None, Some(p)) => self.pps = Some(p),
            (Some(old), Some(p)) if *old != p => {
                return Err(MediaError::VideoEncoder {
                    frame_index: index,
                    message: "PPS changed mid-stream (would need a new init segment)".into(),
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// The sequence parameter set (NAL unit without start code), known after the first IDR.
    pub fn sps(&self) -> Option<&[u8]> {
        self.sps.as_deref()
    }

    /// The picture parameter set (NAL unit without start code), known after the first IDR.
    pub fn pps(&self) -> Option<&[u8]> {
        self.pps.as_deref()
    }

    /// RFC 6381 codec string (`avc1.PPCCLL`), known after the first IDR.
    pub fn codec_string(&self) -> Option<String> {
        self.sps.as_deref().and_then(avc_codec_string)
    }

    /// Picture width.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Picture height.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Number of frames encoded so far.
    pub fn frames_encoded(&self) -> u64 {
        self.frames
    }
}

/// RFC 6381 `avc1.PPCCLL` from an SPS NAL unit (header byte first), if it is long enough.
pub fn avc_codec_string(sps: &[u8]) -> Option<String> {
    match sps {
        [_, profile, compat, level, ..] => {
            Some(format!("avc1.{profile:02X}{compat:02X}{level:02X}"))
        }
        _ => None,
    }
}

pub(crate) fn validate_video_size(width: u32, height: u32) -> Result<(), MediaError> {
    let check = |field: &'static str, v: u32| {
        if v == 0 || !v.is_multiple_of(2) {
            Err(MediaError::InvalidConfig {
                field,
                value: v.to_string(),
                reason: "must be even and greater than 0 (I420 4:2:0)".into(),
            })
        } else {
            Ok(())
        }
    };
    check("width", width)?;
    check("height", height)?;
    if width.max(height) > MAX_LONG_SIDE || width.min(height) > MAX_SHORT_SIDE {
        return Err(MediaError::InvalidConfig {
            field: "width x height",
            value: format!("{width}x{height}"),
            reason: "must fit in 3840x2160 (either orientation)".into(),
        });
    }
    Ok(())
}

pub(crate) fn check_frame(
    frame: &I420Frame,
    width: u32,
    height: u32,
    frame_index: u64,
) -> Result<(), MediaError> {
    if frame.width == width && frame.height == height && frame.planes_consistent() {
        return Ok(());
    }
    let (expected_y, expected_c) = plane_sizes(width, height);
    Err(MediaError::BadFrame {
        frame_index,
        expected_width: width,
        expected_height: height,
        expected_y,
        expected_c,
        width: frame.width,
        height: frame.height,
        y: frame.y.len(),
        u: frame.u.len(),
        v: frame.v.len(),
    })
}

/// Splits an Annex B byte stream into NAL units (start codes removed). Input without a start
/// code is returned as one unit.
fn split_annex_b(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new(); // (start-code position, payload position)
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            let sc = if i > 0 && data[i - 1] == 0 { i - 1 } else { i };
            starts.push((sc, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    if starts.is_empty() {
        return if data.is_empty() {
            Vec::new()
        } else {
            vec![data]
        };
    }
    let mut units = Vec::with_capacity(starts.len());
    for (k, &(_, payload)) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(data.len(), |&(sc, _)| sc);
        if payload < end {
            units.push(&data[payload..end]);
        }
    }
    units
}

/// Borrowing adapter so OpenH264 can read an [`I420Frame`].
struct Yuv<'a>(&'a I420Frame);

impl YUVSource for Yuv<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width as usize, self.0.height as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let w = self.0.width as usize;
        (w, w.div_ceil(2), w.div_ceil(2))
    }

    fn y(&self) -> &[u8] {
        &self.0.y
    }

    fn u(&self) -> &[u8] {
        &self.0.u
    }

    fn v(&self) -> &[u8] {
        &self.0.v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nal_types(avcc: &[u8]) -> Vec<u8> {
        let mut types = Vec::new();
        let mut i = 0;
        while i + 4 <= avcc.len() {
            let len = u32::from_be_bytes([avcc[i], avcc[i + 1], avcc[i + 2], avcc[i + 3]]) as usize;
            assert!(i + 4 + len <= avcc.len(), "length prefix overruns sample");
            types.push(avcc[i + 4] & 0x1f);
            i += 4 + len;
        }
        assert_eq!(i, avcc.len(), "trailing bytes after the last NAL unit");
        types
    }

    fn gradient(w: u32, h: u32, t: u32) -> Vec<u8> {
        let mut rgba = Vec::with_capacity((w * h * 4) as usize);
        for y in 0..h {
            for x in 0..w {
                rgba.extend_from_slice(&[
                    ((x + t * 3) % 256) as u8,
                    ((y + t) % 256) as u8,
                    ((x + y) / 4 % 256) as u8,
                    255,
                ]);
            }
        }
        rgba
    }

    #[test]
    fn black_frame_is_limited_range_black() {
        let f = I420Frame::new(4, 2);
        assert_eq!(f.y, vec![16; 8]);
        assert_eq!(f.u, vec![128; 2]);
        assert_eq!(f.v, vec![128; 2]);
        assert!(f.planes_consistent());
    }

    #[test]
    fn rgba_conversion_known_colours() {
        let mut f = I420Frame::new(2, 2);
        f.fill_from_rgba(&[255u8; 16]);
        assert_eq!(f.y, vec![235; 4]);
        assert_eq!((f.u[0], f.v[0]), (128, 128));
        let red: Vec<u8> = [255, 0, 0, 255].repeat(4);
        f.fill_from_rgba(&red);
        assert_eq!(f.y[0], 82);
        assert_eq!((f.u[0], f.v[0]), (90, 240));
        let black: Vec<u8> = [0, 0, 0, 0].repeat(4);
        f.fill_from_rgba(&black);
        assert_eq!(f.y, vec![16; 4]);
    }

    #[test]
    fn rgba_chroma_is_block_average() {
        // Left column white, right column black: chroma neutral, luma per pixel.
        let mut f = I420Frame::new(2, 2);
        let px = [[255u8, 255, 255, 255], [0, 0, 0, 255]];
        let rgba: Vec<u8> = [px[0], px[1], px[0], px[1]].concat();
        f.fill_from_rgba(&rgba);
        assert_eq!(f.y, vec![235, 16, 235, 16]);
        assert_eq!((f.u[0], f.v[0]), (128, 128));
    }

    #[test]
    fn wrong_rgba_length_never_panics() {
        let mut f = I420Frame::new(4, 4);
        f.fill_from_rgba(&[255u8; 4 * 4 * 2 + 3]); // two rows and a bit
        assert_eq!(&f.y[..8], &[235; 8]);
        assert_eq!(&f.y[8..], &[16; 8]);
        f.fill_from_rgba(&[]);
        assert!(f.try_fill_from_rgba(&[0; 5]).is_err());
    }

    #[test]
    fn annex_b_split() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4,
        ];
        let units = split_annex_b(&data);
        assert_eq!(
            units,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4][..]]
        );
        assert_eq!(split_annex_b(&[0x41, 9]), vec![&[0x41, 9][..]]);
    }

    #[test]
    fn encoder_rejects_bad_input() {
        assert!(H264Encoder::new(513, 512, 25, 1000).is_err());
        assert!(H264Encoder::new(512, 512, 0, 1000).is_err());
        assert!(H264Encoder::new(512, 512, 25, 0).is_err());
        let mut enc = H264Encoder::new(64, 64, 25, 300).unwrap();
        let err = enc.encode(&I420Frame::new(32, 32), false).unwrap_err();
        assert!(matches!(err, MediaError::BadFrame { .. }), "{err}");
    }

    #[test]
    fn encoder_produces_avcc_every_frame_and_idr_on_request() {
        let (w, h) = (128, 96);
        let mut enc = H264Encoder::new(w, h, 25, 500).unwrap();
        let mut frame = I420Frame::new(w, h);
        for n in 0..30u32 {
            frame.fill_from_rgba(&gradient(w, h, n));
            let force = n == 17;
            let out = enc.encode(&frame, force).unwrap();
            assert!(!out.data.is_empty(), "frame {n} empty");
            let types = nal_types(&out.data);
            assert!(
                types.iter().all(|t| *t == 1 || *t == 5),
                "frame {n}: only slices expected in-band, got {types:?}"
            );
            assert_eq!(out.is_idr, n == 0 || n == 17, "frame {n}: {types:?}");
        }
        let sps = enc.sps().unwrap();
        assert_eq!(sps[0] & 0x1f, 7);
        assert_eq!(enc.pps().unwrap()[0] & 0x1f, 8);
        let codec = enc.codec_string().unwrap();
        assert!(codec.starts_with("avc1.42"), "{codec}");
        assert_eq!(enc.frames_encoded(), 30);
    }
}
