//! The worker protocol (version [`PROTOCOL_VERSION`]), spoken over a worker process's
//! stdin/stdout or a TCP connection; the full description for implementers is
//! `docs/generator-protocol.md`.
//!
//! Every message is `u32 big-endian length` (of what follows) + `u8 type` + payload:
//!
//! | type | name | direction | payload |
//! |---|---|---|---|
//! | 1 | HELLO | worker → talkstream | JSON [`Hello`] |
//! | 2 | WINDOW | talkstream → worker | `u32 BE` JSON length + JSON [`WindowHeader`] + PCM s16le |
//! | 3 | FRAME | worker → talkstream | `u64 BE` request id + one I420 picture (Y, U, V planes) |
//! | 4 | DONE | worker → talkstream | JSON [`Done`] |
//! | 5 | ERROR | worker → talkstream | JSON [`ErrorMsg`] |
//! | 6 | END_SESSION | talkstream → worker | JSON [`EndSession`] |
//! | 7 | SHUTDOWN | talkstream → worker | empty |
//! | 8 | AUTH | talkstream → worker | JSON [`Auth`]; the first message on TCP, never on stdio |
//!
//! Version 2 added AUTH (TCP only); over stdin/stdout versions 1 and 2 are the same exchange,
//! so talkstream accepts a HELLO of either there ([`MIN_PROTOCOL_VERSION`]).
//!
//! Both blocking ([`read_message`], [`write_message`]) and tokio ([`read_message_async`],
//! [`write_message_async`]) codecs are provided.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use talkstream_media::I420Frame;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 2;

/// The oldest worker HELLO accepted over stdin/stdout (version 1 had no AUTH, which stdio does
/// not use). Over TCP the worker must speak [`PROTOCOL_VERSION`].
pub const MIN_PROTOCOL_VERSION: u32 = 1;

/// Largest message accepted (type byte + payload): a 3840x2160 I420 frame is 12.4 MB.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Message type bytes.
pub mod kind {
    /// Worker → talkstream, first message: [`super::Hello`].
    pub const HELLO: u8 = 1;
    /// Talkstream → worker: a window to render.
    pub const WINDOW: u8 = 2;
    /// Worker → talkstream: one frame of a window.
    pub const FRAME: u8 = 3;
    /// Worker → talkstream: all frames of a window were sent.
    pub const DONE: u8 = 4;
    /// Worker → talkstream: a window (or the worker) failed.
    pub const ERROR: u8 = 5;
    /// Talkstream → worker: forget a session's state.
    pub const END_SESSION: u8 = 6;
    /// Talkstream → worker: exit now.
    pub const SHUTDOWN: u8 = 7;
    /// Talkstream → worker over TCP, first message: [`super::Auth`].
    pub const AUTH: u8 = 8;
}

/// The client's first message over TCP: the protocol it speaks and the shared token. The
/// worker answers HELLO, or ERROR (`id` null) and closes the connection.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auth {
    /// Protocol version the client speaks ([`PROTOCOL_VERSION`]).
    pub protocol: u32,
    /// The shared secret (`GENERATOR_WORKER_TOKEN`); empty when none is set.
    #[serde(default)]
    pub token: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("protocol", &self.protocol)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// The worker's handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version the worker speaks (must equal [`PROTOCOL_VERSION`]).
    pub protocol: u32,
    /// Width of the frames it sends.
    pub width: u32,
    /// Height of the frames it sends.
    pub height: u32,
    /// Frame rate of the frames it sends.
    pub fps: u32,
    /// Pixel format; only `"i420"` is defined.
    pub pixel_format: String,
    /// Free-form name for logs.
    #[serde(default)]
    pub name: String,
}

/// A window request header (followed by `samples` s16le PCM samples in the same message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowHeader {
    /// Request id, echoed in FRAME, DONE and ERROR.
    pub id: u64,
    /// Session id (a worker may keep state per session).
    pub session: String,
    /// Window index within talkstream's audio windows.
    pub window: u64,
    /// Sample rate of the PCM.
    pub sample_rate: u32,
    /// Leading samples that repeat the end of the previous window (context).
    pub context_samples: u64,
    /// Number of PCM samples in the message.
    pub samples: u64,
    /// Stream position of the first PCM sample.
    pub start_sample: u64,
    /// The stream's frame rate.
    pub fps: u32,
    /// Stream frame index of the first frame wanted (shown at `first_frame / fps` s).
    pub first_frame: u64,
    /// Number of frames wanted at the stream's frame rate.
    pub frames: u64,
    /// The reference image path (on talkstream's machine).
    pub ref_image: String,
    /// Over TCP: the SHA-256 (lower-case hex) of the reference image file's bytes, so a worker
    /// on another machine knows which image it is (absent over stdin/stdout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_image_sha256: Option<String>,
    /// Over TCP: the reference image file itself (standard base64), sent when the connection
    /// has not carried that image among its last [`REF_IMAGES_KEPT`] ones; the worker keeps at
    /// least that many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_image_data: Option<String>,
}

/// How many reference images (the most recent) a worker keeps per connection, and talkstream
/// counts on it keeping: an image among them is named by its hash alone.
pub const REF_IMAGES_KEPT: usize = 4;

/// End of a window's frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// The request id.
    pub id: u64,
    /// Frames sent for it.
    pub frames: u64,
}

/// A failure report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMsg {
    /// The request that failed, or `null` for a worker-level problem.
    pub id: Option<u64>,
    /// What went wrong.
    pub message: String,
}

/// Forget a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndSession {
    /// The session id.
    pub session: String,
}

/// One protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// See [`Hello`].
    Hello(Hello),
    /// A window and its PCM.
    Window(WindowHeader, Vec<i16>),
    /// One I420 picture for request `id`, planes packed as the handshake's size.
    Frame {
        /// The request id.
        id: u64,
        /// Y plane, then U, then V.
        data: Vec<u8>,
    },
    /// See [`Done`].
    Done(Done),
    /// See [`ErrorMsg`].
    Error(ErrorMsg),
    /// See [`EndSession`].
    EndSession(EndSession),
    /// Exit.
    Shutdown,
    /// See [`Auth`].
    Auth(Auth),
}

/// Why a message could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The stream failed or ended inside a message.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
}

impl Message {
    /// The type byte.
    pub fn kind(&self) -> u8 {
        match self {
            Self::Hello(_) => kind::HELLO,
            Self::Window(..) => kind::WINDOW,
            Self::Frame { .. } => kind::FRAME,
            Self::Done(_) => kind::DONE,
            Self::Error(_) => kind::ERROR,
            Self::EndSession(_) => kind::END_SESSION,
            Self::Shutdown => kind::SHUTDOWN,
            Self::Auth(_) => kind::AUTH,
        }
    }

    /// The complete encoded message: length, type, payload.
    pub fn encode(&self) -> Vec<u8> {
        fn json<T: Serialize>(v: &T) -> Vec<u8> {
            // Serializing these plain structs cannot fail.
            serde_json::to_vec(v).unwrap_or_default()
        }
        let payload: Vec<u8> = match self {
            Self::Hello(h) => json(h),
            Self::Window(h, pcm) => {
                let head = json(h);
                let mut p = Vec::with_capacity(4 + head.len() + pcm.len() * 2);
                p.extend_from_slice(&(head.len() as u32).to_be_bytes());
                p.extend_from_slice(&head);
                for s in pcm {
                    p.extend_from_slice(&s.to_le_bytes());
                }
                p
            }
            Self::Frame { id, data } => {
                let mut p = Vec::with_capacity(8 + data.len());
                p.extend_from_slice(&id.to_be_bytes());
                p.extend_from_slice(data);
                p
            }
            Self::Done(d) => json(d),
            Self::Error(e) => json(e),
            Self::EndSession(e) => json(e),
            Self::Shutdown => Vec::new(),
            Self::Auth(a) => json(a),
        };
        let mut out = Vec::with_capacity(5 + payload.len());
        out.extend_from_slice(&(payload.len() as u32 + 1).to_be_bytes());
        out.push(self.kind());
        out.extend_from_slice(&payload);
        out
    }

    /// Decodes a type byte and its payload.
    pub fn decode(kind: u8, payload: Vec<u8>) -> Result<Self, ProtocolError> {
        fn json<T: for<'de> Deserialize<'de>>(name: &str, p: &[u8]) -> Result<T, ProtocolError> {
            serde_json::from_slice(p)
                .map_err(|e| ProtocolError::Malformed(format!("{name} JSON: {e}")))
        }
        Ok(match kind {
            kind::HELLO => Self::Hello(json("HELLO", &payload)?),
            kind::WINDOW => {
                if payload.len() < 4 {
                    return Err(ProtocolError::Malformed(
                        "WINDOW shorter than 4 bytes".into(),
                    ));
                }
                let hl =
                    u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize;
                let Some(head) = payload.get(4..4usize.saturating_add(hl)) else {
                    return Err(ProtocolError::Malformed(format!(
                        "WINDOW header of {hl} bytes in a {}-byte payload",
                        payload.len()
                    )));
                };
                let h: WindowHeader = json("WINDOW", head)?;
                let body = &payload[4 + hl..];
                if !body.len().is_multiple_of(2) || (body.len() / 2) as u64 != h.samples {
                    return Err(ProtocolError::Malformed(format!(
                        "WINDOW {} announces {} samples but carries {} bytes of PCM",
                        h.id,
                        h.samples,
                        body.len()
                    )));
                }
                let pcm = body
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect();
                Self::Window(h, pcm)
            }
            kind::FRAME => {
                if payload.len() < 8 {
                    return Err(ProtocolError::Malformed(
                        "FRAME shorter than 8 bytes".into(),
                    ));
                }
                let mut idb = [0u8; 8];
                idb.copy_from_slice(&payload[..8]);
                let mut data = payload;
                data.drain(..8);
                Self::Frame {
                    id: u64::from_be_bytes(idb),
                    data,
                }
            }
            kind::DONE => Self::Done(json("DONE", &payload)?),
            kind::ERROR => Self::Error(json("ERROR", &payload)?),
            kind::END_SESSION => Self::EndSession(json("END_SESSION", &payload)?),
            kind::SHUTDOWN => Self::Shutdown,
            kind::AUTH => Self::Auth(json("AUTH", &payload)?),
            other => {
                return Err(ProtocolError::Malformed(format!(
                    "unknown message type {other}"
                )))
            }
        })
    }
}

fn check_len(len: u32) -> Result<usize, ProtocolError> {
    let len = len as usize;
    if len == 0 || len > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::Malformed(format!(
            "message length {len} (allowed 1..={MAX_MESSAGE_BYTES})"
        )));
    }
    Ok(len)
}

/// Reads one message; `Ok(None)` on a clean end of stream between messages.
pub fn read_message<R: Read>(r: &mut R) -> Result<Option<Message>, ProtocolError> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = check_len(u32::from_be_bytes(head))?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    let kind = body[0];
    body.drain(..1);
    Message::decode(kind, body).map(Some)
}

/// Writes one message (not flushed).
pub fn write_message<W: Write>(w: &mut W, m: &Message) -> Result<(), ProtocolError> {
    w.write_all(&m.encode())?;
    Ok(())
}

/// Reads one message; `Ok(None)` on a clean end of stream between messages.
pub async fn read_message_async<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<Option<Message>, ProtocolError> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut head[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        got += n;
    }
    let len = check_len(u32::from_be_bytes(head))?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    let kind = body[0];
    body.drain(..1);
    Message::decode(kind, body).map(Some)
}

/// Writes and flushes one message.
pub async fn write_message_async<W: AsyncWrite + Unpin>(
    w: &mut W,
    m: &Message,
) -> Result<(), ProtocolError> {
    w.write_all(&m.encode()).await?;
    w.flush().await?;
    Ok(())
}

/// Bytes of a packed I420 picture of `width x height` (chroma `ceil(w/2) x ceil(h/2)`).
pub fn i420_len(width: u32, height: u32) -> usize {
    let (w, h) = (width as usize, height as usize);
    w * h + 2 * w.div_ceil(2) * h.div_ceil(2)
}

/// The planes of a frame, packed (Y, U, V).
pub fn i420_bytes(f: &I420Frame) -> Vec<u8> {
    let mut v = Vec::with_capacity(f.y.len() + f.u.len() + f.v.len());
    v.extend_from_slice(&f.y);
    v.extend_from_slice(&f.u);
    v.extend_from_slice(&f.v);
    v
}

/// A frame from packed planes, if `data` has exactly [`i420_len`] bytes.
pub fn i420_from_bytes(width: u32, height: u32, mut data: Vec<u8>) -> Option<I420Frame> {
    if data.len() != i420_len(width, height) {
        return None;
    }
    let luma = width as usize * height as usize;
    let chroma = (data.len() - luma) / 2;
    let v = data.split_off(luma + chroma);
    let u = data.split_off(luma);
    Some(I420Frame {
        width,
        height,
        y: data,
        u,
        v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Message> {
        vec![
            Message::Hello(Hello {
                protocol: 1,
                width: 64,
                height: 48,
                fps: 25,
                pixel_format: "i420".into(),
                name: "t".into(),
            }),
            Message::Window(
                WindowHeader {
                    id: 9,
                    session: "s1".into(),
                    window: 2,
                    sample_rate: 16_000,
                    context_samples: 1,
                    samples: 3,
                    start_sample: 100,
                    fps: 25,
                    first_frame: 7,
                    frames: 1,
                    ref_image: "/x.png".into(),
                    ref_image_sha256: Some("ab".into()),
                    ref_image_data: Some("AAE=".into()),
                },
                vec![1, -2, 300],
            ),
            Message::Frame {
                id: 9,
                data: vec![1, 2, 3, 4, 5, 6],
            },
            Message::Done(Done { id: 9, frames: 1 }),
            Message::Error(ErrorMsg {
                id: None,
                message: "x".into(),
            }),
            Message::EndSession(EndSession {
                session: "s1".into(),
            }),
            Message::Shutdown,
            Message::Auth(Auth {
                protocol: 2,
                token: "s3cret".into(),
            }),
        ]
    }

    #[test]
    fn auth_debug_hides_the_token() {
        let m = Message::Auth(Auth {
            protocol: 2,
            token: "s3cret".into(),
        });
        assert!(!format!("{m:?}").contains("s3cret"));
    }

    #[test]
    fn round_trip_sync_and_async() {
        let mut stream = Vec::new();
        for m in all() {
            write_message(&mut stream, &m).unwrap();
        }
        let mut r = &stream[..];
        for m in all() {
            assert_eq!(read_message(&mut r).unwrap(), Some(m));
        }
        assert!(read_message(&mut r).unwrap().is_none());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut r = &stream[..];
            for m in all() {
                assert_eq!(read_message_async(&mut r).await.unwrap(), Some(m));
            }
            assert!(read_message_async(&mut r).await.unwrap().is_none());
        });
    }

    #[test]
    fn malformed_messages_are_errors() {
        let bad: Vec<Vec<u8>> = vec![
            vec![0, 0, 0, 0],
            vec![0xff, 0, 0, 0, 1],
            vec![0, 0, 0, 2, 99, 0],
            vec![0, 0, 0, 3, kind::HELLO, b'{', b'}'],
            vec![0, 0, 0, 3, kind::FRAME, 0, 0],
            vec![0, 0, 0, 9, kind::WINDOW, 0, 0, 0, 200, 1, 2, 3, 4],
            vec![0, 0, 0, 9, kind::DONE],
        ];
        for b in bad {
            assert!(read_message(&mut &b[..]).is_err(), "{b:?}");
        }
        let f = I420Frame::new(6, 4);
        let back = i420_from_bytes(6, 4, i420_bytes(&f)).unwrap();
        assert_eq!(back, f);
        assert!(i420_from_bytes(6, 4, vec![0; 5]).is_none());
    }
}
