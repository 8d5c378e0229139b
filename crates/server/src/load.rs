//! The node's load, as its media threads measure it, and the admission decision built on it.
//! Each stream's media thread reports every frame to its [`StreamLoad`] (how long producing it
//! took, how far behind real time it was, whether its picture was repeated to catch up); the
//! [`NodeLoad`] sums them, and a [`LoadWindow`] (sans-I/O: samples with their time passed in)
//! keeps the last [`WINDOW`] of samples to say whether the node is overloaded: its media threads
//! use more than `MAX_MEDIA_LOAD` of the machine's cores, or a stream had to degrade (repeat
//! frames) or was behind real time. [`Admission`] then says whether a new session may start
//! (`/session`) and whether the node is ready (`GET /readyz`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::media_loop::{FrameKind, FrameStats};

/// How much history the overload verdict looks at.
pub const WINDOW: Duration = Duration::from_secs(2);

/// How often the server samples the load.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// A stream behind real time by more than this makes the node overloaded.
pub const LAG_LIMIT: Duration = Duration::from_millis(300);

/// What one stream's media thread reports (shared with the node; updated lock-free per frame).
#[derive(Debug, Default)]
pub struct StreamLoad {
    busy_ns: AtomicU64,
    behind_us: AtomicU64,
    rendered: AtomicU64,
    generated: AtomicU64,
    repeated: AtomicU64,
    speaking: AtomicBool,
}

impl StreamLoad {
    /// A frame was produced: it took `busy` (producing and handing it to the sinks), it was
    /// `behind` its real time, and the stream is (not) speaking.
    pub fn frame(&self, kind: Option<FrameKind>, behind: Duration, busy: Duration, speaking: bool) {
        let ns = u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX);
        self.busy_ns.fetch_add(ns, Ordering::Relaxed);
        let us = u64::try_from(behind.as_micros()).unwrap_or(u64::MAX);
        self.behind_us.store(us, Ordering::Relaxed);
        self.speaking.store(speaking, Ordering::Relaxed);
        let counter = match kind {
            Some(FrameKind::Rendered) => &self.rendered,
            Some(FrameKind::Generated) => &self.generated,
            Some(FrameKind::Repeated) => &self.repeated,
            None => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// How far behind real time the last frame was.
    pub fn behind(&self) -> Duration {
        Duration::from_micros(self.behind_us.load(Ordering::Relaxed))
    }

    /// True while the stream speaks.
    pub fn speaking(&self) -> bool {
        self.speaking.load(Ordering::Relaxed)
    }

    fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed))
    }

    fn stats(&self) -> FrameStats {
        FrameStats {
            rendered: self.rendered.load(Ordering::Relaxed),
            generated: self.generated.load(Ordering::Relaxed),
            repeated: self.repeated.load(Ordering::Relaxed),
        }
    }
}

/// The sum over the node's streams, live and ended, at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadTotals {
    /// Time the media threads spent producing frames, in all.
    pub busy: Duration,
    /// Frames produced, by source, in all.
    pub frames: FrameStats,
    /// The live stream furthest behind real time, by how much.
    pub worst_behind: Duration,
    /// Live streams.
    pub streams: usize,
    /// Live streams speaking now.
    pub speaking: usize,
}

/// The node's streams' loads.
#[derive(Debug, Default)]
pub struct NodeLoad {
    streams: Mutex<Vec<Weak<StreamLoad>>>,
    /// What the streams that ended had added up to.
    ended: Mutex<(Duration, FrameStats)>,
}

impl NodeLoad {
    /// A new stream's load, listed until the stream's media thread drops it.
    pub fn register(&self) -> Arc<StreamLoad> {
        let load = Arc::new(StreamLoad::default());
        if let Ok(mut streams) = self.streams.lock() {
            streams.push(Arc::downgrade(&load));
        }
        load
    }

    /// A stream's media thread ended: its totals move to the ended streams' (counters never go
    /// back), under both locks in the order [`NodeLoad::totals`] takes them, so no sum sees the
    /// stream twice or not at all.
    pub fn retire(&self, load: &Arc<StreamLoad>) {
        let (Ok(mut ended), Ok(mut streams)) = (self.ended.lock(), self.streams.lock()) else {
            return;
        };
        streams.retain(|w| !std::ptr::eq(w.as_ptr(), Arc::as_ptr(load)));
        let s = load.stats();
        ended.0 += load.busy();
        ended.1.rendered += s.rendered;
        ended.1.generated += s.generated;
        ended.1.repeated += s.repeated;
    }

    /// The sums now (forgets streams that are gone).
    pub fn totals(&self) -> LoadTotals {
        let mut t = LoadTotals::default();
        let Ok(ended) = self.ended.lock() else {
            return t;
        };
        t.busy = ended.0;
        t.frames = ended.1;
        let Ok(mut streams) = self.streams.lock() else {
            return t;
        };
        streams.retain(|w| w.strong_count() > 0);
        for load in streams.iter().filter_map(Weak::upgrade) {
            let s = load.stats();
            t.busy += load.busy();
            t.frames.rendered += s.rendered;
            t.frames.generated += s.generated;
            t.frames.repeated += s.repeated;
            t.worst_behind = t.worst_behind.max(load.behind());
            t.streams += 1;
            t.speaking += usize::from(load.speaking());
        }
        t
    }
}

/// Why the node takes no new session.
#[derive(Debug, Clone, PartialEq)]
pub enum Busy {
    /// `MAX_SESSIONS` sessions run.
    Full {
        /// The limit.
        max: usize,
    },
    /// The media threads use more of the machine than `MAX_MEDIA_LOAD`.
    Load {
        /// Their share of the machine's cores over the window (1.0 = all of them).
        load: f64,
        /// The limit.
        max: f64,
    },
    /// A stream repeated frames to keep up with real time in the window.
    Degrading,
    /// A stream is behind real time.
    Behind {
        /// By how much.
        behind: Duration,
    },
    /// The server is shutting down.
    ShuttingDown,
}

impl Busy {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Busy::Full { .. } => "full",
            Busy::Load { .. } => "load",
            Busy::Degrading => "degrading",
            Busy::Behind { .. } => "behind",
            Busy::ShuttingDown => "shutting_down",
        }
    }
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Busy::Full { max } => write!(
                f,
                "it runs its maximum of {max} sessions (MAX_SESSIONS)"
            ),
            Busy::Load { load, max } => write!(
                f,
                "the media threads use {:.0} % of the machine's cores, more than {:.0} % (MAX_MEDIA_LOAD)",
                load * 100.0,
                max * 100.0
            ),
            Busy::Degrading => write!(
                f,
                "a stream had to repeat frames to keep up with real time in the last {} s",
                WINDOW.as_secs()
            ),
            Busy::Behind { behind } => write!(
                f,
                "a stream is {} ms behind real time",
                behind.as_millis()
            ),
            Busy::ShuttingDown => write!(f, "the server is shutting down"),
        }
    }
}

/// One sample of the node's totals.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    busy: Duration,
    repeated: u64,
}

/// The last [`WINDOW`] of samples and the verdict on them (sans-I/O: time passed in).
#[derive(Debug)]
pub struct LoadWindow {
    cores: f64,
    max_load: f64,
    samples: VecDeque<Sample>,
    worst_behind: Duration,
}

impl LoadWindow {
    /// A window for a machine with `cores` cores; `max_load` is the share of them the media
    /// threads may use (0 turns the measured checks off).
    pub fn new(cores: usize, max_load: f64) -> Self {
        Self {
            cores: cores.max(1) as f64,
            max_load,
            samples: VecDeque::new(),
            worst_behind: Duration::ZERO,
        }
    }

    /// Record the totals at time `now`.
    pub fn observe(&mut self, now: Duration, totals: &LoadTotals) {
        self.samples.push_back(Sample {
            at: now,
            busy: totals.busy,
            repeated: totals.frames.repeated,
        });
        while self
            .samples
            .get(1)
            .is_some_and(|s| now.saturating_sub(s.at) >= WINDOW)
        {
            self.samples.pop_front();
        }
        self.worst_behind = totals.worst_behind;
    }

    /// The media threads' share of the machine's cores over the window (0 before two samples).
    pub fn load(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(a), Some(b)) if b.at > a.at => {
                let busy = b.busy.saturating_sub(a.busy).as_secs_f64();
                busy / (b.at - a.at).as_secs_f64() / self.cores
            }
            _ => 0.0,
        }
    }

    /// Why the node is overloaded, if it is.
    pub fn overloaded(&self) -> Option<Busy> {
        if self.max_load <= 0.0 {
            return None;
        }
        let (Some(first), Some(last)) = (self.samples.front(), self.samples.back()) else {
            return None;
        };
        if last.repeated > first.repeated {
            return Some(Busy::Degrading);
        }
        if self.worst_behind > LAG_LIMIT {
            return Some(Busy::Behind {
                behind: self.worst_behind,
            });
        }
        let load = self.load();
        (load > self.max_load).then_some(Busy::Load {
            load,
            max: self.max_load,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn totals(busy_ms: u64, repeated: u64, behind_ms: u64) -> LoadTotals {
        LoadTotals {
            busy: ms(busy_ms),
            frames: FrameStats {
                repeated,
                ..FrameStats::default()
            },
            worst_behind: ms(behind_ms),
            ..LoadTotals::default()
        }
    }

    #[test]
    fn the_share_of_the_cores_is_measured_over_the_window() {
        let mut w = LoadWindow::new(2, 0.85);
        assert_eq!(w.overloaded(), None);
        // 1.5 cores busy for a second: 75 % of two cores.
        w.observe(ms(0), &totals(0, 0, 0));
        w.observe(ms(1000), &totals(1500, 0, 0));
        assert!((w.load() - 0.75).abs() < 1e-9);
        assert_eq!(w.overloaded(), None);
        // Then 1.9 cores for two seconds: over the limit.
        w.observe(ms(2000), &totals(3400, 0, 0));
        w.observe(ms(3000), &totals(5300, 0, 0));
        assert!((w.load() - 0.95).abs() < 1e-9, "{}", w.load());
        assert!(matches!(w.overloaded(), Some(Busy::Load { .. })));
        // Load off: overloaded never.
        let mut off = LoadWindow::new(2, 0.0);
        off.observe(ms(0), &totals(0, 0, 0));
        off.observe(ms(1000), &totals(2000, 5, 900));
        assert_eq!(off.overloaded(), None);
    }

    #[test]
    fn repeated_frames_or_lag_in_the_window_mean_overloaded_until_they_slide_out() {
        let mut w = LoadWindow::new(2, 0.85);
        w.observe(ms(0), &totals(0, 0, 0));
        w.observe(ms(250), &totals(10, 3, 0));
        assert_eq!(w.overloaded(), Some(Busy::Degrading));
        w.observe(ms(2250), &totals(20, 3, 0));
        w.observe(ms(2500), &totals(30, 3, 0));
        assert_eq!(w.overloaded(), None, "the repeats left the window");
        w.observe(ms(2750), &totals(40, 3, 400));
        assert_eq!(w.overloaded(), Some(Busy::Behind { behind: ms(400) }));
    }

    #[test]
    fn the_node_sums_live_and_ended_streams() {
        let node = NodeLoad::default();
        let a = node.register();
        let b = node.register();
        a.frame(Some(FrameKind::Rendered), ms(0), ms(5), true);
        b.frame(Some(FrameKind::Repeated), ms(250), ms(2), false);
        let t = node.totals();
        assert_eq!((t.streams, t.speaking), (2, 1));
        assert_eq!(t.busy, ms(7));
        assert_eq!(t.worst_behind, ms(250));
        assert_eq!((t.frames.rendered, t.frames.repeated), (1, 1));
        node.retire(&b);
        assert_eq!(node.totals().busy, ms(7), "counted once while it goes");
        drop(b);
        let t = node.totals();
        assert_eq!(t.streams, 1);
        assert_eq!(t.busy, ms(7), "an ended stream's totals stay");
        assert_eq!(t.frames.repeated, 1);
    }
}
