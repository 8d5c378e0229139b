//! `talkstream-media`: the sans-I/O media core of talkstream.
//!
//! This crate owns everything between a rendered picture plus PCM and the bytes of a live HLS
//! stream: I420 frames ([`video`]), H.264 encoding ([`video::H264Encoder`]), AAC-LC encoding
//! ([`audio::AacEncoder`]), fMP4/CMAF byte builders ([`fmp4`]), the HLS media playlist model with
//! its retention rules ([`playlist`]), WebVTT captions ([`subtitles`]), the audio windowing for
//! video generators ([`windows`]), WAV reading and writing ([`wav`]), FLV tags for RTMP
//! publishing ([`flv`]) and the header patch that turns a channel's output into a regular MP4
//! file ([`fmp4::offline_mp4`]).
//!
//! A live stream is three stages, composed by [`LiveChannel`]:
//! [`encoder::FrameEncoder`] (frame + PCM → one [`EncodedUnit`]: timed H.264 and AAC access units
//! in shared buffers), [`segmenter::CmafSegmenter`] (units → IDR-aligned CMAF segments made of
//! chunks) and [`hls::HlsPackager`] (segments → files, playlists, captions, deletions). Outputs
//! other than HLS consume the same [`EncodedUnit`]s ([`LiveChannel::push_frame_with_unit`]).
//!
//! It never performs I/O, never reads the clock and never spawns threads of its own: time is a
//! value passed in, and every file to write or delete is returned as an [`Output`].
#![deny(missing_docs)]

pub mod audio;
pub mod channel;
mod config;
pub mod encoder;
mod error;
pub mod flv;
pub mod fmp4;
pub mod hls;
pub mod playlist;
pub mod segmenter;
pub mod subtitles;
pub mod video;
pub mod wav;
pub mod windows;

pub use channel::{
    ChannelConfig, ChunkInfo, LiveChannel, Output, PlaylistEdge, PushedFrame, SegmentInfo,
};
pub use encoder::{AudioUnit, EncodedUnit, VideoUnit};
pub use error::MediaError;
pub use fmp4::offline_mp4;
pub use video::I420Frame;
pub use windows::{AudioWindow, AudioWindows, WindowConfig};
