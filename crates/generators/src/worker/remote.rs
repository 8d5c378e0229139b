//! A worker on another machine (or another process on this one) listening on TCP: connecting
//! with a bounded wait, the AUTH handshake with the shared token, then the worker's HELLO. The
//! token goes only into the AUTH message, never into a log line or an error.

use std::time::Duration;

use tokio::io::{AsyncRead, BufReader};
use tokio::net::TcpStream;

use crate::protocol::{write_message_async, Auth, Message, ProtocolError, PROTOCOL_VERSION};
use crate::serve_tcp::UNAUTHORIZED;
use crate::GeneratorError;

use super::conn::{read_hello, HelloFailure, Link, Reader, WorkerConn};
use super::{RemoteWorker, WorkerConfig};

/// Longest wait for the TCP connection itself (the HELLO may take the startup timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects, authenticates and waits for a valid HELLO.
pub(super) async fn connect_remote(
    cfg: WorkerConfig,
    remote: RemoteWorker,
) -> Result<WorkerConn, GeneratorError> {
    let addr = remote.addr.clone();
    let wait = cfg.startup_timeout.min(CONNECT_TIMEOUT);
    let stream = match tokio::time::timeout(wait, TcpStream::connect(&addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(GeneratorError::Connect { addr, source }),
        Err(_) => {
            return Err(GeneratorError::Connect {
                addr,
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {wait:?}"),
                ),
            })
        }
    };
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let auth = Message::Auth(Auth {
        protocol: PROTOCOL_VERSION,
        token: remote.token,
    });
    if let Err(e) = write_message_async(&mut write, &auth).await {
        let source = match e {
            ProtocolError::Io(io) => io,
            other => std::io::Error::other(other.to_string()),
        };
        return Err(GeneratorError::Connect { addr, source });
    }
    let read: Box<dyn AsyncRead + Send + Unpin> = Box::new(read);
    let mut reader: Reader = BufReader::with_capacity(1 << 20, read);
    let version = PROTOCOL_VERSION..=PROTOCOL_VERSION;
    match read_hello(&mut reader, cfg.startup_timeout, version).await {
        Ok(hello) => {
            tracing::debug!(%addr, "connected to the video worker");
            Ok(WorkerConn::new(
                Box::new(write),
                reader,
                hello,
                Link::Tcp { addr },
            ))
        }
        Err(HelloFailure::Timeout) => Err(GeneratorError::Timeout {
            what: "remote worker handshake (no HELLO)",
            after: cfg.startup_timeout,
            stderr: String::new(),
        }),
        Err(HelloFailure::Closed) => Err(GeneratorError::Refused {
            addr,
            reason: "it closed the connection before its HELLO (is it a talkstream worker \
                     speaking protocol version 2?)"
                .into(),
        }),
        Err(HelloFailure::Refused(message)) if message == UNAUTHORIZED => {
            Err(GeneratorError::Refused {
                addr,
                reason: "wrong or missing token (GENERATOR_WORKER_TOKEN must be the worker's)"
                    .into(),
            })
        }
        Err(HelloFailure::Refused(reason)) => Err(GeneratorError::Refused { addr, reason }),
        Err(HelloFailure::Bad(reason)) => Err(GeneratorError::Protocol {
            reason,
            stderr: String::new(),
        }),
    }
}
