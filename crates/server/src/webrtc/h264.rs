//! H.264 access units for str0m's packetizer: the media crate's AVCC samples (4-byte length
//! prefixes, no SPS/PPS) become Annex-B (start codes), with the stream's SPS and PPS in front of
//! every IDR so a viewer can start decoding at any keyframe.

use super::WebRtcError;

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Converts one AVCC sample to Annex-B; `parameter_sets` (SPS, PPS: NAL units without start
/// codes) go first when given. Fails on a length prefix that runs past the sample.
pub fn avcc_to_annex_b(
    avcc: &[u8],
    parameter_sets: Option<(&[u8], &[u8])>,
) -> Result<Vec<u8>, WebRtcError> {
    let extra = parameter_sets.map_or(0, |(s, p)| s.len() + p.len() + 8);
    let mut out = Vec::with_capacity(avcc.len() + extra);
    if let Some((sps, pps)) = parameter_sets {
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(sps);
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(pps);
    }
    let mut pos = 0;
    while pos < avcc.len() {
        let Some(len_bytes) = avcc.get(pos..pos + 4) else {
            return Err(WebRtcError::BadAccessUnit {
                offset: pos,
                len: avcc.len(),
            });
        };
        let len =
            u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        let start = pos + 4;
        let Some(nal) = avcc.get(start..start.saturating_add(len)) else {
            return Err(WebRtcError::BadAccessUnit {
                offset: pos,
                len: avcc.len(),
            });
        };
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(nal);
        pos = start + len;
    }
    Ok(out)
}

/// NAL unit types of an Annex-B access unit, in order (for tests and logs).
pub fn nal_types(annex_b: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 3 < annex_b.len() {
        if annex_b[i..i + 3] == [0, 0, 1] {
            types.push(annex_b[i + 3] & 0x1f);
            i += 3;
        } else {
            i += 1;
        }
    }
    types
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avcc_becomes_annex_b_with_parameter_sets_first() {
        let avcc = [0, 0, 0, 2, 0x65, 0xaa, 0, 0, 0, 1, 0x06];
        let out = avcc_to_annex_b(&avcc, Some((&[0x67, 1], &[0x68, 2]))).unwrap();
        assert_eq!(
            out,
            [0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0, 0, 0, 1, 0x65, 0xaa, 0, 0, 0, 1, 0x06]
        );
        assert_eq!(nal_types(&out), [7, 8, 5, 6]);
        assert!(matches!(
            avcc_to_annex_b(&avcc[..2], None),
            Err(WebRtcError::BadAccessUnit { offset: 0, len: 2 })
        ));
        assert!(avcc_to_annex_b(&[0, 0, 0, 9, 1], None).is_err());
    }
}
