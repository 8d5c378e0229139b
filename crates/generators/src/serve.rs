//! The worker side of the protocol: [`serve_worker`] runs the message loop over any blocking
//! reader/writer (a process's stdin/stdout) for a [`FrameProducer`]. [`BuiltinRenderer`] is a
//! producer drawing talkstream's built-in avatar with [`LipSync`], one face per session, so the
//! talkstream binary can offer `talkstream worker` and tests can exercise the protocol end to
//! end; [`FnProducer`] adapts a closure. A reference image sent over the connection
//! ([`crate::ref_image`]) reaches the producer through [`FrameProducer::reference_image`].

use std::collections::HashMap;
use std::io::{Read, Write};

use talkstream_avatar::{Avatar, LipSync};
use talkstream_media::I420Frame;

use crate::protocol::{
    i420_bytes, read_message, write_message, Done, EndSession, ErrorMsg, Hello, Message,
    ProtocolError, WindowHeader, PROTOCOL_VERSION,
};
use crate::ref_image::ReceivedImages;

/// Something that renders the frames of a window.
pub trait FrameProducer {
    /// The handshake to send (size, fps, name). `protocol` and `pixel_format` are filled in by
    /// [`serve_worker`].
    fn hello(&self) -> Hello;

    /// Render the frames of `req` (context + fresh PCM in `pcm`): frame `i` is shown at stream
    /// time `req.first_frame / req.fps + i / hello().fps`; `req.frames` frames are wanted when
    /// the rates are equal. Each frame goes to `emit` as soon as it is ready (an `emit` error
    /// means talkstream went away: stop and return it).
    fn render(
        &mut self,
        req: &WindowHeader,
        pcm: &[i16],
        emit: &mut dyn FnMut(&I420Frame) -> std::io::Result<()>,
    ) -> Result<(), RenderFailure>;

    /// Forget a session's state.
    fn end_session(&mut self, _session: &str) {}

    /// The window's reference image, when talkstream sent the file over the connection (TCP;
    /// the header's `ref_image` path is on talkstream's machine): called before
    /// [`render`](Self::render) for every window that names one, with the file's SHA-256 (hex)
    /// and bytes. Producers that animate the reference image take it from here.
    fn reference_image(&mut self, _session: &str, _sha256: &str, _image: &[u8]) {}
}

/// Why [`FrameProducer::render`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum RenderFailure {
    /// The window could not be rendered; reported to talkstream as an ERROR, the loop goes on.
    #[error("{0}")]
    Window(String),
    /// Writing a frame failed (talkstream went away); the loop ends.
    #[error("writing a frame: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the worker protocol until SHUTDOWN or the end of `reader`: sends HELLO, then answers
/// every WINDOW with FRAME messages (flushed one by one) and DONE, or ERROR.
pub fn serve_worker<R: Read, W: Write, P: FrameProducer + ?Sized>(
    mut reader: R,
    mut writer: W,
    producer: &mut P,
) -> Result<(), ProtocolError> {
    let mut hello = producer.hello();
    hello.protocol = PROTOCOL_VERSION;
    hello.pixel_format = "i420".into();
    let (w, h) = (hello.width, hello.height);
    write_message(&mut writer, &Message::Hello(hello))?;
    writer.flush()?;
    let mut images = ReceivedImages::default();
    while let Some(msg) = read_message(&mut reader)? {
        match msg {
            Message::Window(req, pcm) => {
                let id = req.id;
                match images.resolve(&req) {
                    Ok(Some((sha, image))) => producer.reference_image(&req.session, &sha, &image),
                    Ok(None) => {}
                    Err(e) => {
                        let m = Message::Error(ErrorMsg {
                            id: Some(id),
                            message: e.to_string(),
                        });
                        write_message(&mut writer, &m)?;
                        writer.flush()?;
                        continue;
                    }
                }
                let mut sent = 0u64;
                let mut bad_size = None;
                let mut emit = |f: &I420Frame| -> std::io::Result<()> {
                    if f.width != w || f.height != h || !f.planes_consistent() {
                        bad_size.get_or_insert((f.width, f.height));
                        return Ok(());
                    }
                    let m = Message::Frame {
                        id,
                        data: i420_bytes(f),
                    };
                    writer.write_all(&m.encode())?;
                    writer.flush()?;
                    sent += 1;
                    Ok(())
                };
                let result = producer.render(&req, &pcm, &mut emit);
                let reply = match (result, bad_size) {
                    (Err(RenderFailure::Io(e)), _) => return Err(e.into()),
                    (Err(RenderFailure::Window(message)), _) => Message::Error(ErrorMsg {
                        id: Some(id),
                        message,
                    }),
                    (Ok(()), Some((fw, fh))) => Message::Error(ErrorMsg {
                        id: Some(id),
                        message: format!(
                            "the producer rendered a {fw}x{fh} frame; the handshake said {w}x{h}"
                        ),
                    }),
                    (Ok(()), None) => Message::Done(Done { id, frames: sent }),
                };
                write_message(&mut writer, &reply)?;
            }
            Message::EndSession(EndSession { session }) => {
                producer.end_session(&session);
                continue;
            }
            Message::Shutdown => return Ok(()),
            other => {
                let m = Message::Error(ErrorMsg {
                    id: None,
                    message: format!("unexpected message type {} from talkstream", other.kind()),
                });
                write_message(&mut writer, &m)?;
            }
        }
        writer.flush()?;
    }
    Ok(())
}

/// Number of frames to render for `req` at `fps`: `req.frames` at the stream rate, else the
/// fresh duration converted.
pub fn frames_for(req: &WindowHeader, fps: u32) -> u64 {
    if fps == req.fps || req.fps == 0 {
        return req.frames;
    }
    (req.frames * u64::from(fps)).div_ceil(u64::from(req.fps))
}

/// The built-in avatar behind the protocol: per session an [`Avatar`] and a [`LipSync`] fed
/// with each window's audio at its stream position.
pub struct BuiltinRenderer {
    width: u32,
    height: u32,
    fps: u32,
    seed: u64,
    sessions: HashMap<String, Face>,
}

struct Face {
    avatar: Avatar,
    lipsync: LipSync,
    rgba: Vec<u8>,
    frame: I420Frame,
}

impl BuiltinRenderer {
    /// A renderer of `width x height` frames at `fps`; `seed` picks the idle motion.
    pub fn new(width: u32, height: u32, fps: u32, seed: u64) -> Result<Self, String> {
        // Validate the size once up front.
        Avatar::new(width, height, seed).map_err(|e| e.to_string())?;
        if fps == 0 || fps > 240 {
            return Err(format!("fps {fps} must be 1..=240"));
        }
        Ok(Self {
            width,
            height,
            fps,
            seed,
            sessions: HashMap::new(),
        })
    }

    /// Sessions with state.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }
}

impl FrameProducer for BuiltinRenderer {
    fn hello(&self) -> Hello {
        Hello {
            protocol: PROTOCOL_VERSION,
            width: self.width,
            height: self.height,
            fps: self.fps,
            pixel_format: "i420".into(),
            name: "talkstream built-in avatar".into(),
        }
    }

    fn render(
        &mut self,
        req: &WindowHeader,
        pcm: &[i16],
        emit: &mut dyn FnMut(&I420Frame) -> std::io::Result<()>,
    ) -> Result<(), RenderFailure> {
        if req.sample_rate == 0 || req.fps == 0 {
            return Err(RenderFailure::Window(
                "sample rate and fps must be > 0".into(),
            ));
        }
        let (w, h, fps) = (self.width, self.height, self.fps);
        let face = match self.sessions.entry(req.session.clone()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(Face {
                avatar: Avatar::new(w, h, self.seed)
                    .map_err(|e| RenderFailure::Window(e.to_string()))?,
                lipsync: LipSync::new(req.sample_rate, fps),
                rgba: vec![0; w as usize * h as usize * 4],
                frame: I420Frame::new(w, h),
            }),
        };
        if face.lipsync.sample_rate() != req.sample_rate {
            face.lipsync = LipSync::new(req.sample_rate, fps);
        }
        face.lipsync.push_audio(req.start_sample, pcm);
        let keep_from = req
            .start_sample
            .saturating_sub(u64::from(req.sample_rate) * 2);
        face.lipsync.discard_before(keep_from);
        // Frame i is at stream time first_frame / req.fps + i / fps; in our own frame numbering
        // that is frame first_own + i.
        let first_own = (req.first_frame * u64::from(fps)).div_ceil(u64::from(req.fps));
        for i in 0..frames_for(req, fps) {
            let n = first_own + i;
            let t_ms = n * 1000 / u64::from(fps);
            let mouth = face.lipsync.pose_for_frame(n);
            face.avatar
                .render_rgba(t_ms, mouth, &mut face.rgba)
                .map_err(|e| RenderFailure::Window(e.to_string()))?;
            face.frame.fill_from_rgba(&face.rgba);
            emit(&face.frame)?;
        }
        Ok(())
    }

    fn end_session(&mut self, session: &str) {
        self.sessions.remove(session);
    }
}

/// A [`FrameProducer`] from a handshake and a closure returning a window's frames.
pub struct FnProducer<F> {
    hello: Hello,
    render: F,
}

impl<F> FnProducer<F>
where
    F: FnMut(&WindowHeader, &[i16]) -> Result<Vec<I420Frame>, String>,
{
    /// Frames of `width x height` at `fps` from `render`.
    pub fn new(width: u32, height: u32, fps: u32, render: F) -> Self {
        Self {
            hello: Hello {
                protocol: PROTOCOL_VERSION,
                width,
                height,
                fps,
                pixel_format: "i420".into(),
                name: "closure".into(),
            },
            render,
        }
    }
}

impl<F> FrameProducer for FnProducer<F>
where
    F: FnMut(&WindowHeader, &[i16]) -> Result<Vec<I420Frame>, String>,
{
    fn hello(&self) -> Hello {
        self.hello.clone()
    }

    fn render(
        &mut self,
        req: &WindowHeader,
        pcm: &[i16],
        emit: &mut dyn FnMut(&I420Frame) -> std::io::Result<()>,
    ) -> Result<(), RenderFailure> {
        let frames = (self.render)(req, pcm).map_err(RenderFailure::Window)?;
        for f in &frames {
            emit(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(id: u64, frames: u64) -> WindowHeader {
        WindowHeader {
            id,
            session: "s".into(),
            window: 0,
            sample_rate: 16_000,
            context_samples: 0,
            samples: 1600,
            start_sample: 0,
            fps: 25,
            first_frame: 0,
            frames,
            ref_image: String::new(),
            ref_image_sha256: None,
            ref_image_data: None,
        }
    }

    #[test]
    fn serves_windows_errors_and_shutdown_in_memory() {
        let mut input = Vec::new();
        for m in [
            Message::Window(header(1, 4), vec![0; 1600]),
            Message::Window(header(2, 99), vec![0; 1600]),
            Message::EndSession(EndSession {
                session: "s".into(),
            }),
            Message::Shutdown,
            Message::Window(header(3, 1), vec![0; 1600]),
        ] {
            write_message(&mut input, &m).unwrap();
        }
        let mut producer = FnProducer::new(4, 2, 25, |h: &WindowHeader, _: &[i16]| {
            if h.frames > 10 {
                Err("too many".to_string())
            } else {
                Ok(vec![I420Frame::new(4, 2); h.frames as usize])
            }
        });
        let mut out = Vec::new();
        serve_worker(&input[..], &mut out, &mut producer).unwrap();
        let mut r = &out[..];
        let mut got = Vec::new();
        while let Some(m) = read_message(&mut r).unwrap() {
            got.push(m);
        }
        assert!(matches!(&got[0], Message::Hello(h) if h.width == 4 && h.pixel_format == "i420"));
        assert_eq!(
            got[1..5]
                .iter()
                .filter(|m| matches!(m, Message::Frame { id: 1, .. }))
                .count(),
            4
        );
        assert_eq!(got[5], Message::Done(Done { id: 1, frames: 4 }));
        assert!(matches!(&got[6], Message::Error(e) if e.id == Some(2)));
        assert_eq!(got.len(), 7, "nothing after SHUTDOWN");
    }

    #[test]
    fn builtin_renderer_keeps_sessions() {
        let mut r = BuiltinRenderer::new(64, 64, 25, 1).unwrap();
        let mut n = 0;
        r.render(&header(1, 3), &vec![1000; 1600], &mut |f| {
            assert_eq!((f.width, f.height), (64, 64));
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 3);
        assert_eq!(r.session_count(), 1);
        r.end_session("s");
        assert_eq!(r.session_count(), 0);
        assert!(BuiltinRenderer::new(63, 64, 25, 1).is_err());
    }
}
