//! The WebRTC output's I/O: [`WebRtcHub`] owns the one UDP socket all viewers of all streams
//! share, and its tokio task routes each datagram to the viewer that accepts it (str0m's
//! `accepts`), drives every output's timers and due frames with the clock, and sends what they
//! return. [`WebRtcStream`] is one stream's handle: the media sink pushes units into it, the
//! WHEP routes add and remove viewers through it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use talkstream_media::encoder::FrameEncoder;
use talkstream_media::EncodedUnit;
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::output::{OutputConfig, WebRtcOutput};
use super::{WebRtcConfig, WebRtcError};

/// The I/O task wakes at least this often (housekeeping of ended streams).
const MAX_SLEEP: Duration = Duration::from_millis(50);
/// Largest datagram read (WebRTC keeps packets under the path MTU).
const RECV_BUF: usize = 2048;

/// One stream's WebRTC output, shared by the media sink, the WHEP routes and the I/O task.
/// Dropping every handle ends the output (the hub forgets it).
#[derive(Debug, Clone)]
pub struct WebRtcStream {
    output: Arc<Mutex<WebRtcOutput>>,
    wake: Arc<Notify>,
}

impl WebRtcStream {
    /// Wraps an output (for tests and for [`WebRtcHub::open_stream`]).
    pub fn new(output: WebRtcOutput) -> Self {
        Self {
            output: Arc::new(Mutex::new(output)),
            wake: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, WebRtcOutput> {
        // A panic while holding the lock leaves plain data; keep serving.
        self.output.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Media sink: one encoded frame (see [`WebRtcOutput::push`]).
    pub fn push(
        &self,
        unit: &EncodedUnit,
        encoder: &FrameEncoder,
        media_start: Instant,
    ) -> Result<(), WebRtcError> {
        let result = self.lock().push(unit, encoder, media_start);
        self.wake.notify_one();
        result
    }

    /// Media sink, on barge-in: drop everything queued and not yet sent.
    pub fn clear_pending(&self) {
        self.lock().clear_pending();
        self.wake.notify_one();
    }

    /// Media sink: true if the encoder should make the next frame an IDR (throttled).
    pub fn take_keyframe_request(&self, now: Instant) -> bool {
        self.lock().take_keyframe_request(now)
    }

    /// WHEP: answer an offer; returns the viewer id and the SDP answer.
    pub fn add_viewer(&self, offer: &str, now: Instant) -> Result<(String, String), WebRtcError> {
        let result = self.lock().add_viewer(offer, now);
        self.wake.notify_one();
        result
    }

    /// WHEP: end a viewer; false if it is not (or no longer) there.
    pub fn remove_viewer(&self, id: &str) -> bool {
        let removed = self.lock().remove_viewer(id);
        self.wake.notify_one();
        removed
    }

    /// Viewers now.
    pub fn viewer_count(&self) -> usize {
        self.lock().viewer_count()
    }

    /// True if this viewer is listed.
    pub fn has_viewer(&self, id: &str) -> bool {
        self.lock().has_viewer(id)
    }

    /// Runs `f` on the output (tests, diagnostics).
    pub fn with_output<T>(&self, f: impl FnOnce(&mut WebRtcOutput) -> T) -> T {
        f(&mut self.lock())
    }
}

/// The server's WebRTC side: the shared UDP socket, its task, and the live outputs by stream id.
#[derive(Debug)]
pub struct WebRtcHub {
    max_viewers: usize,
    candidate: SocketAddr,
    outputs: Mutex<HashMap<String, Weak<Mutex<WebRtcOutput>>>>,
    wake: Arc<Notify>,
}

impl WebRtcHub {
    /// Binds the UDP socket (`WEBRTC_UDP_PORT`, default `http_port`) on `host` and starts the I/O
    /// task on the current tokio runtime; it stops when `shutdown` fires.
    pub fn start(
        cfg: &WebRtcConfig,
        host: IpAddr,
        http_port: u16,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, WebRtcError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| WebRtcError::NoRuntime)?;
        let addr = SocketAddr::new(host, cfg.webrtc_udp_port.unwrap_or(http_port));
        let bind = |source| WebRtcError::Bind { addr, source };
        let std_socket = StdUdpSocket::bind(addr).map_err(bind)?;
        std_socket.set_nonblocking(true).map_err(bind)?;
        let local = std_socket.local_addr().map_err(bind)?;
        let socket = {
            let _guard = runtime.enter();
            UdpSocket::from_std(std_socket).map_err(bind)?
        };
        let ip = advertised_ip(cfg.webrtc_public_ip, host);
        let hub = Arc::new(Self {
            max_viewers: cfg.webrtc_max_viewers,
            candidate: SocketAddr::new(ip, local.port()),
            outputs: Mutex::new(HashMap::new()),
            wake: Arc::new(Notify::new()),
        });
        tracing::info!(
            udp = %local,
            candidate = %hub.candidate,
            max_viewers = hub.max_viewers,
            "WebRTC (WHEP) ready"
        );
        runtime.spawn(run(socket, Arc::clone(&hub), shutdown));
        Ok(hub)
    }

    /// The host candidate viewers are offered.
    pub fn candidate(&self) -> SocketAddr {
        self.candidate
    }

    /// A new output for a stream whose audio is at `sample_rate`.
    pub fn open_stream(
        &self,
        stream_id: &str,
        sample_rate: u32,
    ) -> Result<WebRtcStream, WebRtcError> {
        let output = WebRtcOutput::new(OutputConfig {
            max_viewers: self.max_viewers,
            candidates: vec![self.candidate],
            sample_rate,
        })?;
        let mut stream = WebRtcStream::new(output);
        // One notifier for all streams: any push or new viewer wakes the I/O task.
        stream.wake = Arc::clone(&self.wake);
        self.lock_outputs()
            .insert(stream_id.to_string(), Arc::downgrade(&stream.output));
        self.wake.notify_one();
        Ok(stream)
    }

    fn lock_outputs(&self) -> MutexGuard<'_, HashMap<String, Weak<Mutex<WebRtcOutput>>>> {
        self.outputs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live outputs (forgetting the ended ones).
    fn live(&self) -> Vec<Arc<Mutex<WebRtcOutput>>> {
        let mut outputs = self.lock_outputs();
        outputs.retain(|stream, w| {
            let live = w.strong_count() > 0;
            if !live {
                // The stream ended: its output and its viewers are gone with it.
                tracing::info!(%stream, "WebRTC output closed");
            }
            live
        });
        outputs.values().filter_map(Weak::upgrade).collect()
    }
}

/// The address of the host candidate: `WEBRTC_PUBLIC_IP`, else the listen address, else (for
/// 0.0.0.0 / ::) the address of the interface that routes outwards, else loopback.
fn advertised_ip(public: Option<IpAddr>, host: IpAddr) -> IpAddr {
    if let Some(ip) = public {
        return ip;
    }
    if !host.is_unspecified() {
        return host;
    }
    // Connecting a UDP socket sends nothing; it only picks the route and so the source address.
    let probe = StdUdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).map(|()| s))
        .and_then(|s| s.local_addr());
    match probe {
        Ok(a) if !a.ip().is_unspecified() => a.ip(),
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

fn lock(output: &Mutex<WebRtcOutput>) -> MutexGuard<'_, WebRtcOutput> {
    output.lock().unwrap_or_else(|p| p.into_inner())
}

/// The I/O task: datagrams in, timers, due frames, datagrams out.
async fn run(socket: UdpSocket, hub: Arc<WebRtcHub>, shutdown: CancellationToken) {
    let mut buf = vec![0u8; RECV_BUF];
    let v6_socket = socket.local_addr().is_ok_and(|a| a.is_ipv6());
    loop {
        let now = Instant::now();
        let outputs = hub.live();
        let next = outputs
            .iter()
            .filter_map(|o| lock(o).next_timeout())
            .min()
            .unwrap_or(now + MAX_SLEEP)
            .min(now + MAX_SLEEP);
        tokio::select! {
            () = shutdown.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, source)) => {
                    // On a dual-stack socket IPv4 peers arrive as ::ffff:a.b.c.d.
                    let source = SocketAddr::new(source.ip().to_canonical(), source.port());
                    let data = &buf[..n];
                    let now = Instant::now();
                    let handled = outputs
                        .iter()
                        .any(|o| lock(o).receive(now, source, hub.candidate, data));
                    if !handled {
                        tracing::trace!(%source, len = n, "UDP datagram for no WebRTC viewer");
                    }
                }
                // ICMP errors (a viewer went away) surface here on some systems; not fatal.
                Err(e) => {
                    tracing::debug!(error = %e, "WebRTC UDP receive");
                    // Never spin on an error that repeats.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
            () = tokio::time::sleep_until(next.into()) => {}
            () = hub.wake.notified() => {}
        }
        let now = Instant::now();
        for output in &outputs {
            let transmits = {
                let mut o = lock(output);
                o.poll(now);
                o.take_transmits()
            };
            for d in transmits {
                let destination = match (v6_socket, d.destination) {
                    (true, SocketAddr::V4(v4)) => {
                        SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
                    }
                    (_, other) => other,
                };
                if let Err(e) = socket.send_to(&d.data, destination).await {
                    tracing::debug!(error = %e, destination = %d.destination, "WebRTC UDP send");
                }
            }
        }
    }
    for output in hub.live() {
        lock(&output).close();
    }
    tracing::debug!("WebRTC UDP task ended");
}
