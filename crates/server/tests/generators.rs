//! External video generators in the live stream, with real processes: the seed's command
//! contract (`INFINITETALK_BIN`) served by the project's test generator in its normal, slow and
//! crashing modes, and the persistent worker (`talkstream worker`). Whatever the generator does,
//! the stream stays valid and continuous and carries exactly the TTS audio; a late or broken
//! generator is replaced by the built-in renderer and reported once.

mod common;

use std::time::Duration;

use common::{
    decode_audio, expected_tts_audio, ffprobe, ncc, playlist_map, playlist_segments, Server,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("no error");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// Speak one prompt; returns every message up to the turn's metrics.
async fn speak(ws: &mut Ws, text: &str) -> Vec<Value> {
    ws.send(Message::text(
        serde_json::json!({"type":"prompt","text":text}).to_string(),
    ))
    .await
    .unwrap();
    let mut seen = Vec::new();
    loop {
        let v = next_json(ws).await;
        let done = v["type"] == "metrics";
        seen.push(v);
        if done {
            return seen;
        }
    }
}

/// The whole stream so far must be valid, continuous media (checked by ffprobe), and its audio
/// must be the TTS audio of `spoken` (each moment once).
fn check_stream(server: &Server, hello: &Value, spoken: &str) {
    let playlist = hello["playlist"]
        .as_str()
        .unwrap()
        .replace("index.m3u8", "video.m3u8");
    let dir = &playlist[..playlist.rfind('/').unwrap() + 1];
    std::thread::sleep(Duration::from_millis(2500));
    let text = server.get(&playlist).text();
    let mut bytes = server
        .get(&format!("{dir}{}", playlist_map(&text).unwrap()))
        .body;
    for (_, uri) in playlist_segments(&text) {
        bytes.extend_from_slice(&server.get(&format!("{dir}{uri}")).body);
    }
    let work = common::temp_dir("gen-probe");
    let file = work.join("s.mp4");
    std::fs::write(&file, &bytes).unwrap();
    let out = ffprobe(&[
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "packet=pts_time",
        "-of",
        "csv=p=0",
        file.to_str().unwrap(),
    ]);
    let mut pts: Vec<f64> = out
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    pts.sort_by(|a, b| a.total_cmp(b));
    assert!(pts.len() > 50, "{} video frames", pts.len());
    for w in pts.windows(2) {
        assert!(
            ((w[1] - w[0]) - 0.04).abs() < 1e-3,
            "video gap between {} and {}",
            w[0],
            w[1]
        );
    }
    let rate = hello["stream"]["audio_sample_rate"].as_u64().unwrap() as u32;
    let published = decode_audio(&file, rate);
    let (tts, _) = expected_tts_audio(spoken);
    let probe = &tts[..tts.len().min(rate as usize)];
    let (best_off, best) = (0..published.len().saturating_sub(probe.len()))
        .step_by(3)
        .map(|o| (o, ncc(&published, probe, o)))
        .fold((0, f64::MIN), |a, b| if b.1 > a.1 { b } else { a });
    // Refine around the coarse peak, then compare the whole answer.
    let (off, _) = (best_off.saturating_sub(3)..best_off + 3)
        .map(|o| (o, ncc(&published, probe, o)))
        .fold((0, f64::MIN), |a, b| if b.1 > a.1 { b } else { a });
    let whole = ncc(&published, &tts, off);
    assert!(
        best > 0.9 && whole > 0.9,
        "published audio is not the TTS audio (first second r = {best:.3}, whole r = {whole:.3})"
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// True when no process of the test generator runs in `mode` (read from each process's
/// environment, so tests running side by side in other modes do not interfere).
fn no_generator_processes(mode: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    let marker = format!("TALKSTREAM_FAKE_MODE={mode}");
    !entries.flatten().any(|e| {
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        String::from_utf8_lossy(&cmd).contains("talkstream-test-generator")
            && env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes())
    })
}

const EXEC_TEXT: &str =
    "Hello there. This answer is drawn by an external generator, window by window.";

async fn run_exec(mode: &str, extra: &[(&str, &str)]) -> (Server, Value, Vec<Value>) {
    let gen = common::test_generator();
    let image = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../avatar/tests/fixtures/face128.jpg"
    );
    let mut env = vec![
        ("VIDEO_GENERATOR", "exec"),
        ("INFINITETALK_BIN", gen.to_str().unwrap()),
        ("AVATAR_REF_IMAGE", image),
        ("TALKSTREAM_FAKE_MODE", mode),
    ];
    env.extend_from_slice(extra);
    let server = Server::start(&format!("gen-{mode}"), &[], &env);
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["video_generator"], "exec");
    assert!(hello.get("generator_note").is_none(), "{hello}");
    let msgs = speak(
        &mut ws,
        "Hello there. This answer is drawn by an external generator, window by window.",
    )
    .await;
    (server, hello, msgs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_generator_frames_join_the_stream() {
    let (server, hello, msgs) = run_exec("ok", &[("GENERATOR_BUFFER_MS", "4000")]).await;
    let m = msgs.last().unwrap();
    assert!(
        m["generator_windows"].as_u64().unwrap() >= 2,
        "windows from the generator: {m}"
    );
    assert!(!msgs.iter().any(|v| v["type"] == "error"), "{msgs:#?}");
    check_stream(&server, &hello, EXEC_TEXT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_generator_is_replaced_and_killed() {
    let (server, hello, msgs) = run_exec(
        "sleep",
        &[
            ("GENERATOR_TIMEOUT_MS", "20000"),
            ("TALKSTREAM_FAKE_SLEEP_MS", "30000"),
        ],
    )
    .await;
    let m = msgs.last().unwrap();
    assert_eq!(m["generator_windows"], 0, "{m}");
    assert!(m["builtin_windows"].as_u64().unwrap() >= 2, "{m}");
    let errors: Vec<&Value> = msgs.iter().filter(|v| v["type"] == "error").collect();
    assert_eq!(
        errors.len(),
        1,
        "reported once, not once per window: {errors:#?}"
    );
    assert_eq!(errors[0]["code"], "generator_failed");
    check_stream(&server, &hello, EXEC_TEXT);
    // Late windows are cancelled at their deadline: no generator process is left.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !no_generator_processes("sleep") {
        assert!(
            std::time::Instant::now() < deadline,
            "generator processes left behind"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_generator_is_replaced_and_the_session_goes_on() {
    let (server, hello, msgs) = run_exec("crash", &[("GENERATOR_BUFFER_MS", "2000")]).await;
    let m = msgs.last().unwrap();
    assert_eq!(m["generator_windows"], 0, "{m}");
    let errors: Vec<&Value> = msgs.iter().filter(|v| v["type"] == "error").collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("exit code 3"),
        "{}",
        errors[0]
    );
    check_stream(&server, &hello, EXEC_TEXT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_generator_serves_the_builtin_renderer() {
    let server = Server::start(
        "gen-worker",
        &[],
        &[
            ("VIDEO_GENERATOR", "worker"),
            ("GENERATOR_BUFFER_MS", "3000"),
        ],
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["video_generator"], "worker");
    let text = "The worker keeps its state between windows.";
    let msgs = speak(&mut ws, text).await;
    let m = msgs.last().unwrap();
    assert!(m["generator_windows"].as_u64().unwrap() >= 1, "{m}");
    check_stream(&server, &hello, text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_generator_is_reported_in_hello() {
    let server = Server::start(
        "gen-missing",
        &[],
        &[
            ("VIDEO_GENERATOR", "exec"),
            ("INFINITETALK_BIN", "/nonexistent/infinitetalk"),
            ("AVATAR_REF_IMAGE", "/nonexistent/ref.png"),
        ],
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let hello = next_json(&mut ws).await;
    let note = hello["generator_note"].as_str().expect("a generator note");
    assert!(note.contains("/nonexistent/"), "{note}");
    // The session still speaks with the built-in renderer.
    let msgs = speak(&mut ws, "Still here.").await;
    assert_eq!(msgs.last().unwrap()["interrupted"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talkstream_render_speaks_the_command_contract() {
    // `talkstream render` accepts exactly the seed's flags; a two-line wrapper makes it an
    // INFINITETALK_BIN.
    let dir = common::temp_dir("render-contract");
    let wrapper = dir.join("infinitetalk");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec '{}' render --width 256 --height 256 \"$@\"\n",
            env!("CARGO_BIN_EXE_talkstream")
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()
        .unwrap();
    let image = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../avatar/tests/fixtures/face128.jpg"
    );
    let server = Server::start(
        "gen-render",
        &[],
        &[
            ("VIDEO_GENERATOR", "exec"),
            ("INFINITETALK_BIN", wrapper.to_str().unwrap()),
            ("AVATAR_REF_IMAGE", image),
            ("GENERATOR_BUFFER_MS", "3000"),
        ],
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let hello = next_json(&mut ws).await;
    assert!(hello.get("generator_note").is_none(), "{hello}");
    let text = "Rendered by talkstream itself, through the command contract.";
    let msgs = speak(&mut ws, text).await;
    let m = msgs.last().unwrap();
    assert!(m["generator_windows"].as_u64().unwrap() >= 1, "{m}");
    check_stream(&server, &hello, text);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_and_garbage_generators_are_replaced() {
    for mode in ["hang", "garbage"] {
        let (server, hello, msgs) = run_exec(mode, &[("GENERATOR_BUFFER_MS", "1000")]).await;
        let m = msgs.last().unwrap();
        assert_eq!(m["generator_windows"], 0, "{mode}: {m}");
        let errors: Vec<&Value> = msgs.iter().filter(|v| v["type"] == "error").collect();
        assert_eq!(errors.len(), 1, "{mode}: {errors:#?}");
        check_stream(&server, &hello, EXEC_TEXT);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !no_generator_processes(mode) {
            assert!(
                std::time::Instant::now() < deadline,
                "{mode}: generator processes left behind"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
