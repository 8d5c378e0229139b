//! Generator workers on other machines: the settings (`GENERATOR_WORKER_URL`,
//! `GENERATOR_WORKER_TOKEN`) and their validation, the [`RemoteWorker`] they describe, what
//! `talkstream check` says about the worker, and `talkstream worker --listen` (the built-in
//! renderer served over TCP to several nodes). The token is a [`Secret`]: never logged.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use talkstream_generators::{
    BuiltinRenderer, RemoteWorker, StreamFormat, WorkerConfig, WorkerGenerator,
};

use crate::config::{Config, ConfigError, GeneratorChoice, Secret};

/// Where the generator worker is when it is not a child process.
#[derive(Debug, Clone, Args)]
pub struct RemoteWorkerConfig {
    /// A generator worker listening on TCP, as tcp://host:port (e.g. `talkstream worker
    /// --listen 0.0.0.0:7870` on a GPU machine). With VIDEO_GENERATOR=worker it is used instead
    /// of starting GENERATOR_WORKER_CMD; several talkstream nodes can share one worker.
    #[arg(long, env = "GENERATOR_WORKER_URL", global = true)]
    pub generator_worker_url: Option<String>,

    /// Shared secret between talkstream and its TCP generator worker (sent in the handshake,
    /// checked by `talkstream worker --listen`, which needs it unless it listens on loopback).
    #[arg(
        long,
        env = "GENERATOR_WORKER_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub generator_worker_token: Option<Secret>,
}

/// `host:port` from `tcp://host:port`.
pub fn parse_worker_url(url: &str) -> Result<String, String> {
    let Some(rest) = url.trim().strip_prefix("tcp://") else {
        return Err("use tcp://host:port (the only scheme)".into());
    };
    let rest = rest.trim_end_matches('/');
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err("the port is missing: use tcp://host:port".into());
    };
    if host.is_empty() || host.contains('/') || host.contains('@') {
        return Err("use tcp://host:port".into());
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(rest.to_string()),
        _ => Err(format!("port {port:?} is not a number from 1 to 65535")),
    }
}

impl RemoteWorkerConfig {
    /// The shared token, empty when unset.
    pub fn token(&self) -> String {
        Secret::non_empty(&self.generator_worker_token).unwrap_or_default()
    }

    /// Checks the URL and how it fits the other generator settings.
    pub fn validate(&self, choice: GeneratorChoice, worker_cmd: &str) -> Result<(), ConfigError> {
        let Some(url) = &self.generator_worker_url else {
            return Ok(());
        };
        let invalid = |why: String| ConfigError::Invalid {
            name: "GENERATOR_WORKER_URL",
            value: url.clone(),
            why,
        };
        parse_worker_url(url).map_err(invalid)?;
        if choice != GeneratorChoice::Worker {
            return Err(invalid(format!(
                "it is used only with VIDEO_GENERATOR=worker (now {})",
                choice.as_str()
            )));
        }
        if !worker_cmd.trim().is_empty() {
            return Err(invalid(
                "GENERATOR_WORKER_CMD is set too: set one of them".into(),
            ));
        }
        Ok(())
    }

    /// The remote worker, when the URL is set and valid.
    pub fn remote(&self) -> Option<RemoteWorker> {
        let addr = parse_worker_url(self.generator_worker_url.as_deref()?).ok()?;
        Some(RemoteWorker {
            addr,
            token: self.token(),
        })
    }
}

/// `talkstream check`'s line for a TCP worker: `None` unless VIDEO_GENERATOR=worker with a
/// GENERATOR_WORKER_URL; else what was checked and whether it answered the handshake.
pub async fn check(config: &Config) -> Option<(String, Result<String, String>)> {
    if config.video_generator != GeneratorChoice::Worker {
        return None;
    }
    let remote = config.remote_worker.remote()?;
    let what = format!("video worker: tcp://{}", remote.addr);
    let mut cfg = WorkerConfig::remote(remote);
    cfg.startup_timeout = Duration::from_secs(10);
    let format = StreamFormat {
        width: config.width,
        height: config.height,
        fps: config.fps,
    };
    let result = match WorkerGenerator::new(cfg, format) {
        Ok(g) => {
            let r = g.warm_up("").await;
            talkstream_generators::VideoGenerator::shutdown(&g).await;
            r.map(|h| {
                format!(
                    "answered the handshake: {:?}, {}x{} at {} fps, protocol {}",
                    h.name, h.width, h.height, h.fps, h.protocol
                )
            })
            .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    Some((what, result))
}

/// `talkstream worker --listen ADDR`: the built-in renderer for every connection that presents
/// GENERATOR_WORKER_TOKEN; refuses to start without a token on a non-loopback address.
pub fn listen(config: &Config, addr: SocketAddr) -> Result<(), String> {
    let token = config.remote_worker.token();
    talkstream_generators::serve_tcp::listen_policy(&addr, &token)?;
    let (w, h, fps) = (config.width, config.height, config.fps);
    // Fail now, not on the first connection, if the size cannot be drawn.
    BuiltinRenderer::new(w, h, fps, 1)?;
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("reading the bound address: {e}"))?;
    tracing::info!(
        token = if token.is_empty() { "none" } else { "set" },
        "generator worker on {local}: {w}x{h} at {fps} fps"
    );
    println!("talkstream worker listening on {local} (Ctrl-C stops)");
    talkstream_generators::serve_tcp::serve_tcp(listener, &token, move || {
        BuiltinRenderer::new(w, h, fps, 1)
    })
    .map_err(|e| format!("accepting connections on {local}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_worker_url("tcp://gpu1:7870").unwrap(),
            "gpu1:7870".to_string()
        );
        assert_eq!(parse_worker_url("tcp://[::1]:7870/").unwrap(), "[::1]:7870");
        for bad in [
            "http://gpu1:7870",
            "gpu1:7870",
            "tcp://gpu1",
            "tcp://:7870",
            "tcp://gpu1:0",
            "tcp://gpu1:seventy",
            "tcp://user@gpu1:7870",
        ] {
            assert!(parse_worker_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_url_fits_the_other_generator_settings() {
        let cfg = |url: &str| RemoteWorkerConfig {
            generator_worker_url: Some(url.into()),
            generator_worker_token: Some(Secret("tok-123".into())),
        };
        let ok = cfg("tcp://gpu1:7870");
        ok.validate(GeneratorChoice::Worker, "").unwrap();
        let remote = ok.remote().unwrap();
        assert_eq!(
            (remote.addr.as_str(), remote.token.as_str()),
            ("gpu1:7870", "tok-123")
        );
        assert!(
            !format!("{ok:?} {remote:?}").contains("tok-123"),
            "never shown"
        );
        let msg = ok
            .validate(GeneratorChoice::Builtin, "")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("VIDEO_GENERATOR=worker"), "{msg}");
        let msg = ok
            .validate(GeneratorChoice::Worker, "python w.py")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("GENERATOR_WORKER_CMD"), "{msg}");
        let msg = cfg("http://gpu1:7870")
            .validate(GeneratorChoice::Worker, "")
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("GENERATOR_WORKER_URL=http://gpu1:7870"),
            "{msg}"
        );
    }
}
