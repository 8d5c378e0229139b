//! The session core driven in virtual time: no server, no socket, no sleeping.

use std::time::{Duration, Instant};

use super::turns::SHOWN_TURNS_KEPT;
use super::*;

pub(super) fn config(llm: bool) -> CoreConfig {
    CoreConfig {
        max_prompt_chars: 50,
        llm,
        system_prompt: "be brief".into(),
        history_chars: 1000,
        limits: LimitSettings {
            messages_per_second: 10,
            message_burst: 10,
            prompts_per_minute: 5,
            llm_turns_per_hour: 100,
            tts_chars_per_hour: 1000,
        },
        mic: MicSettings {
            vad: talkstream_providers::vad::VadSettings::default(),
            barge_in_ms: 400,
            echo_tail_ms: 2500,
        },
        stt: Ok(()),
        portraits: crate::config::PortraitUploads::Session,
        portrait_max_bytes: 64 << 10,
    }
}

/// A started session and its virtual clock.
pub(super) fn started(llm: bool) -> (SessionCore, Instant) {
    let t0 = Instant::now();
    let mut core = SessionCore::new(config(llm), tracing::Span::none(), t0);
    assert_eq!(core.start(), vec![Action::StartStream]);
    assert_eq!(
        core.stream_started(),
        vec![Action::Send(status(Stage::Idle, None))]
    );
    (core, t0)
}

pub(super) fn at(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

pub(super) fn sent(actions: &[Action]) -> Vec<serde_json::Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(m) => serde_json::from_str(&m.to_json()).ok(),
            _ => None,
        })
        .collect()
}

fn prompt(text: &str) -> String {
    serde_json::json!({"type": "prompt", "text": text}).to_string()
}

fn complete(turn: u64, at: Instant, interrupted: bool, spoken: &str) -> Event {
    Event::TurnComplete {
        turn,
        at,
        interrupted,
        spoken: spoken.into(),
        windows: None,
    }
}

#[test]
fn a_prompt_starts_a_turn_and_its_events_become_status_metrics_and_idle() {
    let (mut core, t0) = started(false);
    let out = core.on_text(&prompt("  Hello there.  "), at(t0, 1000));
    assert_eq!(
        out[0],
        Action::StartTurn {
            turn: 1,
            text: TurnText::Direct("Hello there.".into())
        }
    );
    assert_eq!(sent(&out)[0]["stage"], "thinking");

    assert!(core
        .on_event(
            Event::FirstAudio {
                turn: 1,
                at: at(t0, 1020)
            },
            at(t0, 1020)
        )
        .is_empty());
    let speaking = core.on_event(
        Event::FirstSpeakingSegment {
            turn: 1,
            at: at(t0, 1080),
        },
        at(t0, 1080),
    );
    assert_eq!(sent(&speaking)[0]["stage"], "speaking");
    let done = sent(&core.on_event(
        complete(1, at(t0, 3000), false, "Hello there."),
        at(t0, 3000),
    ));
    assert_eq!(done[0]["type"], "metrics");
    assert_eq!(done[0]["first_audio_ms"], 20.0);
    assert_eq!(done[0]["first_segment_ms"], 80.0);
    assert_eq!(done[0]["complete_ms"], 2000.0);
    assert_eq!(done[1]["stage"], "complete");
    assert_eq!(done[2]["stage"], "idle");
}

#[test]
fn barge_in_cancels_the_old_turn_before_starting_the_new_one() {
    let (mut core, t0) = started(false);
    core.on_text(&prompt("First answer."), at(t0, 0));
    let out = core.on_text(&prompt("Second."), at(t0, 500));
    assert_eq!(out[0], Action::CancelTurn { turn: 1 });
    assert!(matches!(out[1], Action::StartTurn { turn: 2, .. }));
    // The old turn's late report neither ends the new one nor says "idle".
    let late = sent(&core.on_event(complete(1, at(t0, 600), true, "First"), at(t0, 600)));
    assert_eq!(late.len(), 1, "{late:?}");
    assert_eq!(late[0]["interrupted"], true);
    // Its late speaking report does not say "speaking" for the new turn either.
    assert!(core
        .on_event(
            Event::FirstSpeakingSegment {
                turn: 1,
                at: at(t0, 650)
            },
            at(t0, 650)
        )
        .is_empty());
}

#[test]
fn interrupt_stop_and_start() {
    let (mut core, t0) = started(false);
    let nothing = sent(&core.on_text(r#"{"type":"control","action":"interrupt"}"#, at(t0, 0)));
    assert_eq!(nothing[0]["note"], "nothing to interrupt");
    core.on_text(&prompt("Talk."), at(t0, 10));
    let out = core.on_text(r#"{"type":"control","action":"interrupt"}"#, at(t0, 20));
    assert_eq!(out[0], Action::CancelTurn { turn: 1 });
    assert_eq!(sent(&out)[0]["note"], "interrupted");

    core.on_text(&prompt("Again."), at(t0, 30));
    let stop = core.on_text(r#"{"type":"control","action":"stop"}"#, at(t0, 40));
    assert_eq!(stop[0], Action::CancelTurn { turn: 2 });
    assert_eq!(stop[1], Action::StopStream);
    assert_eq!(sent(&stop)[0]["stage"], "complete");
    // No stream, no prompts.
    let refused = sent(&core.on_text(&prompt("Hello?"), at(t0, 50)));
    assert_eq!(refused[0]["code"], "not_streaming");
    assert_eq!(
        core.on_text(r#"{"type":"control","action":"start"}"#, at(t0, 60)),
        vec![Action::StartStream]
    );
    core.stream_started();
    let again = sent(&core.on_text(r#"{"type":"control","action":"start"}"#, at(t0, 70)));
    assert_eq!(again[0]["note"], "already streaming");
}

#[test]
fn bad_messages_get_errors_and_the_session_goes_on() {
    let (mut core, t0) = started(false);
    for (text, code) in [
        ("not json", "bad_message"),
        (r#"{"type":"dance"}"#, "bad_message"),
        (&prompt("   ") as &str, "empty_prompt"),
        (&prompt(&"x".repeat(51)), "prompt_too_long"),
    ] {
        let out = sent(&core.on_text(text, at(t0, 0)));
        assert_eq!(out[0]["code"], code, "{text}");
    }
    assert_eq!(
        sent(&core.on_binary(&[0, 0], at(t0, 0)))[0]["code"],
        "bad_audio"
    );
    assert!(matches!(
        core.on_text(&prompt("Still here."), at(t0, 0))[0],
        Action::StartTurn { turn: 1, .. }
    ));
}

#[test]
fn a_flood_is_dropped_with_one_notice_a_second() {
    let (mut core, t0) = started(false);
    let mut notices = 0;
    let mut started_turns = 0;
    for _ in 0..2000 {
        for a in core.on_text(&prompt("Spam."), at(t0, 0)) {
            match a {
                Action::StartTurn { .. } => started_turns += 1,
                Action::Send(ServerMessage::Error {
                    code: ErrorCode::RateLimited,
                    message,
                    retry_after_ms,
                }) if message.contains("MESSAGES_PER_SECOND") => {
                    assert!(retry_after_ms.is_some());
                    notices += 1;
                }
                _ => {}
            }
        }
    }
    assert_eq!(started_turns, 5, "PROMPTS_PER_MINUTE");
    assert_eq!(notices, 1, "one notice for the flood in the same second");
    // A second later: another notice at most, and messages get through again.
    let later = core.on_text(r#"{"type":"control","action":"interrupt"}"#, at(t0, 1500));
    assert_eq!(sent(&later)[0]["type"], "status");
}

#[test]
fn language_model_turns_carry_memory_of_what_was_spoken() {
    let (mut core, t0) = started(true);
    let out = core.on_text(&prompt("What is up?"), at(t0, 0));
    let Action::StartTurn {
        text: TurnText::Llm(messages),
        ..
    } = &out[0]
    else {
        panic!("{out:?}");
    };
    assert_eq!(messages.len(), 2, "system + user");
    core.on_event(complete(1, at(t0, 100), true, "Not"), at(t0, 100));
    let out = core.on_text(&prompt("And now?"), at(t0, 200));
    let Action::StartTurn {
        text: TurnText::Llm(messages),
        ..
    } = &out[0]
    else {
        panic!("{out:?}");
    };
    let all: Vec<String> = messages.iter().map(|m| format!("{m:?}")).collect();
    let joined = all.join("\n");
    assert!(
        joined.contains("What is up?") && joined.contains("Not"),
        "{joined}"
    );
    assert!(!joined.contains("Not much"), "only what was spoken");
}

#[test]
fn typed_failures_map_to_their_codes() {
    let (mut core, t0) = started(true);
    core.on_text(&prompt("Hi."), at(t0, 0));
    let llm = sent(&core.on_event(
        Event::TurnFailed {
            turn: 1,
            error: TurnError::Llm("429 rate limited".into()),
        },
        at(t0, 10),
    ));
    assert_eq!(llm[0]["code"], "llm_failed");
    assert!(llm[0]["message"].as_str().unwrap().contains("429"));
    let tts = sent(&core.on_event(
        Event::TurnFailed {
            turn: 1,
            error: TurnError::Tts("closed".into()),
        },
        at(t0, 10),
    ));
    assert_eq!(tts[0]["code"], "tts_failed");
}

#[test]
fn an_answer_that_spends_the_voice_allowance_stops_there() {
    let (mut core, t0) = started(true);
    core.on_text(&prompt("Tell me a long story."), at(t0, 0));
    assert!(core
        .on_event(
            Event::VoiceText {
                turn: 1,
                chars: 600
            },
            at(t0, 10)
        )
        .is_empty());
    let out = core.on_event(
        Event::VoiceText {
            turn: 1,
            chars: 600,
        },
        at(t0, 20),
    );
    assert_eq!(out[0], Action::CancelTurn { turn: 1 });
    let msgs = sent(&out);
    assert_eq!(msgs[1]["code"], "quota_exceeded");
    // Spent: the next prompt is refused until characters come back.
    let next = sent(&core.on_text(&prompt("More?"), at(t0, 30)));
    assert_eq!(next[0]["code"], "quota_exceeded");
}

#[test]
fn a_failed_stream_closes_the_session_and_closing_stops_everything() {
    let (mut core, t0) = started(false);
    core.on_text(&prompt("Hi."), at(t0, 0));
    let out = core.on_event(Event::StreamFailed("disk full".into()), at(t0, 5));
    assert_eq!(out[0], Action::CancelTurn { turn: 1 });
    let msgs = sent(&out);
    assert_eq!(msgs[0]["code"], "stream_failed");
    assert_eq!(msgs[1]["stage"], "error");
    assert_eq!(
        out.last(),
        Some(&Action::Close {
            code: 1011,
            reason: "stream failed"
        })
    );
    assert!(core.close().is_empty(), "nothing left to stop");

    let (mut core, t0) = started(false);
    core.on_text(&prompt("Hi."), at(t0, 0));
    assert_eq!(
        core.close(),
        vec![Action::CancelTurn { turn: 1 }, Action::StopStream]
    );
}

#[test]
fn the_page_reports_when_an_answer_was_on_screen_once_per_turn() {
    let (mut core, t0) = started(false);
    core.on_text(&prompt("Hello."), at(t0, 1000));
    core.on_event(complete(1, at(t0, 2500), false, "Hello."), at(t0, 2500));
    // The viewer sees it after the turn ended (HLS delay).
    let out = sent(&core.on_text(r#"{"type":"shown","turn":1}"#, at(t0, 6850)));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0]["type"], "on_screen");
    assert_eq!(out[0]["turn"], 1);
    assert_eq!(out[0]["on_screen_ms"], 5850.0);
    // Once per turn; unknown turns are ignored.
    assert!(core
        .on_text(r#"{"type":"shown","turn":1}"#, at(t0, 7000))
        .is_empty());
    assert!(core
        .on_text(r#"{"type":"shown","turn":9}"#, at(t0, 7000))
        .is_empty());
    // Only the recent turns are remembered.
    for i in 0..(SHOWN_TURNS_KEPT as u64 + 2) {
        core.on_text(&prompt("Again."), at(t0, 60_000 * (i + 1)));
    }
    assert!(core
        .on_text(r#"{"type":"shown","turn":2}"#, at(t0, 900_000))
        .is_empty());
    let last = SHOWN_TURNS_KEPT as u64 + 3;
    assert_eq!(
        sent(&core.on_text(
            &format!(r#"{{"type":"shown","turn":{last}}}"#),
            at(t0, 900_000)
        ))[0]["type"],
        "on_screen"
    );
}

#[test]
fn the_rtmp_publishers_state_goes_to_the_page_and_a_turn_goes_on() {
    use crate::rtmp::{PublishState, PublishStatus};
    let (mut core, t0) = started(false);
    core.on_text(&prompt("Hi."), at(t0, 0));
    let status = PublishStatus {
        state: PublishState::Retrying,
        target: "rtmp://ingest:1935/live/…".into(),
        reason: Some("the ingest closed the connection during publishing".into()),
        retry_in_ms: Some(1000),
    };
    let out = core.on_event(Event::Publish(status), at(t0, 5));
    let msgs = sent(&out);
    assert_eq!(msgs.len(), 1, "{out:?}");
    assert_eq!(msgs[0]["type"], "publish");
    assert_eq!(msgs[0]["state"], "retrying");
    assert_eq!(msgs[0]["retry_in_ms"], 1000);
    assert!(
        !out.iter()
            .any(|a| matches!(a, Action::CancelTurn { .. } | Action::Close { .. })),
        "the ingest's trouble does not touch the session"
    );
}
