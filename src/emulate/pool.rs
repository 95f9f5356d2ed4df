//! The runtime instances of one function: idle ones ready for an invocation, permits bounding
//! how many exist (idle or busy) to `concurrency`, and the launcher that new ones start from.
//!
//! The launcher can be replaced while the function is being invoked (`watch` does when the
//! image changes). Each replacement is a new *generation*: invocations in flight finish on
//! their old runtime, which is then stopped instead of going back to the idle list, and every
//! later invocation gets a runtime of the new generation. No request fails because of a swap.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::instance::Instance;
use super::{EmulatorConfig, Launcher};

/// The launcher new runtimes start from, and its generation.
struct Current {
    generation: u64,
    launcher: Arc<dyn Launcher>,
}

/// One function's runtimes.
pub(crate) struct Pool {
    pub config: EmulatorConfig,
    current: Mutex<Current>,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Arc<Instance>>>,
    all: Mutex<Vec<Weak<Instance>>>,
    next_index: AtomicUsize,
}

/// An instance reserved for one invocation.
pub(crate) struct Lease {
    pub instance: Arc<Instance>,
    _permit: OwnedSemaphorePermit,
}

/// Why no instance could be leased.
pub(crate) enum AcquireError {
    /// The emulator is shutting down.
    Closed,
    /// A new runtime could not be started.
    Launch(io::Error),
}

impl Pool {
    pub fn new(config: EmulatorConfig, launcher: Arc<dyn Launcher>) -> Pool {
        let permits = Arc::new(Semaphore::new(config.concurrency));
        Pool {
            config,
            current: Mutex::new(Current {
                generation: 0,
                launcher,
            }),
            permits,
            idle: Mutex::new(Vec::new()),
            all: Mutex::new(Vec::new()),
            next_index: AtomicUsize::new(0),
        }
    }

    fn generation(&self) -> u64 {
        self.current.lock().map(|c| c.generation).unwrap_or(0)
    }

    /// Whether `instance` may take another invocation: alive, of the current generation, and
    /// with credentials that outlast an invocation.
    fn usable(&self, instance: &Instance) -> bool {
        let margin = self.config.timeout + self.config.credentials_margin;
        instance.alive()
            && instance.generation() == self.generation()
            && instance.credentials_valid_for(margin)
    }

    /// Waits for a free slot (in arrival order), then takes an idle instance that is still
    /// usable or starts a new one.
    pub async fn acquire(&self) -> Result<Lease, AcquireError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AcquireError::Closed)?;
        loop {
            let candidate = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            match candidate {
                Some(instance) if self.usable(&instance) => {
                    return Ok(Lease {
                        instance,
                        _permit: permit,
                    })
                }
                // Runtimes that exited while idle are dropped here, and replaced below; live
                // ones whose credentials are about to expire are stopped first.
                Some(instance) => {
                    if instance.alive() && instance.generation() == self.generation() {
                        self.config.logs.line(
                            "[emulator] restarting an idle runtime: its AWS credentials are about to expire",
                        );
                    }
                    instance.kill();
                }
                None => break,
            }
        }
        let instance = Arc::new(self.launch().await.map_err(AcquireError::Launch)?);
        if let Ok(mut all) = self.all.lock() {
            all.retain(|w| w.strong_count() > 0);
            all.push(Arc::downgrade(&instance));
        }
        Ok(Lease {
            instance,
            _permit: permit,
        })
    }

    /// Starts a runtime of the current generation, with fresh credentials if it gets any.
    async fn launch(&self) -> io::Result<Instance> {
        let config = &self.config;
        let credentials = match &config.credentials {
            Some(source) => Some(
                source
                    .get(config.timeout + config.credentials_margin)
                    .await
                    .map_err(|e| io::Error::other(e.to_string()))?,
            ),
            None => None,
        };
        let (generation, launcher) = match self.current.lock() {
            Ok(c) => (c.generation, c.launcher.clone()),
            Err(_) => return Err(io::Error::other("the emulator's launcher lock is poisoned")),
        };
        let index = self.next_index.fetch_add(1, Ordering::Relaxed);
        Instance::launch(config, launcher.as_ref(), generation, index, credentials).await
    }

    /// Returns a usable instance to the idle list; any other is stopped.
    pub fn release(&self, lease: Lease) {
        lease.instance.end();
        if self.usable(&lease.instance) && !self.permits.is_closed() {
            if let Ok(mut idle) = self.idle.lock() {
                idle.push(lease.instance.clone());
            }
        } else {
            lease.instance.kill();
        }
    }

    /// Makes `launcher` the one new runtimes start from. Idle runtimes are stopped now; busy
    /// ones finish their invocation first.
    pub fn replace(&self, launcher: Arc<dyn Launcher>) {
        if let Ok(mut current) = self.current.lock() {
            current.generation += 1;
            current.launcher = launcher;
        }
        let idle = self
            .idle
            .lock()
            .map(|mut idle| std::mem::take(&mut *idle))
            .unwrap_or_default();
        for instance in idle {
            instance.kill();
        }
    }

    /// Refuses new invocations and kills every runtime.
    pub fn close(&self) {
        self.permits.close();
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
        if let Ok(all) = self.all.lock() {
            for instance in all.iter().filter_map(Weak::upgrade) {
                instance.kill();
            }
        }
    }
}
