//! The network between one simulated process and the backend: every
//! request and every answer takes its own random delay (so answers are
//! reordered), either direction can be cut (a one-way partition), a cut can
//! black-hole calls or refuse them at once, requests are sometimes
//! duplicated, and a request goes on at the backend after the caller gave
//! up on it (its answer then arrives to nobody).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::clock::PauseGate;
use crate::rng::Rng;

/// How a cut direction behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Packets vanish: the call hangs until the caller gives up.
    BlackHole,
    /// The connection is refused or reset: the call fails at once.
    Refused,
}

/// What a call through the link came to.
#[derive(Debug)]
pub enum Delivery<T> {
    /// The backend's answer arrived.
    Answer(T),
    /// The connection was refused or reset.
    Refused,
}

#[derive(Debug)]
struct State {
    rng: Rng,
    /// Requests to the backend are cut.
    up: Option<Cut>,
    /// Answers to the process are cut.
    down: Option<Cut>,
    min_delay: Duration,
    max_delay: Duration,
    duplicate: f64,
}

/// One process's network link to the backend. Clones share it.
#[derive(Clone, Debug)]
pub struct Link {
    state: Arc<Mutex<State>>,
    pause: PauseGate,
}

/// The delays and the duplicate chance of a link, drawn per call.
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    /// The shortest one-way delay.
    pub min: Duration,
    /// The longest one-way delay.
    pub max: Duration,
    /// The chance that a request reaches the backend twice.
    pub duplicate: f64,
}

impl Link {
    /// A healthy link with `latency`, drawing from `rng`, for a process
    /// paused by `pause`.
    pub fn new(rng: Rng, latency: Latency, pause: PauseGate) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                rng,
                up: None,
                down: None,
                min_delay: latency.min,
                max_delay: latency.max,
                duplicate: latency.duplicate,
            })),
            pause,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cuts (or heals, with `None`) each direction.
    pub fn set_cut(&self, up: Option<Cut>, down: Option<Cut>) {
        let mut state = self.lock();
        state.up = up;
        state.down = down;
    }

    /// Sets the one-way delay range.
    pub fn set_delay(&self, min: Duration, max: Duration) {
        let mut state = self.lock();
        state.min_delay = min;
        state.max_delay = max.max(min);
    }

    /// Sets the chance that a request reaches the backend twice.
    pub fn set_duplicate(&self, chance: f64) {
        self.lock().duplicate = chance;
    }

    /// The process's pause gate.
    pub fn pause(&self) -> &PauseGate {
        &self.pause
    }

    /// One one-way delay.
    pub fn delay(&self) -> Duration {
        let mut state = self.lock();
        let (min, max) = (state.min_delay, state.max_delay);
        state.rng.duration(min, max)
    }

    fn duplicate(&self) -> bool {
        let mut state = self.lock();
        let p = state.duplicate;
        state.rng.chance(p)
    }

    /// Whether requests get through now (`Err`: how they fail).
    pub fn up(&self) -> Result<(), Cut> {
        self.lock().up.map_or(Ok(()), Err)
    }

    /// Whether answers get through now (`Err`: how they fail).
    pub fn down(&self) -> Result<(), Cut> {
        self.lock().down.map_or(Ok(()), Err)
    }

    /// Sends a request that the backend serves with `serve` (called again
    /// for a duplicate) and waits for the answer. The request lives on its
    /// own task: it reaches the backend even if the caller stops waiting.
    /// A black-holed call never completes.
    pub async fn call<T, F, Fut>(&self, serve: F) -> Delivery<T>
    where
        T: Send + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        // A paused process sends nothing.
        self.pause.running().await;
        match self.up() {
            Ok(()) => {}
            Err(Cut::Refused) => return Delivery::Refused,
            Err(Cut::BlackHole) => {}
        }
        let (answer_tx, answer_rx) = oneshot::channel();
        let link = self.clone();
        let request_delay = self.delay();
        let answer_delay = self.delay();
        let duplicate = self.duplicate().then(|| self.delay());
        tokio::spawn(async move {
            tokio::time::sleep(request_delay).await;
            if link.up().is_err() {
                return;
            }
            let serve = Arc::new(serve);
            if let Some(extra) = duplicate {
                let again = Arc::clone(&serve);
                let link = link.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(extra).await;
                    if link.up().is_ok() {
                        let _ = again().await;
                    }
                });
            }
            let answer = serve().await;
            tokio::time::sleep(answer_delay).await;
            match link.down() {
                Ok(()) => {
                    let _ = answer_tx.send(Some(answer));
                }
                Err(Cut::Refused) => {
                    let _ = answer_tx.send(None);
                }
                Err(Cut::BlackHole) => {}
            }
        });
        let delivered = answer_rx.await;
        // A paused process reads the answer only when it resumes.
        self.pause.running().await;
        match delivered {
            Ok(Some(answer)) => Delivery::Answer(answer),
            Ok(None) => Delivery::Refused,
            Err(_) => std::future::pending().await,
        }
    }
}
