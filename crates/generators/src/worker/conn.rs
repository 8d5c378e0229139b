//! One handshaken connection to a worker, whatever carries it: the framed reader and writer,
//! the worker's HELLO and the [`Link`] behind them (a child process of ours, or a TCP connection
//! to a worker on another machine). The transport-independent parts live here: reading and
//! checking the HELLO, exchanging one window, noticing a connection that closed while idle, and
//! ending a connection (a child's process group is killed, a socket is closed).

use std::future::Future;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};

use crate::protocol::{
    i420_from_bytes, read_message_async, write_message_async, Hello, Message, ProtocolError,
};

use crate::ref_image::SentImages;

use super::child::ChildLink;
use super::Exchange;

/// The worker's output, buffered.
pub(super) type Reader = BufReader<Box<dyn AsyncRead + Send + Unpin>>;
/// The worker's input.
pub(super) type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// What carries the protocol.
pub(super) enum Link {
    /// A worker process we started (stdin/stdout).
    Child(ChildLink),
    /// A TCP connection to a worker listening at `addr`.
    Tcp {
        /// `host:port` as configured.
        addr: String,
    },
}

/// A running, handshaken worker connection.
pub(super) struct WorkerConn {
    pub(super) writer: Writer,
    reader: Reader,
    pub(super) hello: Hello,
    link: Link,
    /// The reference images this connection carried (TCP).
    pub(super) sent_images: SentImages,
}

/// What a connection looks like between two windows.
pub(super) enum Probe {
    /// Open, nothing unread.
    Alive,
    /// The worker closed it (exited, restarted, dropped the connection).
    Closed,
    /// The worker sent something nobody asked for.
    Unsolicited,
}

impl WorkerConn {
    pub(super) fn new(writer: Writer, reader: Reader, hello: Hello, link: Link) -> Self {
        Self {
            writer,
            reader,
            hello,
            link,
            sent_images: SentImages::default(),
        }
    }

    /// Over TCP (the worker may be on another machine)?
    pub(super) fn is_tcp(&self) -> bool {
        matches!(self.link, Link::Tcp { .. })
    }

    /// The worker's pid when it is our child.
    pub(super) fn pid(&self) -> Option<u32> {
        match &self.link {
            Link::Child(c) => c.pid(),
            Link::Tcp { .. } => None,
        }
    }

    /// For logs: `pid 123` or `tcp://host:port`.
    pub(super) fn describe(&self) -> String {
        match &self.link {
            Link::Child(c) => format!("pid {}", c.pid().unwrap_or(0)),
            Link::Tcp { addr } => format!("tcp://{addr}"),
        }
    }

    /// Without waiting: is the connection still open and quiet? (A worker restarted between
    /// windows is noticed here instead of failing the next window.)
    pub(super) fn probe(&mut self) -> Probe {
        let mut cx = Context::from_waker(Waker::noop());
        let fill = std::pin::pin!(self.reader.fill_buf());
        match fill.poll(&mut cx) {
            Poll::Pending => Probe::Alive,
            Poll::Ready(Ok([])) | Poll::Ready(Err(_)) => Probe::Closed,
            Poll::Ready(Ok(_)) => Probe::Unsolicited,
        }
    }

    /// End it at once (a child's group is killed); returns the child's last stderr lines.
    pub(super) async fn kill(self) -> String {
        match self.link {
            Link::Child(c) => c.kill().await,
            Link::Tcp { .. } => String::new(),
        }
    }

    /// After EOF/EPIPE: how it ended (a child's exit status) and its last stderr lines.
    pub(super) async fn death(self) -> (String, String) {
        match self.link {
            Link::Child(c) => c.death().await,
            Link::Tcp { addr } => (format!("the connection to {addr} closed"), String::new()),
        }
    }

    /// Polite stop: SHUTDOWN (a child exits; a TCP worker ends only this connection), then a
    /// child gets a moment before SIGKILL.
    pub(super) async fn stop(mut self) {
        let _ = write_message_async(&mut self.writer, &Message::Shutdown).await;
        match self.link {
            Link::Child(c) => c.stop().await,
            Link::Tcp { .. } => {}
        }
    }

    /// Sends one window and collects its frames.
    pub(super) async fn exchange(
        &mut self,
        msg: &Message,
        id: u64,
    ) -> Result<Vec<talkstream_media::I420Frame>, Exchange> {
        if write_message_async(&mut self.writer, msg).await.is_err() {
            return Err(Exchange::Died);
        }
        let (w, h) = (self.hello.width, self.hello.height);
        let mut frames = Vec::new();
        loop {
            let m = match read_message_async(&mut self.reader).await {
                Ok(Some(m)) => m,
                Ok(None) => return Err(Exchange::Died),
                Err(ProtocolError::Io(_)) => return Err(Exchange::Died),
                Err(e) => return Err(Exchange::Protocol(e.to_string())),
            };
            match m {
                Message::Frame { id: fid, data } if fid == id => {
                    let len = data.len();
                    let Some(f) = i420_from_bytes(w, h, data) else {
                        return Err(Exchange::Protocol(format!(
                            "FRAME of {len} bytes; a {w}x{h} I420 picture has {}",
                            crate::protocol::i420_len(w, h)
                        )));
                    };
                    frames.push(f);
                }
                Message::Done(d) if d.id == id => {
                    if d.frames != frames.len() as u64 {
                        tracing::debug!(
                            announced = d.frames,
                            received = frames.len(),
                            "worker DONE count differs from the frames received"
                        );
                    }
                    return Ok(frames);
                }
                Message::Error(e) if e.id == Some(id) => return Err(Exchange::Reported(e.message)),
                Message::Error(e) => {
                    return Err(Exchange::Protocol(format!(
                        "worker error outside the window: {}",
                        e.message
                    )))
                }
                other => {
                    return Err(Exchange::Protocol(format!(
                        "unexpected message type {} while waiting for window {id}",
                        other.kind()
                    )))
                }
            }
        }
    }
}

/// Why no HELLO arrived.
pub(super) enum HelloFailure {
    /// Nothing within the startup timeout.
    Timeout,
    /// The output ended (or failed) first.
    Closed,
    /// A connection-level ERROR came instead (a TCP worker refusing the connection).
    Refused(String),
    /// Something else, or something malformed, came first; or the HELLO is unusable.
    Bad(String),
}

/// Reads the first message, which must be a usable HELLO of a version in `versions`.
pub(super) async fn read_hello(
    reader: &mut Reader,
    timeout: std::time::Duration,
    versions: std::ops::RangeInclusive<u32>,
) -> Result<Hello, HelloFailure> {
    let hello = match tokio::time::timeout(timeout, read_message_async(reader)).await {
        Err(_) => return Err(HelloFailure::Timeout),
        Ok(Ok(Some(Message::Hello(h)))) => h,
        Ok(Ok(None)) | Ok(Err(ProtocolError::Io(_))) => return Err(HelloFailure::Closed),
        Ok(Ok(Some(Message::Error(e)))) if e.id.is_none() => {
            return Err(HelloFailure::Refused(e.message))
        }
        Ok(Ok(Some(other))) => {
            return Err(HelloFailure::Bad(format!(
                "expected HELLO first, got message type {}",
                other.kind()
            )))
        }
        Ok(Err(e)) => return Err(HelloFailure::Bad(format!("bad HELLO: {e}"))),
    };
    let problem = if !versions.contains(&hello.protocol) {
        Some(format!(
            "protocol version {} (talkstream speaks {} here)",
            hello.protocol,
            if versions.start() == versions.end() {
                versions.start().to_string()
            } else {
                format!("{} to {}", versions.start(), versions.end())
            }
        ))
    } else if hello.pixel_format != "i420" {
        Some(format!(
            "pixel format {:?} (only \"i420\")",
            hello.pixel_format
        ))
    } else if hello.width == 0 || hello.height == 0 || hello.width > 7680 || hello.height > 7680 {
        Some(format!("frame size {}x{}", hello.width, hello.height))
    } else if hello.fps == 0 || hello.fps > 240 {
        Some(format!("fps {}", hello.fps))
    } else {
        None
    };
    match problem {
        Some(p) => Err(HelloFailure::Bad(format!("unsupported HELLO: {p}"))),
        None => Ok(hello),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorMsg;

    fn reader(msgs: &[Message]) -> Reader {
        let bytes: Vec<u8> = msgs.iter().flat_map(Message::encode).collect();
        let inner: Box<dyn AsyncRead + Send + Unpin> = Box::new(std::io::Cursor::new(bytes));
        BufReader::new(inner)
    }

    fn hello(protocol: u32) -> Message {
        Message::Hello(Hello {
            protocol,
            width: 64,
            height: 48,
            fps: 25,
            pixel_format: "i420".into(),
            name: "t".into(),
        })
    }

    #[tokio::test]
    async fn hello_versions_and_refusals() {
        let t = std::time::Duration::from_secs(1);
        // Version 1 still works over stdio; TCP wants version 2.
        assert!(read_hello(&mut reader(&[hello(1)]), t, 1..=2).await.is_ok());
        assert!(matches!(
            read_hello(&mut reader(&[hello(1)]), t, 2..=2).await,
            Err(HelloFailure::Bad(m)) if m.contains("protocol version 1")
        ));
        let refusal = Message::Error(ErrorMsg {
            id: None,
            message: "no".into(),
        });
        assert!(matches!(
            read_hello(&mut reader(&[refusal]), t, 2..=2).await,
            Err(HelloFailure::Refused(m)) if m == "no"
        ));
        assert!(matches!(
            read_hello(&mut reader(&[]), t, 2..=2).await,
            Err(HelloFailure::Closed)
        ));
    }
}
