//! The exec contract with real processes: the test generator (seed flags), timeouts and
//! cancellation killing whole process groups, crash/garbage/missing output/missing binary
//! errors, and temp files removed in every case.

mod common;

use std::time::{Duration, Instant};

use common::*;
use talkstream_generators::{
    CancellationToken, ExecConfig, ExecGenerator, GeneratorError, GeneratorKind, VideoGenerator,
};

fn generator(tmp: &std::path::Path, env: &[(&str, &str)], timeout: Duration) -> ExecGenerator {
    let mut cfg = ExecConfig::new(BIN);
    cfg.env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    cfg.timeout = timeout;
    cfg.temp_dir = Some(tmp.to_path_buf());
    ExecGenerator::new(cfg, FMT).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_end_to_end_frames_match_the_windows() {
    let s = Scratch::new("exec-e2e");
    let (tmp, img) = s.setup();
    let g = generator(&tmp, &[], Duration::from_secs(30));
    assert_eq!(g.preflight(&img).unwrap(), std::path::PathBuf::from(BIN));
    let reqs = windows(4.0, "sess", &img);
    assert_eq!(reqs.len(), 3);
    let mut next = 0;
    for req in reqs {
        let (first, end) = req.frame_range(25);
        let w = g.generate(req, CancellationToken::new()).await.unwrap();
        assert_eq!(w.source, GeneratorKind::Exec);
        assert_eq!(w.first_frame, first);
        assert_eq!(first, next, "windows tile the stream");
        assert_eq!(w.frames.len() as u64, end - first);
        assert!(w
            .frames
            .iter()
            .all(|f| (f.width, f.height) == (256, 192) && f.planes_consistent()));
        next = end;
        assert!(dir_entries(&tmp).is_empty(), "temp files removed");
    }
    assert_eq!(next, 100, "4 s at 25 fps");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_size_rate_and_length_are_fitted() {
    let s = Scratch::new("exec-fit");
    let (tmp, img) = s.setup();
    let env = [
        ("TALKSTREAM_FAKE_SIZE", "320x240"),
        ("TALKSTREAM_FAKE_FPS", "30"),
        ("TALKSTREAM_FAKE_FRAMES_DELTA", "-15"),
    ];
    let g = generator(&tmp, &env, Duration::from_secs(30));
    for req in windows(3.4, "s", &img) {
        let (first, end) = req.frame_range(25);
        let w = g.generate(req, CancellationToken::new()).await.unwrap();
        assert_eq!(w.frames.len() as u64, end - first);
        assert!(w.frames.iter().all(|f| (f.width, f.height) == (256, 192)));
        // Padded: the last frames repeat.
        let n = w.frames.len();
        if n >= 2 {
            assert_eq!(w.frames[n - 1], w.frames[n - 2]);
        }
    }
    assert!(dir_entries(&tmp).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_the_whole_process_group() {
    let s = Scratch::new("exec-timeout");
    let (tmp, img) = s.setup();
    let pid_file = s.path("pids");
    let pid_file_str = pid_file.to_string_lossy().into_owned();
    let env = [
        ("TALKSTREAM_FAKE_MODE", "hang"),
        ("TALKSTREAM_FAKE_PID_FILE", pid_file_str.as_str()),
    ];
    let g = generator(&tmp, &env, Duration::from_millis(800));
    let req = windows(1.0, "s", &img).remove(0);
    let t = Instant::now();
    let err = g.generate(req, CancellationToken::new()).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    match &err {
        GeneratorError::Timeout { stderr, .. } => {
            assert!(stderr.contains("hanging with a grandchild"), "{err}")
        }
        other => panic!("expected a timeout, got {other}"),
    }
    let pids = pids_in(&pid_file);
    assert_eq!(pids.len(), 2, "generator and its grandchild: {pids:?}");
    assert_group_gone(pids[0], &pids[1..]).await;
    assert!(dir_entries(&tmp).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_deadline_and_cancel_and_drop_stop_the_generator() {
    let s = Scratch::new("exec-deadline");
    let (tmp, img) = s.setup();
    let pid_file = s.path("pids");
    let pid_file_str = pid_file.to_string_lossy().into_owned();
    // Sleeps past its deadline: the request's deadline (0.5 s) beats the 30 s timeout.
    let env = [
        ("TALKSTREAM_FAKE_MODE", "sleep"),
        ("TALKSTREAM_FAKE_SLEEP_MS", "20000"),
        ("TALKSTREAM_FAKE_PID_FILE", pid_file_str.as_str()),
    ];
    let g = generator(&tmp, &env, Duration::from_secs(30));
    let mut req = windows(1.0, "s", &img).remove(0);
    req.deadline = Some(Instant::now() + Duration::from_millis(500));
    let t = Instant::now();
    let err = g.generate(req.clone(), CancellationToken::new()).await;
    assert!(
        matches!(err, Err(GeneratorError::Timeout { .. })),
        "{err:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(3));
    let pid = pids_in(&pid_file)[0];
    assert_group_gone(pid, &[]).await;

    // Cancelled from outside.
    req.deadline = None;
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c2.cancel();
    });
    let t = Instant::now();
    let err = g.generate(req.clone(), cancel).await;
    assert!(
        matches!(err, Err(GeneratorError::Cancelled { .. })),
        "{err:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(3));
    let pid = pids_in(&pid_file)[1];
    assert_group_gone(pid, &[]).await;

    // The future dropped mid-run (e.g. the session ended).
    let dropped = tokio::time::timeout(
        Duration::from_millis(300),
        g.generate(req, CancellationToken::new()),
    )
    .await;
    assert!(dropped.is_err());
    let pid = pids_in(&pid_file)[2];
    assert_group_gone(pid, &[]).await;
    assert!(dir_entries(&tmp).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_garbage_and_missing_output_are_clear_errors() {
    let s = Scratch::new("exec-errors");
    let (tmp, img) = s.setup();
    let req = windows(1.0, "s", &img).remove(0);

    let g = generator(
        &tmp,
        &[("TALKSTREAM_FAKE_MODE", "crash")],
        Duration::from_secs(30),
    );
    let err = g
        .generate(req.clone(), CancellationToken::new())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, GeneratorError::Exit { .. }), "{msg}");
    assert!(
        msg.contains("exit code 3") && msg.contains("crashing as asked"),
        "{msg}"
    );

    let g = generator(
        &tmp,
        &[("TALKSTREAM_FAKE_MODE", "garbage")],
        Duration::from_secs(30),
    );
    let err = g
        .generate(req.clone(), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, GeneratorError::BadOutput { .. }), "{err}");
    assert!(err.to_string().contains("MP4"), "{err}");

    let g = generator(
        &tmp,
        &[("TALKSTREAM_FAKE_MODE", "nothing")],
        Duration::from_secs(30),
    );
    let err = g
        .generate(req.clone(), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("did not write"), "{err}");

    // Bad usage of the contract is reported by the generator itself (exit 2).
    let mut bad = req.clone();
    bad.ref_image = s.path("missing.png");
    let g = generator(&tmp, &[], Duration::from_secs(30));
    let err = g.generate(bad, CancellationToken::new()).await.unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");

    assert!(dir_entries(&tmp).is_empty(), "{:?}", dir_entries(&tmp));
}

#[tokio::test]
async fn missing_binary_is_a_clear_error() {
    let s = Scratch::new("exec-missing");
    let (tmp, img) = s.setup();
    let mut cfg = ExecConfig::new(s.path("no-such-infinitetalk"));
    cfg.temp_dir = Some(tmp.clone());
    let g = ExecGenerator::new(cfg, FMT).unwrap();
    let err = g.preflight(&img).unwrap_err();
    assert!(err.to_string().contains("no-such-infinitetalk"), "{err}");
    let req = windows(1.0, "s", &img).remove(0);
    let err = g.generate(req, CancellationToken::new()).await.unwrap_err();
    match &err {
        GeneratorError::Spawn { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
        }
        other => panic!("expected a spawn error, got {other}"),
    }
    assert!(dir_entries(&tmp).is_empty());
    let bare = ExecGenerator::new(ExecConfig::new("no-such-infinitetalk-on-path"), FMT).unwrap();
    assert!(bare
        .preflight(&img)
        .unwrap_err()
        .to_string()
        .contains("PATH"));
}

/// A generator written as a shell script around ffmpeg/libx264 (High profile, B-frames), as a
/// Python wrapper around the real model would likely be: the demuxer and decoder must handle it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_x264_output_is_decoded() {
    require_ffmpeg_x264();
    let s = Scratch::new("exec-ffmpeg");
    let (tmp, img) = s.setup();
    let script = s.path("fake-infinitetalk.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n\
         while [ $# -gt 0 ]; do case \"$1\" in\n\
           --output_video) out=\"$2\"; shift 2;;\n\
           --duration_ms) ms=\"$2\"; shift 2;;\n\
           --no_audio) shift;;\n\
           *) shift 2;;\n\
         esac; done\n\
         exec ffmpeg -v error -y -f lavfi -i testsrc2=size=320x240:rate=25 \
           -t \"$(echo \"$ms\" | awk '{print $1/1000}')\" -c:v libx264 -profile:v high -bf 2 \
           -pix_fmt yuv420p \"$out\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cfg = ExecConfig::new(&script);
    cfg.temp_dir = Some(tmp.clone());
    let g = ExecGenerator::new(cfg, FMT).unwrap();
    for req in windows(3.0, "s", &img) {
        let (first, end) = req.frame_range(25);
        let w = g.generate(req, CancellationToken::new()).await.unwrap();
        assert_eq!(w.frames.len() as u64, end - first);
        // testsrc2 moves every frame: consecutive frames differ (decoded, not padded).
        assert_ne!(w.frames[0], w.frames[1]);
    }
    assert!(dir_entries(&tmp).is_empty());
}

/// The demuxer + OpenH264 give the same pictures, in presentation order, as ffmpeg's own
/// decoder for a High-profile stream with B-frames: I/P pictures bit-exact, B pictures within
/// rounding.
#[test]
fn decoding_matches_ffmpeg_bit_for_bit_with_b_frames() {
    require_ffmpeg_x264();
    let s = Scratch::new("decode-vs-ffmpeg");
    let mp4 = s.path("t.mp4");
    let yuv = s.path("t.yuv");
    let made = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=25")
        .args([
            "-t",
            "1.2",
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
            "-bf",
            "3",
        ])
        .args(["-pix_fmt", "yuv420p"])
        .arg(&mp4)
        .status()
        .unwrap()
        .success();
    assert!(made, "ffmpeg could not encode the test clip");
    let ok = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&mp4)
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p"])
        .arg(&yuv)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let file = std::fs::read(&mp4).unwrap();
    let raw = talkstream_generators::decode::decode_mp4(&file).unwrap();
    let reference = std::fs::read(&yuv).unwrap();
    let size = talkstream_generators::protocol::i420_len(320, 240);
    assert_eq!(raw.frames.len(), reference.len() / size);
    assert_eq!(raw.frames.len(), 30);
    let mut exact = 0;
    for (i, (f, r)) in raw
        .frames
        .iter()
        .zip(reference.chunks_exact(size))
        .enumerate()
    {
        let b = talkstream_generators::protocol::i420_bytes(f);
        let sad: u64 = b
            .iter()
            .zip(r)
            .map(|(x, y)| u64::from(x.abs_diff(*y)))
            .sum();
        let max = b
            .iter()
            .zip(r)
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0);
        // OpenH264's B-slice bi-prediction rounds a few samples differently (by 1-2 levels).
        assert!(
            max <= 4 && (sad as f64 / size as f64) < 0.05,
            "frame {i}: mean abs diff {}, max {max}: not the same picture",
            sad as f64 / size as f64
        );
        exact += usize::from(sad == 0);
        assert_eq!(raw.times_us[i], i as u64 * 40_000);
    }
    assert!(exact >= 20, "only {exact} of 30 frames bit-exact");
}
