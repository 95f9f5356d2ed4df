//! The runtime instances of one function: idle slots ready for an invocation, permits
//! bounding how many invocations run at once, and the launcher that new instances start from.
//!
//! An instance serves one invocation at a time, or up to the maximum concurrency on Managed
//! Instances; the idle list holds one entry per free slot, so an instance with three free slots
//! is listed three times. Permits are `concurrency` times the slots of an instance, so at
//! most `concurrency` environments exist, each as busy as Lambda makes it.
//!
//! Under tenant isolation an instance belongs to the tenant of the invocation that started it:
//! its slots only go to that tenant, and when every environment is taken a fully idle one of
//! another tenant is stopped to make room.
//!
//! The launcher can be replaced while the function is being invoked (`watch` does when the
//! image changes). Each replacement is a new *generation*: invocations in flight finish on
//! their old runtime, which is then stopped instead of going back to the idle list, and every
//! later invocation gets a runtime of the new generation. No request fails because of a swap.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::extensions::ShutdownReason;
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
    /// One entry per free slot of a live instance.
    idle: Mutex<Vec<Arc<Instance>>>,
    all: Mutex<Vec<Weak<Instance>>>,
    next_index: AtomicUsize,
    /// Held while an instance starts, so that invocations arriving meanwhile take its other
    /// slots instead of starting more instances than `concurrency`.
    launching: tokio::sync::Mutex<()>,
    /// Told whenever a lease ends, for an invocation waiting for an environment to free up.
    released: Notify,
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
        let permits = Arc::new(Semaphore::new(
            config.concurrency * config.model.per_environment(),
        ));
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
            launching: tokio::sync::Mutex::new(()),
            released: Notify::new(),
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

    /// Waits for a free slot (in arrival order), then takes an idle slot of `tenant`'s (or,
    /// without tenant isolation, of any) instance that is still usable, or starts a new
    /// instance.
    pub async fn acquire(&self, tenant: Option<&str>) -> Result<Lease, AcquireError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AcquireError::Closed)?;
        loop {
            if let Some(instance) = self.take_idle(tenant) {
                return Ok(self.lease(instance, permit));
            }
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let launching = self.launching.lock().await;
            if let Some(instance) = self.take_idle(tenant) {
                return Ok(self.lease(instance, permit));
            }
            if self.environments() >= self.config.concurrency && !self.evict_idle() {
                // Every environment is busy with another tenant's invocations: wait for one
                // to finish, then look again.
                drop(launching);
                released.await;
                continue;
            }
            let instance = Arc::new(self.launch(tenant).await.map_err(AcquireError::Launch)?);
            if let Ok(mut all) = self.all.lock() {
                all.retain(|w| w.strong_count() > 0);
                all.push(Arc::downgrade(&instance));
            }
            if let Ok(mut idle) = self.idle.lock() {
                for _ in 1..self.config.model.per_environment() {
                    idle.push(instance.clone());
                }
            }
            return Ok(self.lease(instance, permit));
        }
    }

    fn lease(&self, instance: Arc<Instance>, permit: OwnedSemaphorePermit) -> Lease {
        instance.leased();
        Lease {
            instance,
            _permit: permit,
        }
    }

    /// Takes a free slot of a usable instance of `tenant`'s, the most recently used first;
    /// slots of instances that are no longer usable are dropped on the way (and live ones
    /// stopped once nothing runs on them).
    fn take_idle(&self, tenant: Option<&str>) -> Option<Arc<Instance>> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(at) = idle.iter().rposition(|i| i.tenant() == tenant) {
            let instance = idle.remove(at);
            if self.usable(&instance) {
                return Some(instance);
            }
            // Runtimes that exited while idle are dropped here, and replaced by the caller;
            // live ones whose credentials are about to expire are stopped first.
            if instance.alive() && instance.generation() == self.generation() {
                self.config.logs.line(
                    "[emulator] restarting an idle runtime: its AWS credentials are about to expire",
                );
            }
            idle.retain(|i| !Arc::ptr_eq(i, &instance));
            if instance.unleased_now() {
                instance.kill(ShutdownReason::Spindown);
            }
        }
        None
    }

    /// How many environments are alive.
    fn environments(&self) -> usize {
        self.all
            .lock()
            .map(|all| {
                all.iter()
                    .filter_map(Weak::upgrade)
                    .filter(|i| i.alive())
                    .count()
            })
            .unwrap_or(0)
    }

    /// Stops the least recently used environment that runs nothing, to make room for another
    /// tenant's; false if every environment is busy.
    fn evict_idle(&self) -> bool {
        let Ok(mut idle) = self.idle.lock() else {
            return false;
        };
        let Some(victim) = idle.iter().find(|i| i.unleased_now()).cloned() else {
            return false;
        };
        idle.retain(|i| !Arc::ptr_eq(i, &victim));
        victim.kill(ShutdownReason::Spindown);
        true
    }

    /// Starts a runtime of the current generation, with fresh credentials if it gets any.
    async fn launch(&self, tenant: Option<&str>) -> io::Result<Instance> {
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
        let tenant = tenant.map(str::to_string);
        Instance::launch(config, launcher, generation, index, credentials, tenant).await
    }

    /// Gives `lease`'s slot back: to the idle list if its instance is usable; an instance
    /// that is not is stopped once its last invocation ends.
    pub fn release(&self, lease: Lease) {
        let instance = lease.instance.clone();
        let still_leased = instance.unleased();
        if self.usable(&instance) && !self.permits.is_closed() {
            if let Ok(mut idle) = self.idle.lock() {
                idle.push(instance);
            }
        } else if still_leased == 0 {
            instance.kill(ShutdownReason::Spindown);
        }
        drop(lease);
        self.released.notify_waiters();
    }

    /// Makes `launcher` the one new runtimes start from. Idle runtimes are stopped now; busy
    /// ones finish their invocations first.
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
            if instance.unleased_now() {
                instance.kill(ShutdownReason::Spindown);
            }
        }
    }

    /// Refuses new invocations and stops every environment; returns them, for a caller that
    /// waits for their shutdown phase to end.
    pub fn close(&self) -> Vec<Arc<Instance>> {
        self.permits.close();
        // Taken before the idle list is cleared: idle instances live only there.
        let all: Vec<Arc<Instance>> = self
            .all
            .lock()
            .map(|all| all.iter().filter_map(Weak::upgrade).collect())
            .unwrap_or_default();
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
        for instance in &all {
            instance.kill(ShutdownReason::Spindown);
        }
        all
    }
}
