//! ONNX Runtime for Piper voices: the runtime's shared library, loaded once per process at run
//! time (`ort`'s `load-dynamic`: nothing is linked or downloaded at build time), and a loaded
//! model that turns phoneme ids into audio, one inference at a time, which another thread can
//! stop ([`Stop`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use ort::environment::Environment;
use ort::session::{RunOptions, Session};
use ort::value::Tensor;

use super::voice::Scales;
use super::PiperError;

/// The process's ONNX Runtime: the library it came from and its environment. A library that
/// failed to load leaves this empty, so a later call may try another path.
static RUNTIME: Mutex<Option<(PathBuf, Environment)>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The environment of the runtime at `library`, loading it on first use. A process holds one
/// runtime: once loaded, a different `library` gets the loaded one (with a warning).
pub(crate) fn environment(library: &Path) -> Result<Environment, PiperError> {
    let mut runtime = lock(&RUNTIME);
    if let Some((loaded, env)) = runtime.as_ref() {
        if loaded != library {
            tracing::warn!(
                loaded = %loaded.display(),
                asked = %library.display(),
                "ONNX Runtime is already loaded in this process; using it"
            );
        }
        return Ok(env.clone());
    }
    let failed = |reason: String| PiperError::Runtime {
        path: library.to_path_buf(),
        reason,
    };
    if !library.is_file() {
        return Err(failed("no such file".to_string()));
    }
    let env = ort::init_from(library)
        .map_err(|e| failed(e.to_string()))?
        .with_name("talkstream-piper")
        .build()
        .map_err(|e| failed(e.to_string()))?;
    *runtime = Some((library.to_path_buf(), env.clone()));
    Ok(env)
}

/// Stops an inference from another thread: [`Stop::stop`] ends a running [`Model::infer`] within
/// a few milliseconds (ONNX Runtime checks between operators) and every later one at once.
pub(crate) struct Stop {
    options: RunOptions,
    stopped: AtomicBool,
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop")
            .field("stopped", &self.is_stopped())
            .finish_non_exhaustive()
    }
}

impl Stop {
    /// A stop that has not fired.
    pub(crate) fn new() -> Result<Self, String> {
        Ok(Self {
            options: RunOptions::new().map_err(|e| e.to_string())?,
            stopped: AtomicBool::new(false),
        })
    }

    /// Stops the running inference, if any, and all later ones.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Failing to set the flag only means the run finishes; its output is dropped.
        let _ = self.options.terminate();
    }

    /// Whether [`Stop::stop`] was called.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

/// Why an inference gave no audio.
#[derive(Debug)]
pub(crate) enum InferError {
    /// Its [`Stop`] fired.
    Stopped,
    /// ONNX Runtime failed (the message).
    Failed(String),
}

/// A loaded VITS model. Inferences take turns (the session is used by one thread at a time);
/// each runs on the calling thread with the intra-op threads given at load.
#[derive(Debug)]
pub(crate) struct Model {
    session: Mutex<Session>,
    /// Multi-speaker models take a speaker id (`sid`).
    takes_speaker: bool,
}

impl Model {
    /// Loads the model at `path` into the runtime `env`, with `threads` intra-op threads.
    pub(crate) fn load(env: &Environment, path: &Path, threads: usize) -> Result<Self, PiperError> {
        let failed = |reason: String| PiperError::Model {
            path: path.to_path_buf(),
            reason,
        };
        if !path.is_file() {
            return Err(failed("no such file".to_string()));
        }
        let text = |e: &dyn std::fmt::Display| failed(e.to_string());
        let session = Session::builder(env)
            .map_err(|e| text(&e))?
            .with_intra_threads(threads.max(1))
            .map_err(|e| text(&e))?
            .with_inter_threads(1)
            .map_err(|e| text(&e))?
            // Spinning threads would burn CPU between a session's chunks.
            .with_intra_op_spinning(false)
            .map_err(|e| text(&e))?
            .commit_from_file(path)
            .map_err(|e| text(&e))?;
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        for needed in ["input", "input_lengths", "scales"] {
            if !names.contains(&needed) {
                return Err(failed(format!(
                    "not a Piper model: no input {needed:?} (inputs: {})",
                    names.join(", ")
                )));
            }
        }
        let takes_speaker = names.contains(&"sid");
        Ok(Self {
            session: Mutex::new(session),
            takes_speaker,
        })
    }

    /// The audio (floats, nominally in -1..1) for `ids`; waits for another inference to finish
    /// first. Ends early with [`InferError::Stopped`] when `stop` fires.
    pub(crate) fn infer(
        &self,
        ids: &[i64],
        scales: Scales,
        stop: &Stop,
    ) -> Result<Vec<f32>, InferError> {
        let failed = |e: ort::Error| InferError::Failed(e.to_string());
        let n = ids.len();
        let input = Tensor::from_array(([1usize, n], ids.to_vec())).map_err(failed)?;
        let lengths = Tensor::from_array(([1usize], vec![n as i64])).map_err(failed)?;
        let scales = Tensor::from_array((
            [3usize],
            vec![scales.noise_scale, scales.length_scale, scales.noise_w],
        ))
        .map_err(failed)?;
        let mut inputs = ort::inputs![
            "input" => input,
            "input_lengths" => lengths,
            "scales" => scales,
        ];
        if self.takes_speaker {
            let sid = Tensor::from_array(([1usize], vec![0i64])).map_err(failed)?;
            inputs.push(("sid".into(), sid.into()));
        }
        let mut session = lock(&self.session);
        if stop.is_stopped() {
            return Err(InferError::Stopped);
        }
        let result = session.run_with_options(inputs, &stop.options);
        if stop.is_stopped() {
            return Err(InferError::Stopped);
        }
        let outputs = result.map_err(failed)?;
        if outputs.len() == 0 {
            return Err(InferError::Failed("the model gave no output".to_string()));
        }
        let (_, audio) = outputs[0].try_extract_tensor::<f32>().map_err(failed)?;
        Ok(audio.to_vec())
    }
}
