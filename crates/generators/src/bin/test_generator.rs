//! `talkstream-test-generator`: a stand-in for a real video generator, for tests, benchmarks and
//! trying talkstream's generator support without a GPU.
//!
//! **Exec mode** accepts exactly the seed's InfiniteTalk flags
//!
//! ```text
//! talkstream-test-generator --ref_image IMG --input_audio WAV --output_video MP4 --duration_ms N --no_audio
//! ```
//!
//! and writes a regular MP4 of talkstream's built-in avatar speaking the WAV (H.264 from
//! OpenH264, muxed by `talkstream_generators::mp4::write_mp4`). Environment knobs:
//!
//! - `TALKSTREAM_FAKE_MODE`: `ok` (default), `sleep` (sleep `TALKSTREAM_FAKE_SLEEP_MS`, default
//!   10000, then work), `crash` (exit 3), `hang` (start a grandchild in the same process group,
//!   then both sleep forever), `garbage` (write random bytes), `nothing` (write no file);
//! - `TALKSTREAM_FAKE_SIZE=WxH` (default 256x192), `TALKSTREAM_FAKE_FPS` (default 25),
//!   `TALKSTREAM_FAKE_FRAMES_DELTA` (frames more or fewer than the duration calls for);
//! - `TALKSTREAM_FAKE_PID_FILE`: append the pid of every process it starts, one per line;
//! - `TALKSTREAM_FAKE_REF_LOG`: append `<--ref_image path> <its size in bytes>` per window (in
//!   worker mode: `<session> sha256:<hex> <bytes>` per window whose reference image came over
//!   the connection).
//!
//! **Worker mode** (`talkstream-test-generator worker [--size WxH] [--fps N] [--listen ADDR]`)
//! serves the built-in avatar over the worker protocol on stdin/stdout, or with `--listen` on TCP
//! to any number of connections (token: `GENERATOR_WORKER_TOKEN`; it prints `listening on
//! ADDR` on stdout once bound). `TALKSTREAM_FAKE_WORKER_DIE_AT=k`
//! makes the k-th window of the process (over all connections) exit with code 3 after two frames,
//! `TALKSTREAM_FAKE_WORKER_HANG_AT=k` makes it hang there, `TALKSTREAM_FAKE_WORKER_BLANK=1`
//! sends grey frames without rendering (to time the protocol alone); `TALKSTREAM_FAKE_PID_FILE`
//! as above.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use talkstream_avatar::{Avatar, LipSync};
use talkstream_generators::mp4::{write_mp4, MuxSample, MuxTrack};
use talkstream_generators::protocol::WindowHeader;
use talkstream_generators::serve::{serve_worker, BuiltinRenderer, FrameProducer, RenderFailure};
use talkstream_media::video::H264Encoder;
use talkstream_media::wav::parse_wav;
use talkstream_media::I420Frame;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match env(name) {
        Some(v) => v
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a number")),
        None => Ok(default),
    }
}

/// Append a line to `TALKSTREAM_FAKE_REF_LOG`, if set.
fn log_ref(line: &str) -> Result<(), String> {
    let Some(log) = env("TALKSTREAM_FAKE_REF_LOG") else {
        return Ok(());
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut f| writeln!(f, "{line}"))
        .map_err(|e| format!("cannot append to {log}: {e}"))
}

fn parse_size(v: &str) -> Result<(u32, u32), String> {
    let (w, h) = v
        .split_once('x')
        .ok_or_else(|| format!("size {v:?} is not WxH"))?;
    let w = w.parse().map_err(|_| format!("bad width in {v:?}"))?;
    let h = h.parse().map_err(|_| format!("bad height in {v:?}"))?;
    Ok((w, h))
}

fn record_pid(pid: u32) {
    if let Some(path) = env("TALKSTREAM_FAKE_PID_FILE") {
        let line = format!("{pid}\n");
        let ok = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = ok {
            eprintln!("test generator: cannot write {path}: {e}");
        }
    }
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

struct ExecArgs {
    ref_image: PathBuf,
    input_audio: PathBuf,
    output_video: PathBuf,
    duration_ms: u64,
}

const USAGE: &str = "usage: talkstream-test-generator --ref_image IMG --input_audio WAV \
--output_video MP4 --duration_ms N --no_audio\n       talkstream-test-generator worker \
[--size WxH] [--fps N]";

fn parse_exec_args(args: &[String]) -> Result<ExecArgs, String> {
    let (mut r, mut a, mut o, mut d, mut no_audio) = (None, None, None, None, false);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--ref_image" => r = Some(PathBuf::from(value()?)),
            "--input_audio" => a = Some(PathBuf::from(value()?)),
            "--output_video" => o = Some(PathBuf::from(value()?)),
            "--duration_ms" => {
                let v = value()?;
                d = Some(v.parse().map_err(|_| format!("--duration_ms {v:?}"))?);
            }
            "--no_audio" => no_audio = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !no_audio {
        return Err("--no_audio is required (this generator writes video only)".into());
    }
    match (r, a, o, d) {
        (Some(ref_image), Some(input_audio), Some(output_video), Some(duration_ms)) => {
            Ok(ExecArgs {
                ref_image,
                input_audio,
                output_video,
                duration_ms,
            })
        }
        _ => {
            Err("--ref_image, --input_audio, --output_video and --duration_ms are required".into())
        }
    }
}

fn run_exec(args: &ExecArgs) -> Result<(), String> {
    let mode = env("TALKSTREAM_FAKE_MODE").unwrap_or_else(|| "ok".into());
    record_pid(std::process::id());
    match mode.as_str() {
        "crash" => {
            eprintln!("test generator: crashing as asked (TALKSTREAM_FAKE_MODE=crash)");
            std::process::exit(3);
        }
        "hang" => {
            let me = std::env::current_exe().map_err(|e| e.to_string())?;
            let child = std::process::Command::new(me)
                .env("TALKSTREAM_FAKE_MODE", "hang-child")
                .spawn()
                .map_err(|e| e.to_string())?;
            record_pid(child.id());
            eprintln!("test generator: hanging with a grandchild {}", child.id());
            sleep_forever();
        }
        "sleep" => {
            let ms = env_num("TALKSTREAM_FAKE_SLEEP_MS", 10_000u64)?;
            eprintln!("test generator: sleeping {ms} ms");
            std::thread::sleep(Duration::from_millis(ms));
        }
        "nothing" => return Ok(()),
        "garbage" => {
            let mut x = 0x1234_5678_9abc_def0u64;
            let bytes: Vec<u8> = (0..4096)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            return std::fs::write(&args.output_video, bytes).map_err(|e| e.to_string());
        }
        "ok" => {}
        other => return Err(format!("unknown TALKSTREAM_FAKE_MODE {other:?}")),
    }
    if !args.ref_image.is_file() {
        return Err(format!("reference image {:?} not found", args.ref_image));
    }
    let size = std::fs::metadata(&args.ref_image).map_or(0, |m| m.len());
    log_ref(&format!("{} {size}", args.ref_image.display()))?;
    let wav = std::fs::read(&args.input_audio)
        .map_err(|e| format!("cannot read {:?}: {e}", args.input_audio))?;
    let (pcm, rate) = parse_wav(&wav).map_err(|e| format!("{:?}: {e}", args.input_audio))?;
    let (w, h) = parse_size(&env("TALKSTREAM_FAKE_SIZE").unwrap_or_else(|| "256x192".into()))?;
    let fps = env_num("TALKSTREAM_FAKE_FPS", 25u32)?;
    let delta = env_num("TALKSTREAM_FAKE_FRAMES_DELTA", 0i64)?;
    let frames = (args.duration_ms * u64::from(fps)).div_ceil(1000) as i64 + delta;
    let frames = frames.max(1) as u64;

    let mut avatar = Avatar::new(w, h, 7).map_err(|e| e.to_string())?;
    let mut lips = LipSync::new(rate, fps);
    lips.push_audio(0, &pcm);
    let mut enc = H264Encoder::new(w, h, fps, 1500).map_err(|e| e.to_string())?;
    let mut rgba = vec![0u8; w as usize * h as usize * 4];
    let mut frame = I420Frame::new(w, h);
    let mut samples = Vec::new();
    for n in 0..frames {
        let mouth = lips.pose_for_frame(n);
        avatar
            .render_rgba(n * 1000 / u64::from(fps), mouth, &mut rgba)
            .map_err(|e| e.to_string())?;
        frame.fill_from_rgba(&rgba);
        let e = enc.encode(&frame, false).map_err(|e| e.to_string())?;
        samples.push(MuxSample {
            data: e.data,
            duration: 512,
            is_sync: e.is_idr,
        });
    }
    let (Some(sps), Some(pps)) = (enc.sps(), enc.pps()) else {
        return Err("the encoder produced no SPS/PPS".into());
    };
    let track = MuxTrack {
        width: w as u16,
        height: h as u16,
        timescale: fps * 512,
        sps: sps.to_vec(),
        pps: pps.to_vec(),
        samples_per_chunk: 10,
        co64: false,
    };
    std::fs::write(&args.output_video, write_mp4(&track, &samples))
        .map_err(|e| format!("cannot write {:?}: {e}", args.output_video))
}

/// The built-in renderer with failure injection.
struct FaultyRenderer {
    inner: BuiltinRenderer,
    die_at: u64,
    hang_at: u64,
    /// Send a constant grey picture instead of rendering (measures the protocol alone).
    blank: Option<I420Frame>,
}

impl FrameProducer for FaultyRenderer {
    fn hello(&self) -> talkstream_generators::protocol::Hello {
        let mut h = self.inner.hello();
        h.name = "talkstream-test-generator".into();
        h
    }

    fn render(
        &mut self,
        req: &WindowHeader,
        pcm: &[i16],
        emit: &mut dyn FnMut(&I420Frame) -> std::io::Result<()>,
    ) -> Result<(), RenderFailure> {
        let count = WINDOWS.fetch_add(1, Ordering::SeqCst) + 1;
        if count == self.die_at || count == self.hang_at {
            let mut sent = 0;
            let dying = count == self.die_at;
            self.inner.render(req, pcm, &mut |f| {
                if sent < 2 {
                    sent += 1;
                    emit(f)?;
                }
                Ok(())
            })?;
            if dying {
                eprintln!("test worker: dying mid-window as asked");
                std::process::exit(3);
            }
            eprintln!("test worker: hanging mid-window as asked");
            sleep_forever();
        }
        if let Some(f) = &self.blank {
            for _ in 0..talkstream_generators::serve::frames_for(req, self.inner.hello().fps) {
                emit(f)?;
            }
            return Ok(());
        }
        self.inner.render(req, pcm, emit)
    }

    fn end_session(&mut self, session: &str) {
        self.inner.end_session(session);
    }

    fn reference_image(&mut self, session: &str, sha256: &str, image: &[u8]) {
        if let Err(e) = log_ref(&format!("{session} sha256:{sha256} {}", image.len())) {
            eprintln!("test worker: {e}");
        }
    }
}

/// Windows rendered by this process, over all connections.
static WINDOWS: AtomicU64 = AtomicU64::new(0);

fn run_worker(args: &[String]) -> Result<(), String> {
    let (mut w, mut h, mut fps) = (256, 192, 25);
    let mut listen = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--size" => (w, h) = parse_size(value)?,
            "--fps" => fps = value.parse().map_err(|_| format!("--fps {value:?}"))?,
            "--listen" => listen = Some(value.clone()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    record_pid(std::process::id());
    let die_at = env_num("TALKSTREAM_FAKE_WORKER_DIE_AT", 0u64)?;
    let hang_at = env_num("TALKSTREAM_FAKE_WORKER_HANG_AT", 0u64)?;
    let blank = env("TALKSTREAM_FAKE_WORKER_BLANK").is_some();
    let make = move || -> Result<FaultyRenderer, String> {
        Ok(FaultyRenderer {
            inner: BuiltinRenderer::new(w, h, fps, 7)?,
            die_at,
            hang_at,
            blank: blank.then(|| I420Frame::new(w, h)),
        })
    };
    if let Some(addr) = listen {
        let token = env("GENERATOR_WORKER_TOKEN").unwrap_or_default();
        let listener =
            std::net::TcpListener::bind(&addr).map_err(|e| format!("--listen {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        talkstream_generators::serve_tcp::listen_policy(&local, &token)?;
        println!("listening on {local}");
        std::io::stdout().flush().map_err(|e| e.to_string())?;
        return talkstream_generators::serve_tcp::serve_tcp(listener, &token, make)
            .map_err(|e| e.to_string());
    }
    let mut producer = make()?;
    let stdin = std::io::stdin().lock();
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    serve_worker(stdin, stdout, &mut producer).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if env("TALKSTREAM_FAKE_MODE").as_deref() == Some("hang-child") {
        sleep_forever();
    }
    let result = if args.first().map(String::as_str) == Some("worker") {
        run_worker(&args[1..])
    } else {
        match parse_exec_args(&args) {
            Ok(a) => run_exec(&a),
            Err(e) => {
                eprintln!("test generator: {e}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("test generator: {e}");
            ExitCode::from(1)
        }
    }
}
