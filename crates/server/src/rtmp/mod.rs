//! Go live: every session's stream (the same H.264 and AAC as HLS and WebRTC, idle and speech)
//! published to an RTMP ingest (YouTube, Twitch, nginx-rtmp, mediamtx, LiveKit Ingress). The
//! setting (`RTMP_PUBLISH_URL`, [`target`]), the connection ([`connection`], the RTMP protocol
//! from `rml_rtmp`), the publisher task with its retries and state ([`publisher`]) and the media
//! sink that feeds it ([`sink`]); the FLV tags come from `talkstream_media::flv`.

pub mod connection;
pub mod publisher;
pub mod sink;
pub mod target;

use std::time::Duration;

pub use connection::{Connection, RtmpError, StreamInfo};
pub use publisher::{PublishState, PublishStatus, RtmpOutput};
pub use sink::RtmpSink;
pub use target::{RtmpTarget, TargetError};

use crate::config::{ConfigError, Secret};

/// RTMP publishing settings.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RtmpConfig {
    /// Publish every session's stream to this RTMP ingest, e.g.
    /// `rtmp://a.rtmp.youtube.com/live2/<stream key>` (one avatar) or
    /// `rtmp://media:1935/live/{session_id}` (`{session_id}` becomes the session's id). The
    /// stream key is a secret: never logged or sent to the page. Default: off.
    #[arg(long, env = "RTMP_PUBLISH_URL", global = true)]
    pub rtmp_publish_url: Option<Secret>,
}

impl RtmpConfig {
    /// The URL template, when publishing is on.
    pub fn url(&self) -> Option<String> {
        Secret::non_empty(&self.rtmp_publish_url).filter(|url| !url.trim().is_empty())
    }

    /// The ingest for one session.
    pub fn target(&self, session_id: &str) -> Option<Result<RtmpTarget, TargetError>> {
        self.url().map(|url| RtmpTarget::parse(&url, session_id))
    }

    /// A URL that cannot work stops the server with one line (without the stream key).
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.target("0123456789abcdef") {
            Some(Err(e)) => Err(ConfigError::Invalid {
                name: "RTMP_PUBLISH_URL",
                value: "(not shown: it holds the stream key)".into(),
                why: e.to_string(),
            }),
            Some(Ok(_)) | None => Ok(()),
        }
    }
}

/// `talkstream check`: does the ingest take an RTMP connection to the application? (Nothing
/// is published.) Returns what was reached.
pub async fn probe(config: &RtmpConfig, timeout: Duration) -> Option<Result<String, RtmpError>> {
    let target = match config.target("talkstream-check")? {
        Ok(t) => t,
        Err(e) => return Some(Err(RtmpError::Target(e))),
    };
    Some(Connection::open(&target, timeout).await.map(|_| {
        format!(
            "{target} accepts connections to application {:?}",
            target.app
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> RtmpConfig {
        RtmpConfig {
            rtmp_publish_url: Some(Secret(url.into())),
        }
    }

    #[test]
    fn off_by_default_and_an_unusable_url_stops_the_server_without_showing_the_key() {
        assert!(RtmpConfig::default().url().is_none());
        assert!(RtmpConfig::default().validate().is_ok());
        assert!(config("  ").url().is_none(), "blank is off");
        assert!(config("rtmp://h/live/{session_id}").validate().is_ok());
        let msg = config("rtmps://h/live/SECRETKEY")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("RTMP_PUBLISH_URL="), "{msg}");
        assert!(msg.contains("rtmps"), "{msg}");
        assert!(!msg.contains("SECRETKEY"), "{msg}");
    }

    #[test]
    fn each_session_gets_its_own_key_from_the_template() {
        let c = config("rtmp://media:1935/live/{session_id}");
        let a = c.target("aaaa").unwrap().unwrap();
        let b = c.target("bbbb").unwrap().unwrap();
        assert_eq!((a.key.as_str(), b.key.as_str()), ("aaaa", "bbbb"));
    }
}
