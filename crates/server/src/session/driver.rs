//! The session driver: runs a [`SessionCore`] over a message transport (the axum WebSocket, or
//! any `Stream` + `Sink` of messages, so tests can use channels) and carries out its
//! [`Action`]s: starts and stops the live stream (one media thread, listed in the stream
//! registry), starts and cancels turns, sends messages, closes.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio_util::sync::CancellationToken;

use talkstream_media::ChannelConfig;
use talkstream_providers::vad::VAD_SAMPLE_RATE;
use talkstream_providers::{OpenAiStt, SttError};

use super::core::{Action, CoreConfig, SessionCore, TurnText};
use super::mic::MicSettings;
use super::{id_random_part, new_id_on};
use crate::files::remove_session_dir;
use crate::generation::GeneratorLink;
use crate::listen::STT_NOTE;
use crate::pipeline::{run_turn, Event, HeardOutcome, MediaCommand, TextSource, TurnContext};
use crate::producer::{Producer, StreamSetup};
use crate::protocol::{ErrorCode, ListenInfo, ServerMessage, StreamInfo};
use crate::registry::{Publisher, Registration};
use crate::rtmp::{RtmpOutput, StreamInfo as RtmpStreamInfo};
use crate::server::AppState;
use crate::uploads::RefImageFile;
use talkstream_avatar::Portrait;

mod portrait;

/// The live stream of a session.
struct LiveStream {
    registration: Registration,
    producer: Producer,
    /// The face's output size and idle-motion seed (to build another face for it).
    face: (u32, u32, u64),
}

/// Everything a running session holds besides its core.
struct Driver {
    id: String,
    state: Arc<AppState>,
    span: tracing::Span,
    events_tx: UnboundedSender<Event>,
    stream: Option<LiveStream>,
    /// Cancellation of the turns that run, by turn number.
    turns: HashMap<u64, CancellationToken>,
    /// Streams started so far (the first one has the session's id).
    streams_started: u32,
    /// Cancels transcriptions under way when the session ends.
    listening: CancellationToken,
    /// The photo this session sent, if it animates the session (else the server's default).
    portrait: Option<Arc<Portrait>>,
    /// Private copies of the session's photos for an external generator, newest last (the
    /// previous one stays while a turn may still use it); removed when the session ends
    /// (unless one is the server's default).
    ref_files: VecDeque<Arc<RefImageFile>>,
    /// The server's default photo's copy while this session's generator reads it.
    default_ref: Option<Arc<RefImageFile>>,
}

/// Send one message; false when the transport is gone.
async fn send<S>(socket: &mut S, msg: &ServerMessage) -> bool
where
    S: Sink<Message> + Unpin,
{
    socket
        .send(Message::Text(msg.to_json().into()))
        .await
        .is_ok()
}

async fn close<S>(socket: &mut S, code: u16, reason: &str)
where
    S: Sink<Message> + Unpin,
{
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

/// The `busy` error: this server takes no new session now (full or overloaded); a client may
/// retry in a few seconds, or another server behind the same proxy takes it.
pub(crate) fn busy_message(message: String) -> ServerMessage {
    ServerMessage::Error {
        code: ErrorCode::Busy,
        message,
        retry_after_ms: Some(BUSY_RETRY_AFTER_MS),
    }
}

/// When a refused client may try again: the load window's length.
pub(crate) const BUSY_RETRY_AFTER_MS: u64 = 2000;

/// Run one session on `socket` until it closes, the stream fails or the server shuts down.
pub(super) async fn run<S, E>(mut socket: S, state: Arc<AppState>, peer: SocketAddr)
where
    S: Stream<Item = Result<Message, E>> + Sink<Message> + Unpin,
    E: std::fmt::Display,
{
    let per_address = state.config.access.sessions_per_address;
    let Some(_address_slot) = state.addresses.try_acquire(peer.ip(), per_address) else {
        tracing::warn!(peer = %peer, max = per_address, "refused a session: SESSIONS_PER_ADDRESS reached");
        let msg = format!(
            "this address already has {per_address} sessions open (SESSIONS_PER_ADDRESS); close one and try again"
        );
        send(
            &mut socket,
            &ServerMessage::error(ErrorCode::TooManySessionsFromAddress, msg),
        )
        .await;
        close(&mut socket, 1013, "too many sessions from this address").await;
        return;
    };
    // Full (MAX_SESSIONS) or measured overloaded: the streams this node has come first.
    let slot = match state.busy() {
        Some(why) => Err(why),
        None => state.try_acquire_session().ok_or(crate::load::Busy::Full {
            max: state.config.max_sessions,
        }),
    };
    let _slot = match slot {
        Ok(slot) => slot,
        Err(why) => {
            tracing::warn!(reason = %why, "refused a session: busy");
            state.metrics.session_refused(why.label());
            let msg = format!("this server is busy: {why}; try again in a few seconds");
            send(&mut socket, &busy_message(msg)).await;
            close(&mut socket, 1013, "busy").await;
            return;
        }
    };

    let id = new_id_on(&state.config.node_id);
    let span = tracing::info_span!("session", id = %id);
    let (events_tx, mut events) = unbounded_channel();
    let cfg = &state.config;
    let mut core = SessionCore::new(
        CoreConfig {
            max_prompt_chars: cfg.max_prompt_chars,
            llm: state.llm.is_some(),
            system_prompt: cfg.system_prompt.clone(),
            history_chars: cfg.history_chars,
            limits: cfg.access.limits(),
            mic: MicSettings {
                vad: cfg.listen.vad(),
                barge_in_ms: cfg.listen.barge_in_ms,
                echo_tail_ms: cfg.listen.echo_tail_ms,
            },
            stt: if state.stt.is_some() {
                Ok(())
            } else {
                Err(STT_NOTE)
            },
            portraits: cfg.portrait_uploads,
            portrait_max_bytes: cfg.portrait_max_bytes,
        },
        span.clone(),
        Instant::now(),
    );
    let mut driver = Driver {
        id,
        state: Arc::clone(&state),
        span,
        events_tx,
        stream: None,
        turns: HashMap::new(),
        streams_started: 0,
        listening: CancellationToken::new(),
        portrait: None,
        ref_files: VecDeque::new(),
        default_ref: None,
    };
    tracing::info!(parent: &driver.span, "session started");

    let first = core.start();
    let mut closing = driver.execute(&mut socket, &mut core, first).await;
    while closing.is_none() {
        let actions = tokio::select! {
            _ = state.shutdown.cancelled() => vec![Action::Close { code: 1001, reason: "server shutting down" }],
            event = events.recv() => match event {
                Some(event) => {
                    driver.observe(&event);
                    core.on_event(event, Instant::now())
                }
                None => vec![Action::Close { code: 1011, reason: "internal error" }],
            },
            msg = socket.next() => match msg {
                Some(Ok(Message::Text(text))) => core.on_text(&text, Instant::now()),
                Some(Ok(Message::Binary(data))) => core.on_binary(&data, Instant::now()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => Vec::new(),
                Some(Ok(Message::Close(_))) | None => vec![Action::Close { code: 1000, reason: "" }],
                Some(Err(e)) => {
                    tracing::info!(parent: &driver.span, error = %e, "socket error");
                    vec![Action::Close { code: 1000, reason: "" }]
                }
            },
        };
        closing = driver.execute(&mut socket, &mut core, actions).await;
    }
    if let Some((code, reason)) = closing {
        if !reason.is_empty() {
            close(&mut socket, code, reason).await;
        }
    }
    let last = core.close();
    driver.execute(&mut socket, &mut core, last).await;
    // Whatever the core no longer knows about still stops (e.g. after a failed stream).
    for token in driver.turns.values() {
        token.cancel();
    }
    driver.listening.cancel();
    driver.stop_stream().await;
    driver.ref_files.clear();
    driver.default_ref = None;
    while events.try_recv().is_ok() {}
    tracing::info!(parent: &driver.span, "session ended");
}

impl Driver {
    /// Carry out `actions` in order (and what they lead to). `Some(close)` when the session
    /// must end.
    async fn execute<S>(
        &mut self,
        socket: &mut S,
        core: &mut SessionCore,
        actions: Vec<Action>,
    ) -> Option<(u16, &'static str)>
    where
        S: Sink<Message> + Unpin,
    {
        let mut queue = std::collections::VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Send(msg) => {
                    self.state.metrics.observe_message(&msg);
                    if !send(socket, &msg).await {
                        return Some((1000, ""));
                    }
                }
                Action::StartStream => {
                    let next = match self.start_stream() {
                        Ok(hello) => {
                            if !send(socket, &hello).await {
                                return Some((1000, ""));
                            }
                            core.stream_started()
                        }
                        Err(()) => core.stream_start_failed(),
                    };
                    queue.extend(next);
                }
                Action::StopStream => self.stop_stream().await,
                Action::StartTurn { turn, text } => self.start_turn(turn, text),
                Action::CancelTurn { turn } => self.cancel_turn(turn),
                Action::Transcribe { utterance, audio } => self.transcribe(utterance, audio),
                Action::CheckPortrait {
                    upload,
                    image,
                    landmarks,
                } => self.check_portrait(upload, image, landmarks),
                Action::ApplyPortrait {
                    upload,
                    checked,
                    make_default,
                } => self.apply_portrait(upload, checked, make_default).await,
                Action::ResetPortrait => self.reset_portrait().await,
                Action::Close { code, reason } => return Some((code, reason)),
            }
        }
        None
    }

    /// Keep the registry current with what the media thread reports.
    fn observe(&mut self, event: &Event) {
        match event {
            Event::SegmentPublished { msn } => {
                if let Some(s) = &self.stream {
                    s.registration.entry().segment_published(*msn);
                }
            }
            Event::TurnComplete { turn, .. } => {
                self.turns.remove(turn);
            }
            _ => {}
        }
    }

    /// The stream's RTMP publisher, when RTMP_PUBLISH_URL is set; its state goes to the core.
    fn start_publisher(&self, channel: &ChannelConfig) -> Option<RtmpOutput> {
        let target = match self.state.config.rtmp.target(&self.id)? {
            Ok(target) => target,
            Err(e) => {
                tracing::error!(parent: &self.span, error = %e, "no RTMP publishing for this stream");
                return None;
            }
        };
        let info = RtmpStreamInfo {
            width: channel.width,
            height: channel.height,
            fps: channel.fps,
            video_kbps: channel.video_bitrate_kbps,
            audio_kbps: channel.audio_bitrate_kbps,
            sample_rate: channel.sample_rate,
        };
        let events = self.events_tx.clone();
        Some(RtmpOutput::start(
            target,
            info,
            &tokio::runtime::Handle::current(),
            move |status| {
                let _ = events.send(Event::Publish(status));
            },
        ))
    }

    /// Start a live stream with a fresh id (the first one: the session's id) and build its
    /// `hello`.
    fn start_stream(&mut self) -> Result<ServerMessage, ()> {
        let state = Arc::clone(&self.state);
        let cfg = &state.config;
        let stream_id = if self.streams_started == 0 {
            self.id.clone()
        } else {
            new_id_on(&cfg.node_id)
        };
        self.streams_started += 1;
        let dir = cfg.hls_dir.join(&stream_id);
        let seed = u64::from_str_radix(id_random_part(&stream_id), 16).unwrap_or(0);
        let channel = state.channel_config();
        let sample_rate = channel.sample_rate;
        let webrtc = state.webrtc.as_ref().and_then(|hub| {
            hub.open_stream(&stream_id, sample_rate)
                .inspect_err(|e| {
                    tracing::error!(parent: &self.span, error = %e, "no WebRTC output for this stream");
                })
                .ok()
        });
        let rtmp = self.start_publisher(&channel);
        let published = Publisher::default();
        let ref_image = self.ref_image();
        let setup = StreamSetup {
            dir,
            published: published.clone(),
            channel,
            seed,
            portrait: self
                .portrait
                .clone()
                .or_else(|| state.uploads.default_portrait()),
            generator: state.generator.as_ref().map(|g| GeneratorLink {
                generator: Arc::clone(g),
                runtime: tokio::runtime::Handle::current(),
                ref_image,
                session_id: self.id.clone(),
                window_ms: cfg.seg_len_ms,
                overlap_ms: cfg.seg_overlap_ms,
                buffer_ms: cfg.generator_buffer_ms,
            }),
            webrtc: webrtc.clone(),
            rtmp,
            node_load: Arc::clone(&state.load),
            degrade_after: cfg.degrade_after(),
        };
        let producer = Producer::spawn(&stream_id, setup, self.events_tx.clone()).map_err(|e| {
            tracing::error!(parent: &self.span, error = %e, "could not start the media thread");
        })?;
        let registration = state.streams.register_with_webrtc(
            &stream_id,
            &self.id,
            producer.sender(),
            published,
            webrtc,
        );
        let playlist = registration
            .entry()
            .hls_playlist()
            .unwrap_or_default()
            .to_string();
        let whep = registration.entry().whep().map(str::to_string);
        self.stream = Some(LiveStream {
            registration,
            producer,
            face: (cfg.width, cfg.height, seed),
        });
        Ok(ServerMessage::Hello {
            session_id: self.id.clone(),
            playlist,
            whep,
            ice_servers: state.ice_servers.clone(),
            server_time_ms: crate::producer::unix_ms_now(),
            version: env!("CARGO_PKG_VERSION"),
            stream: StreamInfo {
                width: cfg.width,
                height: cfg.height,
                fps: cfg.fps,
                segment_ms: cfg.seg_len_ms,
                audio_sample_rate: sample_rate,
            },
            llm: state.llm.as_ref().map_or_else(
                || "none".to_string(),
                |l| format!("{}:{}", l.name(), l.model()),
            ),
            tts: state.tts.name().into(),
            video_generator: state.generator_kind.clone(),
            generator_note: state.generator_note.clone(),
            portraits: cfg.portrait_uploads.as_str(),
            portrait_max_bytes: cfg.portrait_max_bytes,
            listen: Box::new(ListenInfo {
                stt: if state.stt.is_some() {
                    OpenAiStt::NAME.to_string()
                } else {
                    "none".to_string()
                },
                stt_note: state.stt.is_none().then(|| STT_NOTE.to_string()),
                vad: cfg.listen.vad_info(),
            }),
        })
    }

    /// Transcribe an utterance off the session's loop; the words come back as
    /// [`Event::Heard`]. Runs until done or the session ends.
    fn transcribe(&mut self, utterance: u64, audio: Vec<i16>) {
        let Some(stt) = self.state.stt.clone() else {
            return;
        };
        let events = self.events_tx.clone();
        let cancel = self.listening.clone();
        let span = self.span.clone();
        tokio::spawn(async move {
            let outcome = match stt.transcribe(&audio, VAD_SAMPLE_RATE, &cancel).await {
                Ok(text) => HeardOutcome::Text(text),
                Err(SttError::Cancelled) => return,
                Err(e) => HeardOutcome::Failed(e.to_string()),
            };
            if events.send(Event::Heard { utterance, outcome }).is_err() {
                tracing::debug!(parent: &span, utterance, "a transcript arrived after the session ended");
            }
        });
    }

    /// End the stream (ENDLIST) and remove its files after the linger time.
    async fn stop_stream(&mut self) {
        let Some(LiveStream {
            registration,
            producer,
            ..
        }) = self.stream.take()
        else {
            return;
        };
        let joined = tokio::task::spawn_blocking(move || producer.finish_blocking()).await;
        if joined.is_err() {
            tracing::error!(parent: &self.span, "media thread could not be joined");
        }
        let stream_id = registration.entry().stream_id.clone();
        drop(registration);
        tracing::info!(parent: &self.span, stream = %stream_id, "stream ended");
        let dir = self.state.config.hls_dir.join(&stream_id);
        let linger = Duration::from_millis(self.state.config.session_linger_ms);
        let shutdown = self.state.shutdown.clone();
        self.state.tracker.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(linger) => {}
                _ = shutdown.cancelled() => {}
            }
            let _ = tokio::task::spawn_blocking(move || remove_session_dir(&dir)).await;
        });
    }

    fn start_turn(&mut self, turn: u64, text: TurnText) {
        let Some(stream) = &self.stream else {
            return;
        };
        let cancel = CancellationToken::new();
        self.turns.insert(turn, cancel.clone());
        let ctx = TurnContext {
            turn,
            tts: Arc::clone(&self.state.tts),
            stream_rate: self.state.channel_config().sample_rate,
            chunker: self.state.config.chunker_config(),
            commands: stream.producer.sender(),
            events: self.events_tx.clone(),
            cancel,
        };
        let source = match (text, &self.state.llm) {
            (TurnText::Llm(messages), Some(llm)) => TextSource::Llm(Arc::clone(llm), messages),
            (TurnText::Llm(messages), None) => {
                // Cannot happen (the core asks for the model only when there is one); say the
                // prompt rather than nothing.
                let last = messages
                    .last()
                    .map(|m| m.content.clone())
                    .unwrap_or_default();
                TextSource::Direct(last)
            }
            (TurnText::Direct(text), _) => TextSource::Direct(text),
        };
        self.state.tracker.spawn(run_turn(ctx, source));
    }

    fn cancel_turn(&mut self, turn: u64) {
        if let Some(token) = self.turns.remove(&turn) {
            token.cancel();
        }
        if let Some(stream) = &self.stream {
            let _ = stream
                .producer
                .sender()
                .send(MediaCommand::Interrupt { turn });
        }
    }
}

#[cfg(test)]
mod tests {
    //! The driver over in-memory channels instead of a socket (no HTTP server): the real
    //! session, media thread and voice behind it.

    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use clap::Parser;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

    use super::*;
    use crate::config::Cli;
    use crate::session::new_id;

    /// One side of an in-memory WebSocket.
    struct ChannelSocket {
        incoming: UnboundedReceiver<Message>,
        outgoing: UnboundedSender<Message>,
    }

    impl Stream for ChannelSocket {
        type Item = Result<Message, Infallible>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.incoming.poll_recv(cx).map(|m| m.map(Ok))
        }
    }

    impl Sink<Message> for ChannelSocket {
        type Error = ();
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }
        fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), ()> {
            self.outgoing.send(item).map_err(|_| ())
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }
    }

    async fn next_json(rx: &mut UnboundedReceiver<Message>) -> serde_json::Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("a message within 20 s")
                .expect("the session is running");
            if let Message::Text(t) = msg {
                return serde_json::from_str(&t).unwrap();
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_session_over_channels_says_hello_speaks_and_ends_its_stream() {
        let dir = std::env::temp_dir().join(format!("talkstream-driver-{}", new_id()));
        let hls = dir.join("hls").display().to_string();
        let cli =
            Cli::try_parse_from(["talkstream", "--hls-dir", &hls, "--session-linger-ms", "0"])
                .unwrap();
        let state = AppState::build(cli.config, CancellationToken::new()).unwrap();
        let (to_server, incoming) = unbounded_channel();
        let (outgoing, mut from_server) = unbounded_channel();
        let socket = ChannelSocket { incoming, outgoing };
        let session = tokio::spawn(run(
            socket,
            Arc::clone(&state),
            "127.0.0.1:9".parse().unwrap(),
        ));

        let hello = next_json(&mut from_server).await;
        assert_eq!(hello["type"], "hello", "{hello}");
        let id = hello["session_id"].as_str().unwrap().to_string();
        let entry = state
            .streams
            .get(&id)
            .expect("the stream is in the registry");
        assert_eq!(hello["playlist"], entry.hls_playlist().unwrap());
        assert_eq!(next_json(&mut from_server).await["stage"], "idle");

        to_server
            .send(Message::Text(r#"{"type":"prompt","text":"Hello."}"#.into()))
            .unwrap();
        let mut seen = Vec::new();
        loop {
            let v = next_json(&mut from_server).await;
            seen.push(v["type"].as_str().unwrap_or_default().to_string());
            if v["type"] == "metrics" {
                assert!(v["first_segment_ms"].as_f64().is_some(), "{v}");
                break;
            }
        }
        assert!(seen.contains(&"transcript".to_string()), "{seen:?}");
        // Media was published: with LL-HLS (the default) a short answer completes with its parts,
        // which go on the playlist at their media time, before the first segment closes.
        let published = || {
            let p = entry.published();
            p.segments > 0 || p.video.open_parts > 0
        };
        for _ in 0..100 {
            if published() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(published(), "parts or segments were published");

        // The client goes away: the stream ends and leaves the registry.
        drop(to_server);
        tokio::time::timeout(Duration::from_secs(20), session)
            .await
            .expect("the session ends")
            .unwrap();
        assert!(state.streams.get(&id).is_none());
        state.tracker.close();
        state.tracker.wait().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
