//! The receiving end of one provider turn (audio from a TTS, text from an LLM): a channel
//! receiver that also watches the turn's cancellation token, so nothing queued before a cancel
//! (barge-in) comes out after it.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Items of one turn, in order; ends when the provider is done, after an error item, or at once
/// when the turn is cancelled (even if items were already queued).
#[derive(Debug)]
pub struct TurnOutput<T> {
    rx: mpsc::Receiver<T>,
    cancel: CancellationToken,
}

impl<T> TurnOutput<T> {
    /// Wrap a receiver with the turn's token.
    pub fn new(rx: mpsc::Receiver<T>, cancel: CancellationToken) -> Self {
        Self { rx, cancel }
    }

    /// The next item, or `None` when the turn has ended or was cancelled.
    pub async fn recv(&mut self) -> Option<T> {
        if self.cancel.is_cancelled() {
            self.rx.close();
            return None;
        }
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => {
                self.rx.close();
                None
            }
            item = self.rx.recv() => {
                if self.cancel.is_cancelled() { None } else { item }
            }
        }
    }

    /// Like [`TurnOutput::recv`] without waiting: `Empty` when nothing is ready yet,
    /// `Disconnected` when the turn has ended or was cancelled.
    pub fn try_recv(&mut self) -> Result<T, mpsc::error::TryRecvError> {
        if self.cancel.is_cancelled() {
            self.rx.close();
            return Err(mpsc::error::TryRecvError::Disconnected);
        }
        self.rx.try_recv()
    }

    /// Like [`TurnOutput::recv`] for synchronous threads (must not be called inside a runtime).
    /// A cancelled turn's worker drops its sender promptly, which wakes this up.
    pub fn blocking_recv(&mut self) -> Option<T> {
        if self.cancel.is_cancelled() {
            self.rx.close();
            return None;
        }
        let item = self.rx.blocking_recv();
        if self.cancel.is_cancelled() {
            None
        } else {
            item
        }
    }

    /// The turn's cancellation token.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }
}
