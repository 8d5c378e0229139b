//! One RTMP connection to an ingest, over TCP: the handshake, `connect` to the application,
//! `createStream` + `publish` of the stream key, stream metadata and FLV tags out, and the
//! ingest's control messages in (acknowledgements, pings, status). The RTMP chunk protocol and
//! command state machines are `rml_rtmp`'s (sans-I/O); this module carries their bytes.

use std::time::Duration;

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeError, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionError, ClientSessionEvent,
    ClientSessionResult, PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use talkstream_media::flv::FlvTag;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use super::target::RtmpTarget;

/// FLV codec ids for the metadata.
const AVC_CODEC_ID: u32 = 7;
const AAC_CODEC_ID: u32 = 10;

/// What went wrong with the ingest (never contains the stream key).
#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    /// The URL cannot be used.
    #[error("RTMP_PUBLISH_URL: {0}")]
    Target(#[from] super::target::TargetError),
    /// TCP connect failed.
    #[error("cannot reach {target}: {source}")]
    Connect {
        /// Where (without the key).
        target: String,
        /// Why.
        source: std::io::Error,
    },
    /// The ingest did not answer in time.
    #[error("no answer from the ingest during {stage} within {ms} ms")]
    Timeout {
        /// What was waited for.
        stage: &'static str,
        /// How long.
        ms: u64,
    },
    /// The handshake bytes were wrong.
    #[error("RTMP handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The chunk stream or a command could not be handled.
    #[error("RTMP protocol: {0}")]
    Session(#[from] ClientSessionError),
    /// `connect` was answered with `_error`.
    #[error("the ingest refused application {app:?}: {description}")]
    AppRefused {
        /// The application name.
        app: String,
        /// The ingest's reason.
        description: String,
    },
    /// `publish` was answered with an error status (a wrong or used stream key).
    #[error("the ingest refused to publish: {code}")]
    PublishRefused {
        /// The status code, e.g. `NetStream.Publish.BadName`.
        code: String,
    },
    /// The ingest closed the connection.
    #[error("the ingest closed the connection during {stage}{hint}")]
    Closed {
        /// What was going on.
        stage: &'static str,
        /// A likely cause.
        hint: &'static str,
    },
    /// Reading or writing failed.
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
}

/// An open connection; [`Connection::publish`] makes it a publishing one.
pub struct Connection {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    session: ClientSession,
    buf: Vec<u8>,
}

impl Connection {
    /// TCP connect, handshake and `connect` to the target's application, each within `timeout`.
    pub async fn open(target: &RtmpTarget, timeout: Duration) -> Result<Self, RtmpError> {
        let deadline = Instant::now() + timeout;
        let ms = timeout.as_millis() as u64;
        let tcp = timeout_at(deadline, TcpStream::connect(target.address()))
            .await
            .map_err(|_| RtmpError::Timeout {
                stage: "the TCP connect",
                ms,
            })?
            .map_err(|source| RtmpError::Connect {
                target: target.to_string(),
                source,
            })?;
        tcp.set_nodelay(true)?;
        let (reader, writer) = tcp.into_split();
        let mut config = ClientSessionConfig::new();
        config.tc_url = Some(target.tc_url());
        config.flash_version = "FMLE/3.0 (compatible; talkstream)".to_string();
        let (session, results) = ClientSession::new(config)?;
        let mut conn = Connection {
            reader,
            writer,
            session,
            buf: vec![0; 16 * 1024],
        };
        let rest =
            timeout_at(deadline, conn.handshake())
                .await
                .map_err(|_| RtmpError::Timeout {
                    stage: "the handshake",
                    ms,
                })??;
        let mut events = conn.carry_out(results).await?;
        events.extend(conn.input(&rest).await?);
        let request = conn.session.request_connection(target.app.clone())?;
        events.extend(conn.carry_out(vec![request]).await?);
        conn.wait(deadline, ms, "connect", events, |event| match event {
            ClientSessionEvent::ConnectionRequestAccepted => Some(Ok(())),
            ClientSessionEvent::ConnectionRequestRejected { description } => {
                Some(Err(RtmpError::AppRefused {
                    app: target.app.clone(),
                    description: description.clone(),
                }))
            }
            _ => None,
        })
        .await?;
        Ok(conn)
    }

    /// `createStream` + `publish(key, "live")`, then the stream's metadata.
    pub async fn publish(
        &mut self,
        target: &RtmpTarget,
        timeout: Duration,
        metadata: &StreamInfo,
    ) -> Result<(), RtmpError> {
        let deadline = Instant::now() + timeout;
        let request = self
            .session
            .request_publishing(target.key.clone(), PublishRequestType::Live)?;
        let events = self.carry_out(vec![request]).await?;
        self.wait(
            deadline,
            timeout.as_millis() as u64,
            "publish",
            events,
            |event| match event {
                ClientSessionEvent::PublishRequestAccepted => Some(Ok(())),
                ClientSessionEvent::UnhandleableOnStatusCode { code }
                    if code.contains("Publish") || code.ends_with("Failed") =>
                {
                    Some(Err(RtmpError::PublishRefused { code: code.clone() }))
                }
                _ => None,
            },
        )
        .await?;
        let mut md = StreamMetadata::new();
        md.video_width = Some(metadata.width);
        md.video_height = Some(metadata.height);
        md.video_codec_id = Some(AVC_CODEC_ID);
        md.video_frame_rate = Some(metadata.fps as f32);
        md.video_bitrate_kbps = Some(metadata.video_kbps);
        md.audio_codec_id = Some(AAC_CODEC_ID);
        md.audio_bitrate_kbps = Some(metadata.audio_kbps);
        md.audio_sample_rate = Some(metadata.sample_rate);
        md.audio_channels = Some(1);
        md.audio_is_stereo = Some(false);
        md.encoder = Some(format!("talkstream {}", env!("CARGO_PKG_VERSION")));
        let packet = self.session.publish_metadata(&md)?;
        self.carry_out(vec![packet]).await.map(drop)
    }

    /// Send one tag on the publishing stream.
    pub async fn send(&mut self, tag: &FlvTag) -> Result<(), RtmpError> {
        let result = match tag {
            FlvTag::Video { ts_ms, data, .. } => self.session.publish_video_data(
                Bytes::copy_from_slice(data),
                RtmpTimestamp::new(*ts_ms as u32),
                false,
            )?,
            FlvTag::Audio { ts_ms, data } => self.session.publish_audio_data(
                Bytes::copy_from_slice(data),
                RtmpTimestamp::new(*ts_ms as u32),
                false,
            )?,
        };
        self.carry_out(vec![result]).await.map(drop)
    }

    /// Wait for bytes from the ingest; hand the count to [`Connection::received`]. Cancel-safe:
    /// nothing is lost if the future is dropped before it completes.
    pub async fn readable(&mut self) -> std::io::Result<usize> {
        self.reader.read(&mut self.buf).await
    }

    /// Handle `n` bytes [`Connection::readable`] read (acknowledgements, pings, status); an
    /// error status or a closed connection is an error.
    pub async fn received(&mut self, n: usize) -> Result<(), RtmpError> {
        if n == 0 {
            return Err(RtmpError::Closed {
                stage: "publishing",
                hint: "",
            });
        }
        let data = self.buf[..n.min(self.buf.len())].to_vec();
        for event in self.input(&data).await? {
            if let ClientSessionEvent::UnhandleableOnStatusCode { code } = event {
                if code.contains("Failed") || code.contains("BadName") || code.contains("Error") {
                    return Err(RtmpError::PublishRefused { code });
                }
                tracing::debug!(code, "RTMP status from the ingest");
            }
        }
        Ok(())
    }

    /// Say goodbye (`deleteStream`) and close.
    pub async fn close(mut self) {
        if let Ok(results) = self.session.stop_publishing() {
            let _ = self.carry_out(results).await;
        }
        let _ = self.writer.shutdown().await;
    }

    /// C0+C1 out, S0+S1+S2 in, C2 out; returns bytes that came after the handshake.
    async fn handshake(&mut self) -> Result<Vec<u8>, RtmpError> {
        let mut handshake = Handshake::new(PeerType::Client);
        let c0c1 = handshake.generate_outbound_p0_and_p1()?;
        self.writer.write_all(&c0c1).await?;
        loop {
            let n = self.reader.read(&mut self.buf).await?;
            if n == 0 {
                return Err(RtmpError::Closed {
                    stage: "the handshake",
                    hint: " (is this an RTMP server?)",
                });
            }
            match handshake.process_bytes(&self.buf[..n])? {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.writer.write_all(&response_bytes).await?;
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.writer.write_all(&response_bytes).await?;
                    return Ok(remaining_bytes);
                }
            }
        }
    }

    /// Feed received bytes to the session; send what it answers; return its events.
    async fn input(&mut self, data: &[u8]) -> Result<Vec<ClientSessionEvent>, RtmpError> {
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let results = self.session.handle_input(data)?;
        self.carry_out(results).await
    }

    /// Write the session's outbound packets (in order); return its events.
    async fn carry_out(
        &mut self,
        results: Vec<ClientSessionResult>,
    ) -> Result<Vec<ClientSessionEvent>, RtmpError> {
        let mut events = Vec::new();
        for result in results {
            match result {
                ClientSessionResult::OutboundResponse(packet) => {
                    self.writer.write_all(&packet.bytes).await?;
                }
                ClientSessionResult::RaisedEvent(event) => events.push(event),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(events)
    }

    /// Read until `decide` settles on an event (events already received are looked at first).
    async fn wait(
        &mut self,
        deadline: Instant,
        ms: u64,
        stage: &'static str,
        earlier: Vec<ClientSessionEvent>,
        decide: impl Fn(&ClientSessionEvent) -> Option<Result<(), RtmpError>>,
    ) -> Result<(), RtmpError> {
        for event in &earlier {
            if let Some(result) = decide(event) {
                return result;
            }
        }
        loop {
            let n = timeout_at(deadline, self.reader.read(&mut self.buf))
                .await
                .map_err(|_| RtmpError::Timeout { stage, ms })??;
            if n == 0 {
                return Err(RtmpError::Closed {
                    stage,
                    hint: if stage == "connect" {
                        " (is the application name right?)"
                    } else {
                        " (is the stream key right, or already in use?)"
                    },
                });
            }
            let data = self.buf[..n].to_vec();
            for event in self.input(&data).await? {
                if let Some(result) = decide(&event) {
                    return result;
                }
            }
        }
    }
}

/// What the metadata says about the stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamInfo {
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frame rate.
    pub fps: u32,
    /// Video bitrate.
    pub video_kbps: u32,
    /// Audio bitrate.
    pub audio_kbps: u32,
    /// Audio sample rate.
    pub sample_rate: u32,
}
