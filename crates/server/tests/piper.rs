//! The built-in voice's engine choice through the real binary: with the Piper voice installed
//! (scripts/piper-voice.sh; scripts/test.sh runs it) `auto` speaks with Piper; a missing or
//! corrupt voice or runtime falls back to eSpeak NG and says why; `LOCAL_TTS_ENGINE=piper`
//! refuses to start without it. These tests fail, never skip, when the voice is missing.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::ws::{collect_until, connect, send_json};
use common::{temp_dir, Server};

fn installed() {
    let dir = talkstream_providers::default_piper_dir().unwrap_or_default();
    let voice = dir.join(talkstream_providers::DEFAULT_PIPER_VOICE);
    assert!(
        voice.is_file(),
        "{} is missing: run ./scripts/piper-voice.sh (scripts/test.sh does)",
        voice.display()
    );
}

fn check(env: &[(&str, &str)]) -> (Output, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_talkstream"));
    cmd.arg("check")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("STT_BASE_URL")
        .env_remove("TTS_PROVIDER")
        .env_remove("ELEVENLABS_API_KEY")
        .env_remove("TTS_BASE_URL")
        .env_remove("PIPER_VOICE")
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("LOCAL_TTS_ENGINE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, text)
}

#[test]
fn auto_speaks_with_the_installed_piper_voice() {
    installed();
    let (out, text) = check(&[]);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("ok    voice: Piper en_US-joe-medium (neural, offline): synthesized"),
        "{text}"
    );
    assert!(!text.contains("note  voice"), "{text}");
}

#[test]
fn a_missing_voice_falls_back_to_espeak_and_says_why() {
    let (out, text) = check(&[("PIPER_VOICE", "/nonexistent/en_US-nobody.onnx")]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ok    voice: built-in (en-us)"), "{text}");
    assert!(
        text.contains(
            "note  voice: the Piper voice is not used: /nonexistent/en_US-nobody.onnx not found"
        ),
        "{text}"
    );
}

#[test]
fn a_corrupt_runtime_or_model_falls_back_to_espeak_and_says_why() {
    installed();
    let dir = temp_dir("piper-corrupt");
    let lib = dir.join("libonnxruntime.so");
    std::fs::write(&lib, b"not a shared library").unwrap();
    let (out, text) = check(&[("ORT_DYLIB_PATH", lib.to_str().unwrap())]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ok    voice: built-in (en-us)"), "{text}");
    assert!(
        text.contains("note  voice: the Piper voice is not used: ONNX Runtime library"),
        "{text}"
    );

    let voice_dir = talkstream_providers::default_piper_dir().unwrap_or_default();
    let model = dir.join("broken.onnx");
    std::fs::write(&model, b"not a model").unwrap();
    std::fs::copy(
        voice_dir.join("en_US-joe-medium.onnx.json"),
        dir.join("broken.onnx.json"),
    )
    .unwrap();
    let (out, text) = check(&[("PIPER_VOICE", model.to_str().unwrap())]);
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("note  voice: the Piper voice is not used: Piper voice model"),
        "{text}"
    );
}

#[test]
fn engine_piper_without_the_voice_is_an_error() {
    let (out, text) = check(&[
        ("LOCAL_TTS_ENGINE", "piper"),
        ("PIPER_VOICE", "/nonexistent/en_US-nobody.onnx"),
    ]);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("FAIL  voice"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_speaks_with_piper() {
    installed();
    let server = Server::start("piper", &[], &[("LOCAL_TTS_ENGINE", "auto")]);
    let (mut ws, hello) = connect(&server).await;
    assert_eq!(hello["tts"], "piper");
    assert_eq!(hello["stream"]["audio_sample_rate"], 22_050);
    let text = "Hello there! I speak with a neural voice now.";
    send_json(&mut ws, serde_json::json!({"type":"prompt","text":text})).await;
    let msgs = collect_until(&mut ws, Duration::from_secs(60), |m| {
        m["type"] == "metrics" || m["type"] == "error"
    })
    .await;
    let spoken: Vec<&str> = msgs
        .iter()
        .filter(|m| m["type"] == "transcript")
        .filter_map(|m| m["text"].as_str())
        .collect();
    let spoken = spoken.join(" ");
    for word in ["Hello", "neural", "voice"] {
        assert!(spoken.contains(word), "{word} not in captions: {spoken}");
    }
    assert!(
        msgs.iter().all(|m| m["type"] != "error"),
        "{msgs:?}\n{}",
        server.log()
    );
    assert!(
        server.log().contains("Piper voice loaded"),
        "{}",
        server.log()
    );
}
