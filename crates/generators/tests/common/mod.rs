//! Helpers shared by the integration tests: the test generator binary, stream format, speech-like
//! audio windows, scratch directories and /proc checks for leftover processes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use talkstream_generators::{StreamFormat, WindowRequest};
use talkstream_media::{AudioWindows, WindowConfig};

pub const BIN: &str = env!("CARGO_BIN_EXE_talkstream-test-generator");

pub const FMT: StreamFormat = StreamFormat {
    width: 256,
    height: 192,
    fps: 25,
};

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let p =
            std::env::temp_dir().join(format!("talkstream-gen-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// A directory for the generator's temp files, and a reference image.
    pub fn setup(&self) -> (PathBuf, PathBuf) {
        let tmp = self.path("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let img = self.path("ref.png");
        std::fs::write(&img, b"not really a png").unwrap();
        (tmp, img)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn dir_entries(p: &Path) -> Vec<String> {
    std::fs::read_dir(p)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Syllable-like bursts of a 180 Hz buzz: `seconds` of 16 kHz speech stand-in.
pub fn speech(seconds: f32) -> Vec<i16> {
    let n = (seconds * 16_000.0) as usize;
    (0..n)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            let env = ((t * 4.0 * std::f32::consts::TAU).sin()).max(0.0);
            let buzz = (t * 180.0 * std::f32::consts::TAU).sin()
                + 0.5 * (t * 360.0 * std::f32::consts::TAU).sin();
            (buzz * env * 9000.0) as i16
        })
        .collect()
}

/// The default 1.8 s / 250 ms windows over `seconds` of speech, flushed at the end.
pub fn windows(seconds: f32, session: &str, img: &Path) -> Vec<WindowRequest> {
    let mut w = AudioWindows::new(WindowConfig::default()).unwrap();
    let mut out: Vec<_> = w.push(&speech(seconds));
    out.extend(w.flush());
    out.iter()
        .map(|aw| WindowRequest::from_window(aw, 16_000, session, img))
        .collect()
}

/// (state, pgid) of a process, from /proc/<pid>/stat.
pub fn proc_stat(pid: u32) -> Option<(char, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let _ppid = f.next()?;
    let pgrp = f.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// Processes of group `pgid` that are not zombies.
pub fn live_group_members(pgid: i32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(d) = std::fs::read_dir("/proc") {
        for e in d.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                if let Some((state, pg)) = proc_stat(pid) {
                    if pg == pgid && state != 'Z' && state != 'X' {
                        out.push(pid);
                    }
                }
            }
        }
    }
    out
}

pub fn pids_in(file: &Path) -> Vec<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Waits up to 3 s for: the leader gone entirely (reaped, no zombie), and no live process left
/// in its group (reparented grandchildren may linger as zombies of init).
pub async fn assert_group_gone(leader: u32, others: &[u32]) {
    let t = Instant::now();
    loop {
        let leader_gone = proc_stat(leader).is_none();
        let members = live_group_members(leader as i32);
        let others_alive: Vec<_> = others
            .iter()
            .filter(|&&p| matches!(proc_stat(p), Some((s, _)) if s != 'Z' && s != 'X'))
            .collect();
        if leader_gone && members.is_empty() && others_alive.is_empty() {
            return;
        }
        if t.elapsed() > Duration::from_secs(3) {
            panic!(
                "leftover processes: leader {leader} {:?}, group members {members:?}, others \
                 alive {others_alive:?}",
                proc_stat(leader)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fails the test (never skips it) when ffmpeg with libx264 is not installed: a test that passes
/// without its tool cannot fail, so it would prove nothing.
pub fn require_ffmpeg_x264() {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .output();
    let ok = match &out {
        Ok(o) => o.status.success() && String::from_utf8_lossy(&o.stdout).contains("libx264"),
        Err(_) => false,
    };
    assert!(
        ok,
        "ffmpeg with libx264 is missing: install ffmpeg (apt-get install ffmpeg) or run \
         scripts/test.sh, which installs it"
    );
}
