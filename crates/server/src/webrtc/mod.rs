//! The WebRTC output (WHEP playback): a stream's H.264 units and PCM go to browsers over WebRTC
//! with sub-second latency, beside the HLS output. Layout, from the media side to the network:
//!
//! - [`opus`]: PCM at the stream rate → 48 kHz → 20 ms Opus packets timed by sample index;
//! - [`h264`]: AVCC access units → Annex-B with SPS/PPS before IDRs;
//! - [`peer`]: one viewer on str0m (sans-I/O: offer → answer, datagrams and time in, datagrams
//!   and events out);
//! - [`output`]: one stream's viewers and its queue that releases each frame when due
//!   (sans-I/O, time passed in);
//! - [`io`]: the server side: the one UDP socket all viewers share, the task that routes
//!   datagrams and runs the timers, and [`WebRtcStream`], the handle a media sink calls;
//! - [`whep`]: the WHEP HTTP routes (`POST /whep/<stream>`, `DELETE /whep/<stream>/<viewer>`).
//!
//! Settings are [`WebRtcConfig`] (flattened into the server's `Config`).

pub mod h264;
pub mod ice;
pub mod io;
pub mod opus;
pub mod output;
pub mod peer;
pub mod sink;
pub mod whep;

use std::net::{IpAddr, SocketAddr};

pub use ice::{parse_ice_servers, IceServer, IceServersError};
pub use io::{WebRtcHub, WebRtcStream};
pub use output::{OutputConfig, WebRtcOutput};
pub use sink::WebRtcSink;

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// WebRTC (WHEP) playback settings.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct WebRtcConfig {
    /// WebRTC playback (WHEP at /whep/<session>): on or off. Off leaves HLS only.
    #[arg(long = "webrtc", env = "WEBRTC", value_enum, default_value_t = Switch::On, global = true)]
    pub webrtc: Switch,

    /// UDP port all WebRTC viewers share (media and ICE). Default: the HTTP port's number
    /// (a free port when PORT=0).
    #[arg(long, env = "WEBRTC_UDP_PORT", global = true)]
    pub webrtc_udp_port: Option<u16>,

    /// Address advertised to viewers as the WebRTC host candidate, when it is not the listen
    /// address (NAT, containers): e.g. the machine's public or LAN IP. Default: the listen
    /// address, or the primary interface's address when listening on 0.0.0.0.
    #[arg(long, env = "WEBRTC_PUBLIC_IP", global = true)]
    pub webrtc_public_ip: Option<IpAddr>,

    /// WebRTC viewers per stream at most (more get 503; HLS has no such cap).
    #[arg(long, env = "WEBRTC_MAX_VIEWERS", default_value_t = 8, global = true)]
    pub webrtc_max_viewers: usize,

    /// STUN/TURN servers the page uses to reach the WebRTC port from behind NAT or a firewall,
    /// comma-separated, e.g. `stun:stun.example.org:3478,turn:turn.example.org:3478`.
    /// Default: none (the page connects straight to the server's address).
    #[arg(long, env = "ICE_SERVERS", default_value = "", global = true)]
    pub ice_servers: String,

    /// User name for the `turn:`/`turns:` URLs in ICE_SERVERS.
    #[arg(long, env = "ICE_USERNAME", global = true)]
    pub ice_username: Option<String>,

    /// Credential for the `turn:`/`turns:` URLs in ICE_SERVERS. Every viewer's page receives
    /// it: give viewers a TURN account of their own. Never logged.
    #[arg(long, env = "ICE_CREDENTIAL", global = true)]
    pub ice_credential: Option<crate::config::Secret>,
}

impl WebRtcConfig {
    /// True unless `WEBRTC=off`.
    pub fn enabled(&self) -> bool {
        self.webrtc == Switch::On
    }

    /// The page's `iceServers` from ICE_SERVERS, ICE_USERNAME and ICE_CREDENTIAL.
    pub fn ice_servers(&self) -> Result<Vec<IceServer>, IceServersError> {
        parse_ice_servers(
            &self.ice_servers,
            self.ice_username.as_deref(),
            self.ice_credential.as_ref().map(|c| c.expose()),
        )
    }
}

/// What can go wrong in the WebRTC output.
#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    /// The viewer's SDP offer cannot be used; the reason is meant for the viewer.
    #[error("bad WHEP offer: {reason}")]
    BadOffer {
        /// Why, in words the page can show.
        reason: String,
    },
    /// The stream has its maximum number of viewers.
    #[error("this stream already has {max} WebRTC viewers (WEBRTC_MAX_VIEWERS)")]
    TooManyViewers {
        /// The cap.
        max: usize,
    },
    /// The Opus encoder refused.
    #[error("Opus encoder: {reason}")]
    Opus {
        /// The encoder's message.
        reason: &'static str,
    },
    /// The resampler to 48 kHz could not be built.
    #[error("resampling to 48 kHz: {0}")]
    Resample(#[from] talkstream_providers::ResampleError),
    /// An H.264 sample whose NAL length prefixes do not fit it.
    #[error("H.264 access unit of {len} bytes has a bad NAL length at byte {offset}")]
    BadAccessUnit {
        /// Where the bad prefix starts.
        offset: usize,
        /// The sample's size.
        len: usize,
    },
    /// An IDR came before the encoder had SPS/PPS.
    #[error("H.264 IDR without SPS/PPS from the encoder")]
    NoParameterSets,
    /// A host candidate could not be made from an address.
    #[error("WebRTC host candidate {addr}: {reason}")]
    Candidate {
        /// The address.
        addr: SocketAddr,
        /// str0m's reason.
        reason: String,
    },
    /// The UDP socket could not be bound.
    #[error(
        "cannot bind the WebRTC UDP port {addr} (set WEBRTC_UDP_PORT, or WEBRTC=off): {source}"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The UDP task needs a tokio runtime.
    #[error("the WebRTC UDP task needs a tokio runtime")]
    NoRuntime,
}
