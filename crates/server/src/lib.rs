//! talkstream server library: configuration, the `/session` protocol, HTTP routes, the
//! per-session media thread and the server shell. The `talkstream` binary (`main.rs`) is a thin
//! command-line wrapper around [`server::run`].

pub mod access;
pub mod blocking;
pub mod config;
pub mod files;
pub mod generation;
pub mod http;
pub mod listen;
pub mod load;
pub mod media_loop;
pub mod metrics;
pub mod pipeline;
pub mod producer;
pub mod protocol;
pub mod registry;
pub mod remote_worker;
pub mod render;
pub mod rtmp;
pub mod server;
pub mod session;
pub mod uploads;
pub mod voice;
pub mod webrtc;
