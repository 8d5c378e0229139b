//! The worker side of the protocol over TCP: [`serve_tcp`] accepts connections (several at
//! once: several talkstream nodes can share one worker), checks each one's AUTH message against
//! the shared token in constant time ([`token_matches`]) and then runs a full
//! [`serve_worker`] session on the connection, on its own thread with its own producer. The rule
//! for listening without a token is [`listen_policy`]. The token is never logged.

use std::io::{BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use subtle::ConstantTimeEq;

use crate::protocol::{read_message, write_message, ErrorMsg, Message, PROTOCOL_VERSION};
use crate::serve::{serve_worker, FrameProducer};

/// How long a new connection has to send its AUTH message.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// Most connections served at once; more are refused with an ERROR.
pub const MAX_CONNECTIONS: usize = 64;

/// The ERROR message a connection gets for a wrong or missing token (the client recognises it).
pub const UNAUTHORIZED: &str = "unauthorized: wrong or missing GENERATOR_WORKER_TOKEN";

/// True if `presented` equals `expected`, compared in constant time for equal lengths (the
/// length itself may leak, which says nothing useful about a random token).
pub fn token_matches(expected: &str, presented: &str) -> bool {
    bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// Whether a worker may listen on `addr` with `token`: without a token only on a loopback
/// address (reachable from this machine, or through an SSH tunnel), since anyone who can reach
/// the port could use the GPU and read what the avatar says.
pub fn listen_policy(addr: &SocketAddr, token: &str) -> Result<(), String> {
    if token.is_empty() && !addr.ip().is_loopback() {
        return Err(format!(
            "--listen {addr} accepts connections from other machines, so a token is required: \
             set GENERATOR_WORKER_TOKEN (e.g. `GENERATOR_WORKER_TOKEN=$(openssl rand -hex 16)`) \
             here and on every talkstream node, or listen on 127.0.0.1"
        ));
    }
    Ok(())
}

/// Serves the protocol on every connection `listener` accepts, forever (until accepting fails
/// for good). `token` is the shared secret (empty: only an empty token is accepted); `make`
/// builds one producer per connection.
pub fn serve_tcp<P, F>(listener: TcpListener, token: &str, make: F) -> std::io::Result<()>
where
    P: FrameProducer + 'static,
    F: Fn() -> Result<P, String> + Send + Sync + 'static,
{
    let token: Arc<str> = Arc::from(token);
    let make = Arc::new(make);
    let open = Arc::new(AtomicUsize::new(0));
    let mut consecutive_errors = 0u32;
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => {
                consecutive_errors = 0;
                s
            }
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                consecutive_errors += 1;
                tracing::warn!(error = %e, "accepting a worker connection failed");
                if consecutive_errors > 1000 {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "?".to_string(), |a| a.to_string());
        if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(%peer, "refusing a worker connection: {MAX_CONNECTIONS} already open");
            refuse(
                &stream,
                &format!("busy: {MAX_CONNECTIONS} connections open"),
            );
            continue;
        }
        let (token, make, open) = (Arc::clone(&token), Arc::clone(&make), Arc::clone(&open));
        let spawned = std::thread::Builder::new()
            .name(format!("worker-conn-{peer}"))
            .spawn(move || {
                serve_connection(stream, &peer, &token, &*make);
                open.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a thread for a worker connection");
        }
    }
    Ok(())
}

/// Sends a connection-level ERROR and closes the connection.
fn refuse(stream: &TcpStream, message: &str) {
    let mut w = stream;
    let m = Message::Error(ErrorMsg {
        id: None,
        message: message.to_string(),
    });
    let _ = write_message(&mut w, &m);
    let _ = w.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// One connection: AUTH, then a whole protocol session.
fn serve_connection<P, F>(stream: TcpStream, peer: &str, token: &str, make: &F)
where
    P: FrameProducer,
    F: Fn() -> Result<P, String>,
{
    let _ = stream.set_nodelay(true);
    if let Err(e) = stream.set_read_timeout(Some(AUTH_TIMEOUT)) {
        tracing::warn!(%peer, error = %e, "cannot set the AUTH timeout; closing");
        return;
    }
    let mut reader = BufReader::new(&stream);
    match read_message(&mut reader) {
        Ok(Some(Message::Auth(auth))) => {
            if !token_matches(token, &auth.token) {
                tracing::warn!(%peer, "refused a worker connection: wrong or missing token");
                refuse(&stream, UNAUTHORIZED);
                return;
            }
            if auth.protocol != PROTOCOL_VERSION {
                tracing::warn!(%peer, protocol = auth.protocol, "refused a worker connection: protocol version");
                refuse(
                    &stream,
                    &format!(
                        "protocol {} is not supported (this worker speaks {PROTOCOL_VERSION})",
                        auth.protocol
                    ),
                );
                return;
            }
        }
        Ok(Some(other)) => {
            tracing::warn!(%peer, kind = other.kind(), "refused a worker connection: no AUTH first");
            refuse(&stream, "expected AUTH as the first message");
            return;
        }
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "refused a worker connection: no valid AUTH");
            refuse(&stream, "expected AUTH as the first message");
            return;
        }
    }
    if let Err(e) = stream.set_read_timeout(None) {
        tracing::warn!(%peer, error = %e, "cannot clear the read timeout; closing");
        return;
    }
    let mut producer = match make() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(%peer, error = %e, "cannot set up a renderer for a connection");
            refuse(&stream, &format!("the worker cannot render: {e}"));
            return;
        }
    };
    tracing::info!(%peer, "talkstream connected");
    let writer = BufWriter::with_capacity(1 << 20, &stream);
    match serve_worker(reader, writer, &mut producer) {
        Ok(()) => tracing::info!(%peer, "talkstream disconnected"),
        Err(e) => tracing::info!(%peer, error = %e, "talkstream connection ended"),
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_policy() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abc", "abd"));
        assert!(!token_matches("abc", ""));
        assert!(!token_matches("", "abc"));
        assert!(token_matches("", ""));
        let lo: SocketAddr = "127.0.0.1:7870".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:7870".parse().unwrap();
        assert!(listen_policy(&lo, "").is_ok());
        assert!(listen_policy(&any, "t").is_ok());
        let msg = listen_policy(&any, "").unwrap_err();
        assert!(msg.contains("GENERATOR_WORKER_TOKEN"), "{msg}");
    }
}
