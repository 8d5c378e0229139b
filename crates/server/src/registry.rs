//! The live streams of this server, by stream id: what a route needs to find a stream (its
//! session, the command sender into its media thread, its outputs and their URLs, the latest
//! published segment as a watch, counters, its WebRTC output if it has one). A stream is listed
//! from the moment its media thread runs until it ends; dropping the [`Registration`] removes it.
//!
//! The watch is a [`Publisher`]: the session driver records segments from its events, and the
//! HLS sink records the edge of each playlist (last segment, parts of the open one, the end) once
//! the playlist naming it is on disk. Blocking playlist requests wait on it: no thread each.

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex};

use talkstream_media::PlaylistEdge;
use tokio::sync::watch;

use crate::pipeline::MediaCommand;
use crate::webrtc::WebRtcStream;

/// An output a stream is published to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOutput {
    /// HLS files under `/hls/<stream>/`.
    Hls {
        /// Path of the multivariant playlist on this server.
        playlist: String,
    },
    /// WebRTC playback: WHEP endpoint `/whep/<stream>`.
    WebRtc {
        /// Path of the WHEP endpoint on this server.
        whep: String,
    },
}

/// What has been published so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Published {
    /// Segments published.
    pub segments: u64,
    /// Media sequence number of the latest segment.
    pub last_msn: Option<u64>,
    /// The video playlist on disk: its last segment and the parts of the open one.
    pub video: PlaylistEdge,
    /// The captions playlist on disk, if the stream has one.
    pub subs: Option<PlaylistEdge>,
    /// True once the sink wrote the final playlists (`EXT-X-ENDLIST`).
    pub ended: bool,
}

/// The sending side of a stream's [`Published`] watch; cloned into the HLS sink.
#[derive(Debug, Clone)]
pub struct Publisher(Arc<watch::Sender<Published>>);

impl Default for Publisher {
    fn default() -> Self {
        Self(Arc::new(watch::channel(Published::default()).0))
    }
}

impl Publisher {
    /// Record a newly published segment.
    pub fn segment_published(&self, msn: u64) {
        self.0.send_modify(|p| {
            p.segments += 1;
            p.last_msn = Some(p.last_msn.map_or(msn, |m| m.max(msn)));
        });
    }

    /// Record the playlists' edges as now on disk (wakes the waiters only if they changed).
    pub fn edges_published(&self, video: PlaylistEdge, subs: Option<PlaylistEdge>, ended: bool) {
        self.0.send_if_modified(|p| {
            let changed = (p.video, p.subs, p.ended) != (video, subs, ended);
            (p.video, p.subs, p.ended) = (video, subs, ended);
            changed
        });
    }

    /// A receiver.
    pub fn subscribe(&self) -> watch::Receiver<Published> {
        self.0.subscribe()
    }
}

/// One live stream.
#[derive(Debug)]
pub struct StreamEntry {
    /// The stream's id (the first stream of a session has the session's id).
    pub stream_id: String,
    /// The session that owns it.
    pub session_id: String,
    commands: mpsc::Sender<MediaCommand>,
    outputs: Vec<StreamOutput>,
    published: Publisher,
    webrtc: Option<WebRtcStream>,
}

impl StreamEntry {
    /// A sender of commands into the stream's media thread.
    pub fn commands(&self) -> mpsc::Sender<MediaCommand> {
        self.commands.clone()
    }

    /// The outputs the stream is published to.
    pub fn outputs(&self) -> &[StreamOutput] {
        &self.outputs
    }

    /// The HLS playlist path, if the stream has an HLS output.
    pub fn hls_playlist(&self) -> Option<&str> {
        self.outputs.iter().find_map(|o| match o {
            StreamOutput::Hls { playlist } => Some(playlist.as_str()),
            StreamOutput::WebRtc { .. } => None,
        })
    }

    /// The WHEP endpoint path, if the stream has a WebRTC output.
    pub fn whep(&self) -> Option<&str> {
        self.outputs.iter().find_map(|o| match o {
            StreamOutput::WebRtc { whep } => Some(whep.as_str()),
            StreamOutput::Hls { .. } => None,
        })
    }

    /// The stream's WebRTC output (viewers are added to it by the WHEP routes).
    pub fn webrtc(&self) -> Option<&WebRtcStream> {
        self.webrtc.as_ref()
    }

    /// Watch what is published (the latest segment); wakes on every new one.
    pub fn watch_published(&self) -> watch::Receiver<Published> {
        self.published.subscribe()
    }

    /// What is published now.
    pub fn published(&self) -> Published {
        *self.published.subscribe().borrow()
    }

    /// Record a newly published segment.
    pub fn segment_published(&self, msn: u64) {
        self.published.segment_published(msn);
    }
}

/// All live streams.
#[derive(Debug, Default)]
pub struct StreamRegistry {
    streams: Mutex<HashMap<String, Arc<StreamEntry>>>,
}

/// A listed stream; dropping it removes the stream from the registry.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<StreamRegistry>,
    entry: Arc<StreamEntry>,
}

impl Registration {
    /// The listed stream.
    pub fn entry(&self) -> &Arc<StreamEntry> {
        &self.entry
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut streams) = self.registry.streams.lock() {
            // Only remove what this registration listed (an id is never reused, but be exact).
            if streams
                .get(&self.entry.stream_id)
                .is_some_and(|e| Arc::ptr_eq(e, &self.entry))
            {
                streams.remove(&self.entry.stream_id);
            }
        }
    }
}

impl StreamRegistry {
    /// List a stream with its HLS output at `/hls/<stream_id>/index.m3u8`; `published` is the
    /// watch its HLS sink also publishes to.
    pub fn register(
        self: &Arc<Self>,
        stream_id: &str,
        session_id: &str,
        commands: mpsc::Sender<MediaCommand>,
        published: Publisher,
    ) -> Registration {
        self.register_with_webrtc(stream_id, session_id, commands, published, None)
    }

    /// [`StreamRegistry::register`], plus a WebRTC output (WHEP at `/whep/<stream_id>`) if given.
    pub fn register_with_webrtc(
        self: &Arc<Self>,
        stream_id: &str,
        session_id: &str,
        commands: mpsc::Sender<MediaCommand>,
        published: Publisher,
        webrtc: Option<WebRtcStream>,
    ) -> Registration {
        let mut outputs = vec![StreamOutput::Hls {
            playlist: format!("/hls/{stream_id}/index.m3u8"),
        }];
        if webrtc.is_some() {
            outputs.push(StreamOutput::WebRtc {
                whep: format!("/whep/{stream_id}"),
            });
        }
        let entry = Arc::new(StreamEntry {
            stream_id: stream_id.to_string(),
            session_id: session_id.to_string(),
            commands,
            outputs,
            published,
            webrtc,
        });
        if let Ok(mut streams) = self.streams.lock() {
            streams.insert(stream_id.to_string(), Arc::clone(&entry));
        }
        Registration {
            registry: Arc::clone(self),
            entry,
        }
    }

    /// The live stream with this id.
    pub fn get(&self, stream_id: &str) -> Option<Arc<StreamEntry>> {
        self.streams.lock().ok()?.get(stream_id).cloned()
    }

    /// How many streams are live.
    pub fn len(&self) -> usize {
        self.streams.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// WebRTC viewers of all live streams.
    pub fn webrtc_viewers(&self) -> usize {
        // Not under the registry's lock: each output has its own.
        let entries: Vec<Arc<StreamEntry>> = match self.streams.lock() {
            Ok(streams) => streams.values().cloned().collect(),
            Err(_) => return 0,
        };
        entries
            .iter()
            .filter_map(|e| e.webrtc.as_ref())
            .map(WebRtcStream::viewer_count)
            .sum()
    }

    /// True when no stream is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_listed_while_registered_and_publish_through_a_watch() {
        let registry = Arc::new(StreamRegistry::default());
        let (tx, rx) = mpsc::channel();
        let publisher = Publisher::default();
        let reg = registry.register(
            "00000000000000aa",
            "00000000000000aa",
            tx,
            publisher.clone(),
        );
        let entry = registry.get("00000000000000aa").unwrap();
        assert_eq!(
            entry.hls_playlist(),
            Some("/hls/00000000000000aa/index.m3u8")
        );
        assert_eq!(registry.len(), 1);

        let mut watch = entry.watch_published();
        entry.segment_published(1);
        entry.segment_published(2);
        assert!(watch.has_changed().unwrap());
        assert_eq!(
            *watch.borrow_and_update(),
            Published {
                segments: 2,
                last_msn: Some(2),
                ..Published::default()
            }
        );
        let edge = PlaylistEdge {
            last_msn: Some(2),
            open_msn: 3,
            open_parts: 1,
            ended: false,
        };
        publisher.edges_published(edge, None, false);
        assert!(watch.has_changed().unwrap());
        assert_eq!(watch.borrow_and_update().video, edge);
        publisher.edges_published(edge, None, false);
        assert!(!watch.has_changed().unwrap(), "no wake-up without a change");

        entry.commands().send(MediaCommand::Finish).unwrap();
        assert!(matches!(rx.try_recv(), Ok(MediaCommand::Finish)));

        drop(reg);
        assert!(registry.get("00000000000000aa").is_none());
        assert!(registry.is_empty());
        // Watchers see the end: the sender is gone once the last entry handle and the sink's
        // publisher go.
        drop(entry);
        assert!(watch.has_changed().is_ok());
        drop(publisher);
        assert!(watch.has_changed().is_err());
    }
}
