//! Turning audio into avatar frames, shared by the live media thread and the offline
//! `talkstream render` command: [`FaceRenderer`] owns the avatar, the lip-sync analyzer and the
//! frame buffers; [`render_offline`] renders a whole utterance into a normal MP4 with sound.

use std::io::Write;
use std::path::{Path, PathBuf};

use talkstream_avatar::{AvatarError, Face, LipSync, Motion, MouthPose, Portrait};
use talkstream_generators::mp4::{write_mp4, MuxSample, MuxTrack};
use talkstream_media::video::H264Encoder;
use talkstream_media::wav::{parse_wav, WavError};
use talkstream_media::{ChannelConfig, I420Frame, LiveChannel, MediaError, Output};
use talkstream_providers::{Chunker, ChunkerConfig, Resampler, TtsError, WordTiming};

use crate::voice::BuiltInVoice;

/// Renders avatar frames whose mouth follows the audio pushed into it.
pub struct FaceRenderer {
    avatar: Face,
    /// Output size, which a replacing face must have.
    size: (u32, u32),
    lipsync: LipSync,
    rgba: Vec<u8>,
    frame: I420Frame,
    /// What the last rendered frame was drawn with.
    last_pose: (MouthPose, Motion),
}

impl FaceRenderer {
    /// A renderer for the channel's picture size, audio rate and frame rate: the drawn avatar,
    /// or the user's portrait when one is given.
    pub fn new(
        cfg: &ChannelConfig,
        seed: u64,
        portrait: Option<&Portrait>,
    ) -> Result<Self, AvatarError> {
        Ok(Self {
            avatar: Face::new(cfg.width, cfg.height, seed, portrait)?,
            size: (cfg.width, cfg.height),
            lipsync: LipSync::new(cfg.sample_rate, cfg.fps),
            rgba: vec![0u8; cfg.width as usize * cfg.height as usize * 4],
            frame: I420Frame::new(cfg.width, cfg.height),
            last_pose: (MouthPose::CLOSED, Motion::STILL),
        })
    }

    /// Show `face` from the next frame on. The lip-sync keeps its state, so speech under way
    /// goes on in the new face. A face of another size is refused.
    pub fn set_face(&mut self, face: Face) -> Result<(), AvatarError> {
        if (face.width(), face.height()) != self.size {
            return Err(AvatarError::InvalidSize {
                width: face.width(),
                height: face.height(),
            });
        }
        self.avatar = face;
        Ok(())
    }

    /// The lip-sync analyzer (push speech audio and timing hints into it).
    pub fn lipsync(&mut self) -> &mut LipSync {
        &mut self.lipsync
    }

    /// Advance the lip-sync past frame `n` without drawing it (another source supplies it).
    pub fn skip(&mut self, n: u64) {
        let _ = self.lipsync.pose_for_frame(n);
    }

    /// The last rendered picture (blank before the first), to repeat it.
    pub fn last_frame(&self) -> &I420Frame {
        &self.frame
    }

    /// Render frame `n` at media time `t_ms`.
    pub fn render(&mut self, n: u64, t_ms: u64) -> Result<&I420Frame, AvatarError> {
        let mouth = self.lipsync.pose_for_frame(n);
        let motion = self.avatar.motion_at(t_ms);
        self.avatar
            .render_rgba_with_motion(&motion, mouth, &mut self.rgba)?;
        self.last_pose = (mouth, motion);
        self.frame.fill_from_rgba(&self.rgba);
        Ok(&self.frame)
    }

    /// The mouth pose and the idle motion the last rendered frame was drawn with.
    pub fn last_pose(&self) -> (MouthPose, Motion) {
        self.last_pose
    }
}

/// Why an offline render failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The input audio file could not be read.
    #[error("cannot read {path}: {source}")]
    Input {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The input audio file is not a WAV file this reads.
    #[error("{path}: {source}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// What is wrong with it, and where in the file.
        source: WavError,
    },
    /// The input audio's rate cannot be converted to the stream's.
    #[error("audio: {0}")]
    Resample(#[from] talkstream_providers::ResampleError),
    /// Speech synthesis failed.
    #[error("speech synthesis: {0}")]
    Tts(#[from] TtsError),
    /// Encoding failed.
    #[error("encoding: {0}")]
    Media(#[from] MediaError),
    /// Rendering failed.
    #[error("rendering: {0}")]
    Avatar(#[from] AvatarError),
    /// The output could not be written.
    #[error("cannot write {path}: {source}")]
    Output {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// What to say in an offline render.
pub enum RenderSource<'a> {
    /// Text spoken by the built-in voice (Piper or eSpeak NG, as the server would speak).
    Text(&'a str, &'a BuiltInVoice),
    /// A WAV file (PCM 16-bit or float, any rate, mono or stereo).
    Audio(&'a Path),
}

/// `text` spoken clause by clause, as a session speaks it (the chunker's cuts; a neural voice
/// phrases a clause better than a page), the audio joined and the word times running on.
fn speak(text: &str, voice: &BuiltInVoice) -> Result<(Vec<i16>, u32, Vec<WordTiming>), TtsError> {
    let mut chunker = Chunker::new(ChunkerConfig::default());
    let mut clauses = chunker.push(text, 0);
    clauses.extend(chunker.finish());
    let (mut pcm, mut rate, mut words) = (Vec::new(), 0, Vec::new());
    for clause in clauses {
        let chunk = voice.synthesize_blocking(&clause)?;
        let offset_ms = if chunk.sample_rate == 0 {
            0
        } else {
            pcm.len() as u64 * 1000 / u64::from(chunk.sample_rate)
        };
        rate = chunk.sample_rate;
        words.extend(chunk.words.into_iter().map(|w| WordTiming {
            start_ms: w.start_ms + offset_ms,
            end_ms: w.end_ms + offset_ms,
            ..w
        }));
        pcm.extend(chunk.pcm);
    }
    Ok((pcm, rate, words))
}

/// Tail of silence after the speech, so the mouth closes on screen.
const TAIL_MS: u64 = 400;

/// Options of an offline render.
#[derive(Debug, Clone, Default)]
pub struct OfflineOptions {
    /// Exact length in ms (audio padded or cut); `None`: the audio plus a short silent tail.
    pub duration_ms: Option<u64>,
    /// Video only, as a plain (non-fragmented) MP4 (the InfiniteTalk command contract).
    pub no_audio: bool,
    /// Write one JSON line per video frame with the pose it was drawn with (see [`PoseLog`]).
    pub pose_log: Option<PathBuf>,
}

/// `--pose-log`: one JSON line per video frame with what the renderer commanded,
/// `{"frame":n,"t_ms":…,"blink":…}` plus every field of the mouth pose (`open`, `wide`, …).
pub struct PoseLog {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
}

impl PoseLog {
    /// Creates (truncates) the file.
    pub fn create(path: &Path) -> Result<Self, RenderError> {
        let file = std::fs::File::create(path).map_err(|source| RenderError::Output {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(PoseLog {
            path: path.to_path_buf(),
            out: std::io::BufWriter::new(file),
        })
    }

    /// One frame's line.
    pub fn frame(
        &mut self,
        n: u64,
        t_ms: u64,
        (mouth, motion): (MouthPose, Motion),
    ) -> Result<(), RenderError> {
        let mut line = serde_json::Map::new();
        line.insert("frame".into(), n.into());
        line.insert("t_ms".into(), t_ms.into());
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(mouth) {
            line.extend(fields);
        }
        line.insert("blink".into(), f64::from(motion.blink).into());
        writeln!(self.out, "{}", serde_json::Value::Object(line)).map_err(|e| self.error(e))
    }

    /// Flushes the file.
    pub fn finish(mut self) -> Result<(), RenderError> {
        self.out.flush().map_err(|e| self.error(e))
    }

    fn error(&self, source: std::io::Error) -> RenderError {
        RenderError::Output {
            path: self.path.clone(),
            source,
        }
    }
}

/// Render `source` into a normal MP4 (H.264 + AAC, or H.264 alone with `no_audio`) at `out`,
/// reporting progress (0..=1) to `progress`. Returns the duration in milliseconds.
pub fn render_offline(
    source: RenderSource<'_>,
    portrait: Option<&Portrait>,
    mut cfg: ChannelConfig,
    options: OfflineOptions,
    out: &Path,
    mut progress: impl FnMut(f64),
) -> Result<u64, RenderError> {
    let (pcm, rate, words) = match source {
        RenderSource::Text(text, voice) => speak(text, voice)?,
        RenderSource::Audio(path) => {
            let (pcm, rate) = read_wav(path)?;
            (pcm, rate, Vec::new())
        }
    };
    if cfg.sample_rate == 0 {
        cfg.sample_rate = if talkstream_media::audio::AAC_SAMPLE_RATES.contains(&rate) {
            rate
        } else {
            48_000
        };
    }
    let mut resampler = Resampler::new(rate, cfg.sample_rate)?;
    let mut pcm = resampler.process(&pcm);
    pcm.extend(resampler.finish());
    let sr = u64::from(cfg.sample_rate);
    let total_samples = match options.duration_ms {
        Some(ms) => {
            let n = ms * sr / 1000;
            pcm.truncate(n as usize);
            n
        }
        None => pcm.len() as u64 + TAIL_MS * sr / 1000,
    };
    let mut log = match &options.pose_log {
        Some(path) => Some(PoseLog::create(path)?),
        None => None,
    };
    if options.no_audio {
        let ms = render_video_only(
            &pcm,
            &words,
            total_samples,
            portrait,
            &cfg,
            out,
            log.as_mut(),
            progress,
        )?;
        return match log {
            Some(log) => log.finish().map(|()| ms),
            None => Ok(ms),
        };
    }

    cfg.subtitles = false;
    let mut channel = LiveChannel::new(cfg.clone(), 0)?;
    let mut face = FaceRenderer::new(&cfg, 1, portrait)?;
    face.lipsync().push_audio(0, &pcm);
    for w in &words {
        face.lipsync().add_hint(w.start_ms, w.end_ms, &w.text);
    }
    let mut init = Vec::new();
    let mut segments: Vec<Vec<u8>> = Vec::new();
    let mut collect = |outputs: Vec<Output>| {
        for o in outputs {
            match o {
                Output::Init { bytes, .. } => init = bytes,
                Output::Segment { name, bytes, .. } if name.ends_with(".m4s") => {
                    segments.push(bytes)
                }
                _ => {}
            }
        }
    };
    let mut pos: u64 = 0;
    let mut frame_pcm = Vec::new();
    while pos < total_samples {
        let n = channel.next_frame_index();
        let t_ms = channel.frame_time_ms(n);
        let need = channel.samples_for_frame(n);
        frame_pcm.clear();
        let from = (pos as usize).min(pcm.len());
        let to = (from + need).min(pcm.len());
        frame_pcm.extend_from_slice(&pcm[from..to]);
        frame_pcm.resize(need, 0);
        pos += need as u64;
        face.render(n, t_ms)?;
        if let Some(log) = log.as_mut() {
            log.frame(n, t_ms, face.last_pose())?;
        }
        collect(channel.push_frame(face.last_frame(), &frame_pcm, 0)?);
        progress((pos as f64 / total_samples as f64).min(1.0));
    }
    collect(channel.finish(0)?);
    if let Some(log) = log {
        log.finish()?;
    }
    let duration_ms = channel.published_duration_ms();
    let seg_refs: Vec<&[u8]> = segments.iter().map(Vec::as_slice).collect();
    let bytes = talkstream_media::offline_mp4(&init, &seg_refs, duration_ms)?;
    std::fs::write(out, bytes).map_err(|source| RenderError::Output {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(duration_ms)
}

/// The InfiniteTalk contract's output: H.264 frames in a plain MP4, no audio track.
#[allow(clippy::too_many_arguments)]
fn render_video_only(
    pcm: &[i16],
    words: &[talkstream_providers::WordTiming],
    total_samples: u64,
    portrait: Option<&Portrait>,
    cfg: &ChannelConfig,
    out: &Path,
    mut log: Option<&mut PoseLog>,
    mut progress: impl FnMut(f64),
) -> Result<u64, RenderError> {
    let sr = u64::from(cfg.sample_rate);
    let fps = u64::from(cfg.fps);
    let frames = (total_samples * fps).div_ceil(sr).max(1);
    let mut face = FaceRenderer::new(cfg, 1, portrait)?;
    face.lipsync().push_audio(0, pcm);
    for w in words {
        face.lipsync().add_hint(w.start_ms, w.end_ms, &w.text);
    }
    let mut encoder = H264Encoder::new(cfg.width, cfg.height, cfg.fps, cfg.video_bitrate_kbps)?;
    let timescale = 90_000u32;
    let mut samples = Vec::with_capacity(frames as usize);
    for n in 0..frames {
        let t_ms = n * 1000 / fps;
        face.render(n, t_ms)?;
        if let Some(log) = log.as_deref_mut() {
            log.frame(n, t_ms, face.last_pose())?;
        }
        let encoded = encoder.encode(face.last_frame(), n == 0)?;
        let start = n * u64::from(timescale) / fps;
        let end = (n + 1) * u64::from(timescale) / fps;
        samples.push(MuxSample {
            data: encoded.data,
            duration: (end - start) as u32,
            is_sync: encoded.is_idr,
        });
        progress((n + 1) as f64 / frames as f64);
    }
    let (Some(sps), Some(pps)) = (encoder.sps(), encoder.pps()) else {
        return Err(RenderError::Media(MediaError::ChannelFailed));
    };
    let track = MuxTrack {
        width: u16::try_from(cfg.width).unwrap_or(u16::MAX),
        height: u16::try_from(cfg.height).unwrap_or(u16::MAX),
        timescale,
        sps: sps.to_vec(),
        pps: pps.to_vec(),
        samples_per_chunk: 25,
        co64: false,
    };
    std::fs::write(out, write_mp4(&track, &samples)).map_err(|source| RenderError::Output {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(frames * 1000 / fps)
}

/// A progress bar on stderr: redrawn in place on a terminal, every 10 % otherwise.
pub fn progress_bar(label: &'static str) -> impl FnMut(f64) {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let mut last_shown = -1i64;
    move |p: f64| {
        let pct = (p * 100.0).round() as i64;
        let step = if tty { 1 } else { 10 };
        if pct / step == last_shown / step && pct != 100 || pct == last_shown {
            return;
        }
        last_shown = pct;
        let filled = (p * 30.0).round() as usize;
        let bar = format!("{}{}", "#".repeat(filled), "-".repeat(30 - filled.min(30)));
        let mut err = std::io::stderr();
        if tty {
            let _ = write!(err, "\r{label} [{bar}] {pct:3}%");
            if pct >= 100 {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "{label} [{bar}] {pct:3}%");
        }
    }
}

/// Read a WAV file as mono 16-bit samples and its sample rate. Accepts PCM 8/16/24/32-bit and
/// 32-bit float, any number of channels (mixed down).
pub fn read_wav(path: &Path) -> Result<(Vec<i16>, u32), RenderError> {
    let data = std::fs::read(path).map_err(|source| RenderError::Input {
        path: path.to_path_buf(),
        source,
    })?;
    parse_wav(&data).map_err(|source| RenderError::Wav {
        path: path.to_path_buf(),
        source,
    })
}
