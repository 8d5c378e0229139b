//! The crate's one error type, [`MediaError`]: every rule of the public API has a named variant
//! that carries enough context (which frame, which field, which sizes) to find the problem from a
//! single log line.

/// Everything that can go wrong in the media core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// A configuration value is out of range.
    #[error("invalid config: {field} = {value}: {reason}")]
    InvalidConfig {
        /// Name of the offending field.
        field: &'static str,
        /// The value that was given, formatted.
        value: String,
        /// What is allowed instead.
        reason: String,
    },

    /// A video frame does not match the channel/encoder size or its planes have the wrong length.
    #[error(
        "frame {frame_index}: bad frame: expected {expected_width}x{expected_height} I420 \
         (planes {expected_y}/{expected_c}/{expected_c} bytes), got {width}x{height} \
         (planes {y}/{u}/{v} bytes)"
    )]
    BadFrame {
        /// Index of the frame in the stream (0 for stand-alone encoders).
        frame_index: u64,
        /// Width the receiver expects.
        expected_width: u32,
        /// Height the receiver expects.
        expected_height: u32,
        /// Expected length of the Y plane.
        expected_y: usize,
        /// Expected length of each chroma plane.
        expected_c: usize,
        /// Width of the frame given.
        width: u32,
        /// Height of the frame given.
        height: u32,
        /// Length of the Y plane given.
        y: usize,
        /// Length of the U plane given.
        u: usize,
        /// Length of the V plane given.
        v: usize,
    },

    /// An RGBA buffer has the wrong length for the frame it should fill.
    #[error("rgba buffer for a {width}x{height} frame must be {expected} bytes, got {got}")]
    BadRgbaLength {
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
        /// width * height * 4.
        expected: usize,
        /// Length given.
        got: usize,
    },

    /// `push_frame` got the wrong number of PCM samples for the frame.
    #[error("frame {frame_index}: expected exactly {expected} PCM samples, got {got}")]
    PcmLength {
        /// Index of the frame being pushed.
        frame_index: u64,
        /// `samples_for_frame(frame_index)`.
        expected: usize,
        /// Number of samples given.
        got: usize,
    },

    /// The channel (or encoder) was finished and cannot take more input.
    #[error("{what} is finished; no more input is accepted")]
    Finished {
        /// What was finished ("channel", "AAC encoder", "playlist").
        what: &'static str,
    },

    /// An earlier encoder or writer error left the channel unusable; create a new one.
    #[error("channel failed earlier (encoder or writer error); it accepts no more input")]
    ChannelFailed,

    /// An earlier encoder error left the encoder stage ([`crate::encoder::FrameEncoder`]) in an
    /// unknown state; create a new one.
    #[error("encoder failed earlier (at frame {frame_index}); it accepts no more input")]
    EncoderFailed {
        /// Index of the frame whose encoding failed.
        frame_index: u64,
    },

    /// A unit given to the segmenter does not continue its track's timeline (units must be
    /// pushed in order, each exactly once, from the start of the stream).
    #[error("segmenter: {track} unit starts at {got}, but the timeline continues at {expected}")]
    Timeline {
        /// `"video"` (90 kHz ticks) or `"audio"` (access unit index).
        track: &'static str,
        /// Where the track's timeline continues.
        expected: u64,
        /// Where the unit starts.
        got: u64,
    },

    /// The H.264 encoder failed or produced output that cannot be used.
    #[error("H.264 encoder, frame {frame_index}: {message}")]
    VideoEncoder {
        /// Index of the frame within this encoder (0-based count of encode calls).
        frame_index: u64,
        /// What happened.
        message: String,
    },

    /// The AAC encoder failed.
    #[error("AAC encoder: {message}")]
    AudioEncoder {
        /// What happened (includes syom's error text).
        message: String,
    },

    /// The fMP4 writer was given input it cannot represent.
    #[error("fMP4 writer: {message}")]
    Fmp4 {
        /// What was wrong.
        message: String,
    },

    /// The playlist model was asked to do something the HLS rules forbid.
    #[error("playlist: {message}")]
    Playlist {
        /// What was wrong.
        message: String,
    },
}
