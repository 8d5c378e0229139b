//! The `talkstream` binary: loads `.env`, parses the command line, sets up logging, and runs the
//! chosen subcommand until Ctrl-C / SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use talkstream::config::{Cli, Command, Config, RenderArgs, WorkerArgs};
use talkstream::render::{progress_bar, render_offline, RenderSource};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // A missing .env is normal; a broken one is worth a word.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("talkstream: ignoring .env: {e}");
        }
    }
    let cli = Cli::parse();
    if let Err(e) = cli.config.validate() {
        eprintln!("talkstream: {e}");
        return ExitCode::from(2);
    }
    init_logging(&cli.config.log_level);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config),
        Command::Render(args) => render(&cli.config, &args),
        Command::Check => check(&cli.config),
        Command::Worker(args) => worker(&cli.config, &args),
    };
    // The built-in voice unpacks its data into the temp folder; leave nothing behind.
    talkstream_providers::LocalTts::remove_unpacked_data();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("talkstream: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let addr = SocketAddr::new(config.host, config.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (is another program using the port? set PORT or --port)"))?;
        let local = listener.local_addr().context("reading the bound address")?;
        let shutdown = CancellationToken::new();
        tokio::spawn(wait_for_signal(shutdown.clone()));
        tracing::info!(hls_dir = %config.hls_dir.display(), static_dir = %config.static_dir.display(), "talkstream {}", env!("CARGO_PKG_VERSION"));
        println!("talkstream listening on http://{local}/ (open it in a browser; Ctrl-C stops)");
        talkstream::server::run(config, listener, shutdown)
            .await
            .context("serving")
    })
}

/// `talkstream check`: one line per provider, in plain words; fails if any check fails. The
/// providers are chosen exactly as `serve` chooses them (`build_llm`, `build_tts`,
/// `build_stt`), and each proves itself through its own `check`.
fn check(config: &Config) -> anyhow::Result<()> {
    use talkstream::server::{build_llm, build_tts_with_note};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut failed = 0;
    let mut report = |what: String, result: Result<String, String>| match result {
        Ok(ok) => println!("ok    {what}: {ok}"),
        Err(e) => {
            failed += 1;
            println!("FAIL  {what}: {e}");
        }
    };
    runtime.block_on(async {
        match build_llm(config) {
            Ok(Some(llm)) => {
                let result = llm.check().await.map_err(|e| e.to_string());
                report(format!("language model: {}", llm.describe()), result);
            }
            Ok(None) => println!(
                "ok    language model: none (the avatar says what is typed; set OPENAI_API_KEY or OPENAI_BASE_URL for answers)"
            ),
            Err(e) => report("language model".to_string(), Err(e.to_string())),
        }
        match build_tts_with_note(config) {
            Ok((tts, note)) => {
                let result = tts.check().await.map_err(|e| e.to_string());
                report(format!("voice: {}", tts.describe()), result);
                if let Some(note) = note {
                    println!("note  voice: {note}");
                }
            }
            Err(e) => report("voice".to_string(), Err(e.to_string())),
        }
        match config.build_stt() {
            Ok(Some(stt)) => {
                let result = stt.check().await.map_err(|e| e.to_string());
                report(format!("speech recognizer: {}", stt.describe()), result);
            }
            Ok(None) => println!(
                "ok    speech recognizer: none (the microphone is off; {})",
                talkstream::listen::STT_NOTE
            ),
            Err(e) => report("speech recognizer".to_string(), Err(e.to_string())),
        }
        match talkstream::rtmp::probe(&config.rtmp, talkstream::rtmp::publisher::CONNECT_TIMEOUT).await {
            Some(result) => report(
                "RTMP ingest (connect only, nothing published)".to_string(),
                result.map_err(|e| e.to_string()),
            ),
            None => println!("ok    RTMP ingest: none (going live is off; set RTMP_PUBLISH_URL)"),
        }
        if let Some((what, result)) = talkstream::remote_worker::check(config).await {
            report(what, result);
        }
    });
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed");
    }
    Ok(())
}

/// `talkstream worker`: the built-in renderer behind the generator worker protocol, on
/// stdin/stdout or (`--listen`) on TCP.
fn worker(config: &Config, args: &WorkerArgs) -> anyhow::Result<()> {
    if let Some(addr) = args.listen {
        return talkstream::remote_worker::listen(config, addr).map_err(anyhow::Error::msg);
    }
    let mut renderer =
        talkstream_generators::BuiltinRenderer::new(config.width, config.height, config.fps, 1)
            .map_err(anyhow::Error::msg)?;
    let stdin = std::io::stdin().lock();
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    talkstream_generators::serve_worker(stdin, stdout, &mut renderer)
        .map_err(|e| anyhow::anyhow!("worker protocol: {e}"))
}

fn render(config: &Config, args: &RenderArgs) -> anyhow::Result<()> {
    let mut channel = config.channel_config(0);
    channel.sample_rate = config.audio_sample_rate; // 0: follow the source's rate
    let voice = match &args.text {
        Some(_) => {
            let (voice, note) = talkstream::voice::build_builtin_voice(config)?;
            if let Some(note) = note {
                eprintln!("talkstream render: {note}");
            }
            Some(voice)
        }
        None => None,
    };
    let source = match (&args.text, &voice, &args.audio) {
        (Some(text), Some(voice), _) => RenderSource::Text(text, voice),
        (_, _, Some(path)) => RenderSource::Audio(path),
        _ => anyhow::bail!("give --text or --audio"),
    };
    // The InfiniteTalk contract's --ref_image: a portrait when it has landmarks or a manifest.
    let mut config = config.clone();
    if let Some(image) = &args.ref_image {
        let landmarks = talkstream_avatar::portrait::landmarks::default_landmarks_path(image);
        let manifest = talkstream_avatar::portrait::default_manifest_path(image);
        if landmarks.exists() || manifest.exists() {
            config.avatar_ref_image = Some(image.clone());
        } else {
            eprintln!(
                "talkstream render: {} has no landmarks ({}) or manifest; rendering the drawn avatar",
                image.display(),
                landmarks.display()
            );
        }
    }
    let portrait = talkstream::server::load_portrait(&config).context("loading the portrait")?;
    let options = talkstream::render::OfflineOptions {
        duration_ms: args.duration_ms,
        no_audio: args.no_audio,
    };
    let started = std::time::Instant::now();
    let duration_ms = render_offline(
        source,
        portrait.as_ref(),
        channel,
        options,
        &args.output,
        progress_bar("rendering"),
    )
    .with_context(|| format!("rendering {}", args.output.display()))?;
    let voice = voice.map_or_else(String::new, |v| format!(", voice {}", v.describe()));
    println!(
        "wrote {} ({:.1} s of video in {:.1} s{voice})",
        args.output.display(),
        duration_ms as f64 / 1000.0,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn wait_for_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    shutdown.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("stop requested");
    shutdown.cancel();
}
