//! The speech samples held by [`LipSync`](super::LipSync): sorted, non-overlapping runs written
//! at their sample positions, truncated and discarded as the stream moves on, read back with
//! silence where nothing was pushed.

use std::collections::VecDeque;

/// Speech samples held by the analyzer: sorted, non-overlapping, non-adjacent runs.
#[derive(Debug, Clone, Default)]
pub(super) struct Audio {
    pub(super) runs: VecDeque<Run>,
    /// Samples before this are gone.
    floor: u64,
}

#[derive(Debug, Clone)]
pub(super) struct Run {
    start: u64,
    pcm: Vec<i16>,
}

impl Run {
    pub(super) fn end(&self) -> u64 {
        self.start + self.pcm.len() as u64
    }
}

impl Audio {
    pub(super) fn len(&self) -> usize {
        self.runs.iter().map(|r| r.pcm.len()).sum()
    }

    pub(super) fn write(&mut self, start: u64, pcm: &[i16]) {
        // Cut what lies before the floor (and what would overflow the sample counter).
        let skip = self.floor.saturating_sub(start).min(pcm.len() as u64) as usize;
        let start = start.max(self.floor);
        let room = (u64::MAX - start).min((pcm.len() - skip) as u64) as usize;
        let pcm = &pcm[skip..skip + room];
        if pcm.is_empty() {
            return;
        }
        let end = start + pcm.len() as u64;
        // Fast path: appending right after the last run, or after everything.
        if let Some(last) = self.runs.back_mut() {
            if start == last.end() {
                last.pcm.extend_from_slice(pcm);
                return;
            }
        }
        if self.runs.back().is_none_or(|r| r.end() < start) {
            self.runs.push_back(Run {
                start,
                pcm: pcm.to_vec(),
            });
            return;
        }
        // General case: overwrite overlaps, fill holes, then merge touching runs.
        let mut pos = start;
        let mut fresh = Vec::new();
        for r in self.runs.iter_mut() {
            if r.end() <= start || r.start >= end {
                continue;
            }
            if r.start > pos {
                fresh.push(Run {
                    start: pos,
                    pcm: pcm[(pos - start) as usize..(r.start - start) as usize].to_vec(),
                });
            }
            let a = r.start.max(start);
            let b = r.end().min(end);
            r.pcm[(a - r.start) as usize..(b - r.start) as usize]
                .copy_from_slice(&pcm[(a - start) as usize..(b - start) as usize]);
            pos = b;
        }
        if pos < end {
            fresh.push(Run {
                start: pos,
                pcm: pcm[(pos - start) as usize..].to_vec(),
            });
        }
        self.runs.extend(fresh);
        self.runs.make_contiguous().sort_by_key(|r| r.start);
        let mut merged: VecDeque<Run> = VecDeque::with_capacity(self.runs.len());
        for r in self.runs.drain(..) {
            match merged.back_mut() {
                Some(m) if m.end() == r.start => m.pcm.extend_from_slice(&r.pcm),
                _ => merged.push_back(r),
            }
        }
        self.runs = merged;
    }

    pub(super) fn truncate(&mut self, at: u64) {
        while self.runs.back().is_some_and(|r| r.start >= at) {
            self.runs.pop_back();
        }
        if let Some(r) = self.runs.back_mut() {
            if r.end() > at {
                r.pcm.truncate((at - r.start) as usize);
            }
        }
    }

    pub(super) fn discard_before(&mut self, at: u64) {
        self.floor = self.floor.max(at);
        while self.runs.front().is_some_and(|r| r.end() <= at) {
            self.runs.pop_front();
        }
        if let Some(r) = self.runs.front_mut() {
            if r.start < at {
                r.pcm.drain(..(at - r.start) as usize);
                r.start = at;
            }
        }
    }

    /// Fill `out` with samples `[start, start + out.len())` scaled to -1..1 (silence where
    /// nothing is held, including before sample 0).
    pub(super) fn read(&self, start: i128, out: &mut [f32]) {
        out.fill(0.0);
        let end = start + out.len() as i128;
        for r in &self.runs {
            let (rs, re) = (i128::from(r.start), i128::from(r.end()));
            if re <= start {
                continue;
            }
            if rs >= end {
                break;
            }
            let a = rs.max(start);
            let b = re.min(end);
            let src = &r.pcm[(a - rs) as usize..(b - rs) as usize];
            let dst = &mut out[(a - start) as usize..(b - start) as usize];
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = f32::from(s) / 32_768.0;
            }
        }
    }
}
