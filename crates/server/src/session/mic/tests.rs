//! The microphone rules on the built-in voice's speech: frame checks and the real-time budget,
//! utterances, barge-in by voice, the echo guard with HLS playback, push-to-talk.

use super::*;
use crate::session::test_speech::{bytes, said};

fn settings() -> MicSettings {
    MicSettings {
        vad: VadSettings::default(),
        barge_in_ms: 400,
        echo_tail_ms: 2500,
    }
}

/// Send `pcm` in real time (32 ms frames) from `t0`; everything heard, in order.
fn speak(mic: &mut Mic, pcm: &[i16], t0: u64, avatar: Avatar) -> Vec<Heard> {
    let mut out = Vec::new();
    for (i, frame) in pcm.chunks(512).enumerate() {
        let now = t0 + i as u64 * 32;
        out.extend(mic.audio(&bytes(frame), now, avatar).expect("accepted"));
    }
    out
}

fn stopped(heard: &[Heard]) -> Vec<(Option<&'static str>, bool)> {
    heard
        .iter()
        .filter_map(|h| match h {
            Heard::Stopped { dropped, audio, .. } => Some((*dropped, audio.is_some())),
            _ => None,
        })
        .collect()
}

const IDLE: Avatar = Avatar {
    busy: false,
    audible: false,
};
const TALKING: Avatar = Avatar {
    busy: true,
    audible: true,
};

#[test]
fn bad_frames_are_refused_and_the_microphone_goes_on() {
    let mut mic = Mic::new(settings());
    assert_eq!(mic.audio(&[0, 0], 0, IDLE), Err(AudioRejected::NotStarted));
    mic.start(MicMode::HandsFree, Playback::Webrtc, 0);
    assert_eq!(mic.audio(&[], 0, IDLE), Err(AudioRejected::Empty));
    assert_eq!(
        mic.audio(&[1, 2, 3], 0, IDLE),
        Err(AudioRejected::OddLength(3))
    );
    assert_eq!(
        mic.audio(&vec![0; 2 * 8001], 0, IDLE),
        Err(AudioRejected::TooLarge(8001))
    );
    assert_eq!(mic.audio(&vec![0; 2 * 8000], 0, IDLE), Ok(Vec::new()));
    mic.stop();
    assert_eq!(mic.audio(&[0, 0], 10, IDLE), Err(AudioRejected::NotStarted));
}

#[test]
fn audio_faster_than_real_time_is_dropped_beyond_a_one_second_burst() {
    let mut mic = Mic::new(settings());
    mic.start(MicMode::HandsFree, Playback::Webrtc, 1000);
    // One second at once is the burst.
    for _ in 0..2 {
        assert!(mic.audio(&vec![0; 2 * 8000], 1000, IDLE).is_ok());
    }
    let refused = mic.audio(&vec![0; 1024], 1000, IDLE);
    assert_eq!(refused, Err(AudioRejected::TooFast { retry_after_ms: 32 }));
    // Real time later, real-time audio is accepted again.
    assert!(mic.audio(&vec![0; 1024], 1032, IDLE).is_ok());
    // A flood of tiny frames costs at least 10 ms each.
    let mut accepted = 0;
    for _ in 0..1000 {
        if mic.audio(&[0, 0], 2032, IDLE).is_ok() {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 100, "1 s of budget at 10 ms a frame");
}

#[test]
fn an_utterance_is_started_then_stopped_with_its_audio_to_transcribe() {
    let mut mic = Mic::new(settings());
    mic.start(MicMode::HandsFree, Playback::Webrtc, 0);
    let heard = speak(
        &mut mic,
        &said("What is the capital of France?", 800, 1000),
        0,
        IDLE,
    );
    assert_eq!(heard.first(), Some(&Heard::Started));
    assert_eq!(stopped(&heard), vec![(None, true)]);
    assert!(!heard.contains(&Heard::BargeIn), "nothing to interrupt");
}

#[test]
fn speech_over_the_avatar_interrupts_it_once_it_lasts_barge_in_ms() {
    let mut mic = Mic::new(settings());
    mic.start(MicMode::HandsFree, Playback::Webrtc, 0);
    let pcm = said(
        "Wait a moment, stop, I want to ask something else.",
        500,
        1000,
    );
    let mut heard = Vec::new();
    let mut barge_at = None;
    for (i, frame) in pcm.chunks(512).enumerate() {
        let avatar = if barge_at.is_some() { IDLE } else { TALKING };
        let h = mic.audio(&bytes(frame), i as u64 * 32, avatar).unwrap();
        if h.contains(&Heard::BargeIn) {
            barge_at = Some(i as u64 * 32);
        }
        heard.extend(h);
    }
    assert_eq!(heard.iter().filter(|h| **h == Heard::BargeIn).count(), 1);
    // Speech starts at 500 ms; the barge-in comes after 400 ms of it (plus the detector's
    // start-up and lag, well under a second).
    let at = barge_at.unwrap();
    assert!((850..1400).contains(&at), "barge-in at {at} ms");
    // What interrupted is then transcribed.
    assert_eq!(stopped(&heard), vec![(None, true)]);
}

#[test]
fn a_short_sound_over_the_avatar_neither_interrupts_nor_becomes_a_prompt() {
    let mut mic = Mic::new(MicSettings {
        barge_in_ms: 800,
        ..settings()
    });
    mic.start(MicMode::HandsFree, Playback::Webrtc, 0);
    let heard = speak(&mut mic, &said("Yes.", 500, 1000), 0, TALKING);
    assert!(!heard.contains(&Heard::BargeIn), "{heard:?}");
    assert_eq!(stopped(&heard), vec![(Some(dropped::TOO_SHORT), false)]);
    // With voice barge-in off, long speech does not interrupt either.
    let mut mic = Mic::new(MicSettings {
        barge_in_ms: 0,
        ..settings()
    });
    mic.start(MicMode::HandsFree, Playback::Webrtc, 0);
    let heard = speak(
        &mut mic,
        &said("Please stop talking now, I have heard enough.", 500, 1000),
        0,
        TALKING,
    );
    assert!(!heard.contains(&Heard::BargeIn));
}

#[test]
fn with_hls_playback_speech_while_the_avatar_is_audible_is_its_echo() {
    let mut mic = Mic::new(settings());
    mic.start(MicMode::HandsFree, Playback::Hls, 0);
    let echo = said(
        "Hello, I am the avatar and this is my voice coming back.",
        300,
        1000,
    );
    let heard = speak(&mut mic, &echo, 0, TALKING);
    assert!(!heard.contains(&Heard::BargeIn));
    assert_eq!(stopped(&heard), vec![(Some(dropped::ECHO), false)]);
    // Just after the answer (within ECHO_TAIL_MS) still; once quiet, the user is heard.
    let tail = Avatar {
        busy: false,
        audible: true,
    };
    let heard = speak(&mut mic, &said("And more echo.", 300, 1000), 10_000, tail);
    assert_eq!(stopped(&heard), vec![(Some(dropped::ECHO), false)]);
    let heard = speak(
        &mut mic,
        &said("Now it is me talking.", 300, 1000),
        20_000,
        IDLE,
    );
    assert_eq!(stopped(&heard), vec![(None, true)]);
}

#[test]
fn push_to_talk_is_one_utterance_from_press_to_release() {
    let mut mic = Mic::new(settings());
    assert!(mic.start(MicMode::PushToTalk, Playback::Hls, 0).is_empty());
    // Pauses do not end it, even while the avatar is audible (the press interrupted it).
    let heard = speak(&mut mic, &said("One. Two.", 300, 1200), 0, TALKING);
    assert_eq!(heard, vec![Heard::Started]);
    let released = mic.stop();
    assert_eq!(stopped(&released), vec![(None, true)]);
    // Held in silence: nothing to transcribe.
    mic.start(MicMode::PushToTalk, Playback::Hls, 5000);
    speak(&mut mic, &vec![0; 16 * 800], 5000, IDLE);
    assert_eq!(
        stopped(&mic.stop()),
        vec![(Some(dropped::NO_SPEECH), false)]
    );
}

#[test]
fn switching_to_push_to_talk_ends_a_hands_free_utterance() {
    let mut mic = Mic::new(settings());
    mic.start(MicMode::HandsFree, Playback::Webrtc, 0);
    let pcm = said("I was saying something long enough to start.", 300, 0);
    let heard = speak(&mut mic, &pcm[..pcm.len() / 2], 0, IDLE);
    assert_eq!(heard, vec![Heard::Started]);
    let switched = mic.start(MicMode::PushToTalk, Playback::Webrtc, 2000);
    assert_eq!(stopped(&switched), vec![(None, true)]);
}

#[test]
fn bursts_of_speech_do_not_add_up_to_a_barge_in() {
    // An echo the browser's canceller lets through comes in bursts: 200 ms of the avatar's
    // voice, 250 ms of nothing, again and again (well over BARGE_IN_MS of speech in all).
    let voice = said(
        "This is the avatar talking on and on about many things at length.",
        0,
        0,
    );
    let mut pcm = vec![0i16; 16 * 400];
    for burst in voice.chunks(16 * 200).take(10) {
        pcm.extend_from_slice(burst);
        pcm.extend(std::iter::repeat_n(0, 16 * 250));
    }
    pcm.extend(std::iter::repeat_n(0, 16 * 1000));
    let mut mic = Mic::new(settings());
    mic.start(MicMode::HandsFree, Playback::Webrtc, 0);
    let heard = speak(&mut mic, &pcm, 0, TALKING);
    assert!(heard.contains(&Heard::Started), "{heard:?}");
    assert!(!heard.contains(&Heard::BargeIn), "{heard:?}");
    assert_eq!(stopped(&heard), vec![(Some(dropped::TOO_SHORT), false)]);
}

#[test]
fn the_avatars_own_words_heard_back_are_recognised_as_echo() {
    let spoken =
        "Here is one. A robot walks into a bar and orders a drink, and the bartender says no.";
    assert!(is_echo_of("a robot walks into a bar", spoken));
    assert!(is_echo_of("A robot walks into a bar and orders", spoken));
    assert!(is_echo_of(
        "walks into a bar and, uh, orders a drink",
        spoken
    ));
    assert!(!is_echo_of(
        "Wait, stop, tell me about the bar instead.",
        spoken
    ));
    assert!(!is_echo_of("What about robots?", spoken));
    assert!(!is_echo_of("bar", spoken), "too short to tell");
}
