//! The session core with microphone input, in virtual time: utterances become transcriptions,
//! transcripts become answers, voice interrupts the avatar, and what cannot be used is refused.

use std::time::Instant;

use super::tests::{at, config, sent, started};
use super::*;
use crate::pipeline::HeardOutcome;
use crate::session::test_speech::{bytes, said};

fn mic_start(mode: &str, playback: &str) -> String {
    serde_json::json!({"type": "mic", "action": "start", "mode": mode, "playback": playback})
        .to_string()
}

/// Send `pcm` in real time (32 ms frames) from `from_ms`; all actions.
fn speak(core: &mut SessionCore, t0: Instant, from_ms: u64, pcm: &[i16]) -> Vec<Action> {
    pcm.chunks(512)
        .enumerate()
        .flat_map(|(i, frame)| core.on_binary(&bytes(frame), at(t0, from_ms + i as u64 * 32)))
        .collect()
}

fn transcribe_requests(actions: &[Action]) -> Vec<(u64, usize)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Transcribe { utterance, audio } => Some((*utterance, audio.len())),
            _ => None,
        })
        .collect()
}

fn heard(utterance: u64, text: &str) -> Event {
    Event::Heard {
        utterance,
        outcome: HeardOutcome::Text(text.into()),
    }
}

#[test]
fn an_utterance_is_transcribed_and_its_words_are_answered() {
    let (mut core, t0) = started(false);
    assert!(core
        .on_text(&mic_start("hands_free", "webrtc"), at(t0, 0))
        .is_empty());
    let out = speak(&mut core, t0, 0, &said("What time is it?", 600, 900));
    let msgs = sent(&out);
    assert_eq!(msgs[0]["type"], "user_speech");
    assert_eq!(msgs[0]["state"], "started");
    assert_eq!(msgs[1]["state"], "stopped");
    assert!(msgs[1]["duration_ms"].as_u64().unwrap() > 600);
    let asked = transcribe_requests(&out);
    assert_eq!(asked.len(), 1);
    let done = core.on_event(heard(asked[0].0, " What time is it? "), at(t0, 5000));
    let msgs = sent(&done);
    assert_eq!(msgs[0]["type"], "user_transcript");
    assert_eq!(msgs[0]["text"], "What time is it?");
    assert_eq!(msgs[0]["turn"], 1);
    assert!(done.contains(&Action::StartTurn {
        turn: 1,
        text: TurnText::Direct("What time is it?".into()),
    }));
    // The recognizer's time is in the turn's metrics.
    let end = core.on_event(
        Event::TurnComplete {
            turn: 1,
            at: at(t0, 7000),
            interrupted: false,
            spoken: "What time is it?".into(),
            windows: None,
        },
        at(t0, 7000),
    );
    let metrics = sent(&end)
        .into_iter()
        .find(|m| m["type"] == "metrics")
        .unwrap();
    assert!(metrics["stt_ms"].as_f64().unwrap() > 1000.0, "{metrics}");
}

#[test]
fn with_a_language_model_the_transcript_goes_into_memory() {
    let (mut core, t0) = started(true);
    core.on_text(&mic_start("push_to_talk", "webrtc"), at(t0, 0));
    speak(&mut core, t0, 0, &said("Tell me a joke.", 200, 200));
    let out = core.on_text(r#"{"type":"mic","action":"stop"}"#, at(t0, 2500));
    let (utterance, _) = transcribe_requests(&out)[0];
    let answer = core.on_event(heard(utterance, "Tell me a joke."), at(t0, 3000));
    let Some(Action::StartTurn {
        text: TurnText::Llm(messages),
        ..
    }) = answer
        .iter()
        .find(|a| matches!(a, Action::StartTurn { .. }))
    else {
        panic!("an answer: {answer:?}");
    };
    assert_eq!(
        messages.last().map(|m| m.content.as_str()),
        Some("Tell me a joke.")
    );
}

#[test]
fn voice_over_the_answer_interrupts_it_and_becomes_the_next_prompt() {
    let (mut core, t0) = started(false);
    core.on_text(&prompt_json("A long answer."), at(t0, 0));
    core.on_text(&mic_start("hands_free", "webrtc"), at(t0, 10));
    let out = speak(
        &mut core,
        t0,
        100,
        &said("Stop, stop, I have another question.", 300, 900),
    );
    let cancel = out
        .iter()
        .position(|a| *a == Action::CancelTurn { turn: 1 });
    assert!(cancel.is_some(), "barge-in by voice: {out:?}");
    let msgs = sent(&out);
    assert!(msgs.iter().any(|m| m["note"] == "interrupted"));
    let (utterance, _) = transcribe_requests(&out)[0];
    let next = core.on_event(
        heard(utterance, "Stop, I have another question."),
        at(t0, 4000),
    );
    assert!(next
        .iter()
        .any(|a| matches!(a, Action::StartTurn { turn: 2, .. })));
}

fn prompt_json(text: &str) -> String {
    serde_json::json!({"type": "prompt", "text": text}).to_string()
}

#[test]
fn push_to_talk_interrupts_at_once() {
    let (mut core, t0) = started(false);
    core.on_text(&prompt_json("Talking."), at(t0, 0));
    let out = core.on_text(&mic_start("push_to_talk", "hls"), at(t0, 100));
    assert_eq!(out[0], Action::CancelTurn { turn: 1 });
    assert_eq!(sent(&out)[0]["note"], "interrupted");
}

#[test]
fn recognizer_failures_and_silence_are_errors_and_the_session_goes_on() {
    let (mut core, t0) = started(false);
    core.on_text(&mic_start("hands_free", "webrtc"), at(t0, 0));
    let out = speak(&mut core, t0, 0, &said("Hello there.", 500, 900));
    let (first, _) = transcribe_requests(&out)[0];
    let failed = core.on_event(
        Event::Heard {
            utterance: first,
            outcome: HeardOutcome::Failed("HTTP 500: model crashed".into()),
        },
        at(t0, 4000),
    );
    let msg = &sent(&failed)[0];
    assert_eq!(msg["code"], "stt_failed");
    assert!(msg["message"].as_str().unwrap().contains("model crashed"));
    let out = speak(&mut core, t0, 5000, &said("Hello again.", 500, 900));
    let (second, _) = transcribe_requests(&out)[0];
    assert_ne!(first, second);
    assert_eq!(
        sent(&core.on_event(heard(second, "  "), at(t0, 9000)))[0]["code"],
        "nothing_heard"
    );
    // A late answer for an utterance already answered is ignored.
    assert!(core
        .on_event(heard(second, "again"), at(t0, 9100))
        .is_empty());
}

#[test]
fn the_microphone_is_refused_without_a_recognizer_or_a_stream() {
    let t0 = Instant::now();
    let mut cfg = config(false);
    cfg.stt = Err("set STT_BASE_URL");
    let mut core = SessionCore::new(cfg, tracing::Span::none(), t0);
    core.start();
    core.stream_started();
    let msg = &sent(&core.on_text(&mic_start("hands_free", "webrtc"), at(t0, 0)))[0];
    assert_eq!(msg["code"], "stt_not_configured");
    assert_eq!(msg["message"], "set STT_BASE_URL");
    assert_eq!(
        sent(&core.on_binary(&[0, 0], at(t0, 1)))[0]["code"],
        "bad_audio"
    );

    let (mut core, t0) = started(false);
    core.on_text(r#"{"type":"control","action":"stop"}"#, at(t0, 0));
    let msg = &sent(&core.on_text(&mic_start("hands_free", "webrtc"), at(t0, 10)))[0];
    assert_eq!(msg["code"], "not_streaming");
}

#[test]
fn bad_audio_is_reported_once_a_second_and_listening_goes_on() {
    let (mut core, t0) = started(false);
    core.on_text(&mic_start("hands_free", "webrtc"), at(t0, 0));
    let first = sent(&core.on_binary(&[1, 2, 3], at(t0, 0)));
    assert_eq!(first[0]["code"], "bad_audio");
    assert!(first[0]["message"].as_str().unwrap().contains("3 bytes"));
    assert!(
        core.on_binary(&[1], at(t0, 500)).is_empty(),
        "one notice a second"
    );
    // Too fast: rate_limited with a retry time.
    let mut codes = Vec::new();
    for i in 0..5 {
        for m in sent(&core.on_binary(&vec![0; 16_000], at(t0, 1500 + i))) {
            codes.push(m["code"].clone());
        }
    }
    assert_eq!(codes, vec!["rate_limited"]);
    // Speech afterwards is still heard.
    let out = speak(&mut core, t0, 10_000, &said("Are you there?", 500, 900));
    assert_eq!(transcribe_requests(&out).len(), 1);
}

#[test]
fn closing_the_session_forgets_utterances_being_transcribed() {
    let (mut core, t0) = started(false);
    core.on_text(&mic_start("hands_free", "webrtc"), at(t0, 0));
    let out = speak(&mut core, t0, 0, &said("One more thing.", 500, 900));
    let (utterance, _) = transcribe_requests(&out)[0];
    core.close();
    assert!(core
        .on_event(heard(utterance, "One more thing."), at(t0, 5000))
        .is_empty());
}

#[test]
fn an_interruption_that_was_the_avatars_own_echo_is_not_answered() {
    let (mut core, t0) = started(false);
    core.on_text(&prompt_json("A robot walks into a bar."), at(t0, 0));
    core.on_event(
        Event::Transcript {
            turn: 1,
            text: "A robot walks into a bar and orders a drink.".into(),
            start_ms: 0,
            end_ms: 3000,
            start_pdt_ms: 0,
            end_pdt_ms: 3000,
        },
        at(t0, 50),
    );
    core.on_text(&mic_start("hands_free", "webrtc"), at(t0, 60));
    let out = speak(
        &mut core,
        t0,
        100,
        &said("A robot walks into a bar and orders a drink.", 300, 900),
    );
    assert!(
        out.contains(&Action::CancelTurn { turn: 1 }),
        "the burst interrupted"
    );
    let (utterance, _) = transcribe_requests(&out)[0];
    let answer = core.on_event(
        heard(utterance, "a robot walks into a bar and orders"),
        at(t0, 6000),
    );
    assert!(
        !answer.iter().any(|a| matches!(a, Action::StartTurn { .. })),
        "{answer:?}"
    );
    let msg = &sent(&answer)[0];
    assert_eq!(msg["code"], "nothing_heard");
    assert!(msg["message"].as_str().unwrap().contains("own voice"));
}
