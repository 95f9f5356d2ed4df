//! The Telemetry API (`2022-07-01`) and the Logs API (`2020-08-15`) of one execution
//! environment: the extensions' subscriptions, and delivery of what happens to them.
//!
//! The emulator reports what happens as [`Event`]s ([`Hub::emit`]): platform events, and every
//! line the runtime and the extensions write. The hub renders each one for every subscriber in
//! the shape its API and schema version define ([`record`]), keeps the subscriber's `types`,
//! and delivers batches as its buffering asks ([`delivery`]). Subscriptions
//! ([`Hub::subscribe`]) are checked as Lambda checks them ([`subscription`]) and accepted until
//! init ends ([`Hub::close_subscriptions`]); what happened before an extension subscribed
//! during init (`platform.initStart`, early log lines) is replayed to it first, as Lambda does.
//!
//! ```ignore
//! let hub = Hub::new(HubConfig { sandbox_ip, log_format, logs, ..HubConfig::default() });
//! hub.emit(Event::InitStart { .. });
//! let answer = hub.subscribe(Api::Telemetry, "my-extension", body); // PUT /2022-07-01/telemetry
//! hub.close_subscriptions();                                         // end of init
//! hub.emit(Event::FunctionLine { line: "hello".into() });
//! hub.flush(Instant::now() + Duration::from_millis(500)).await;      // before SHUTDOWN
//! hub.stop();
//! ```

mod delivery;
mod record;
mod subscription;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use http::StatusCode;
use serde_json::Value;

use self::delivery::{slow_consumer_reason, Profile, Subscriber, Target};
use self::record::{Item, View};
use self::subscription::{Destination, Subscription};
use super::format::error_body;
use super::LogSink;
use crate::config::values::LogFormat;

pub(crate) use self::record::{Event, Phase, Status};

/// How long one batch is retried (no listener yet, 5xx) before it is dropped, by default.
pub(crate) const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(10);

/// How many events are kept for extensions that subscribe later during init.
const REPLAY_ITEMS: usize = 10_000;

/// How much of them (roughly, in bytes) is kept.
const REPLAY_WEIGHT: usize = 4 << 20;

/// Which of the two subscription APIs a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// `PUT /2022-07-01/telemetry`.
    Telemetry,
    /// `PUT /2020-08-15/logs`, which the Telemetry API supersedes.
    Logs,
}

impl Api {
    /// Its name in messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Api::Telemetry => "Telemetry API",
            Api::Logs => "Logs API",
        }
    }

    /// The `errorType` of a bad subscribe request.
    fn validation_error(self) -> &'static str {
        match self {
            Api::Telemetry => "ValidationError",
            Api::Logs => "Logs.ValidationError",
        }
    }

    /// The `errorType` of a subscription after init.
    fn closed_error(self) -> &'static str {
        match self {
            Api::Telemetry => "Telemetry.SubscriptionClosed",
            Api::Logs => "Logs.SubscriptionClosed",
        }
    }
}

/// One execution environment's settings that the hub needs.
#[derive(Debug, Clone)]
pub(crate) struct HubConfig {
    /// Where the extensions' listeners are reached from the emulator: 127.0.0.1 for processes
    /// on this machine (and bubblewrap sandboxes, which share the host network), a container's
    /// IP for Docker.
    pub sandbox_ip: IpAddr,
    /// The function's log format (`deploy.logging.format`): Text gives string `function` and
    /// `extension` records, JSON gives the objects the lines hold (only to Telemetry API
    /// subscribers of schema 2022-12-13 and later).
    pub log_format: LogFormat,
    /// Where the hub's own diagnostics go (a failed delivery, dropped records), as
    /// `[emulator] telemetry: ...` lines.
    pub logs: LogSink,
    /// Whether the environment is a Lambda Managed Instance: only schema 2025-01-29 is
    /// accepted, the Logs API does not exist, no `platform.runtimeDone` is sent and reports
    /// carry only `durationMs`.
    pub managed_instances: bool,
    /// How long one batch is retried before it is dropped (default [`DEFAULT_RETRY_FOR`]).
    pub retry_for: Duration,
}

impl Default for HubConfig {
    /// Extensions on this machine, text logs, diagnostics to stderr, on demand.
    fn default() -> HubConfig {
        HubConfig {
            sandbox_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            log_format: LogFormat::Text,
            logs: LogSink::stderr(),
            managed_instances: false,
            retry_for: DEFAULT_RETRY_FOR,
        }
    }
}

/// What the Runtime API answers a subscribe request with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    /// 200 on success; 400 for a bad body; 403 after init; 404 for the Logs API on Managed
    /// Instances; 500 when the hub cannot deliver.
    pub status: StatusCode,
    /// `"OK"` (a JSON string) on success, else `{"errorMessage": ..., "errorType": ...}`.
    pub body: Value,
}

impl Answer {
    /// Lambda's success answer, the JSON string `"OK"`.
    fn ok() -> Answer {
        Answer {
            status: StatusCode::OK,
            body: Value::String("OK".into()),
        }
    }

    /// An error answer.
    fn error(status: StatusCode, error_type: &str, message: &str) -> Answer {
        Answer {
            status,
            body: error_body(error_type, message),
        }
    }
}

/// One execution environment's telemetry: its extensions' subscriptions, and delivery to them.
pub(crate) struct Hub {
    config: HubConfig,
    state: Mutex<State>,
    /// Whether anything needs events: subscriptions are open (and events are kept for later
    /// subscribers), or somebody subscribed.
    wanted: AtomicBool,
    subscribed: AtomicBool,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("config", &self.config)
            .field("subscribed", &self.has_subscribers())
            .finish_non_exhaustive()
    }
}

/// The hub's mutable part.
#[derive(Default)]
struct State {
    closed: bool,
    stopped: bool,
    subscribers: Vec<Subscriber>,
    replay: Replay,
}

/// The events of init so far, for extensions that subscribe later: bounded, and what did not
/// fit is counted so that a late subscriber is told.
#[derive(Default)]
struct Replay {
    items: Vec<(SystemTime, Arc<Item>)>,
    weight: usize,
    dropped: u64,
    dropped_weight: u64,
}

impl Replay {
    fn record(&mut self, time: SystemTime, item: Arc<Item>) {
        let weight = match &*item {
            Item::Event(event) => event.weight(),
            _ => 256,
        };
        if self.items.len() >= REPLAY_ITEMS || self.weight + weight > REPLAY_WEIGHT {
            self.dropped += 1;
            self.dropped_weight += weight as u64;
            return;
        }
        self.weight += weight;
        self.items.push((time, item));
    }
}

impl Hub {
    /// A hub with no subscriber, accepting subscriptions.
    pub(crate) fn new(config: HubConfig) -> Arc<Hub> {
        Arc::new(Hub {
            config,
            state: Mutex::new(State::default()),
            wanted: AtomicBool::new(true),
            subscribed: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays coherent across a panic elsewhere: keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `PUT /2022-07-01/telemetry` or `PUT /2020-08-15/logs` from the registered extension
    /// named `extension`. Checks the body as Lambda does (schema version, types, buffering
    /// ranges, an HTTP or TCP destination on `sandbox.localdomain`, `sandbox`, `localhost` or
    /// `127.0.0.1` and not port 9001; one API per extension; the Logs API is idempotent) and
    /// starts delivery, the events of init so far first.
    ///
    /// Answers 200 `"OK"`; 400 `ValidationError` (`Logs.ValidationError`) naming every problem
    /// of a bad body, or for an extension subscribed to the other API; 403
    /// `Telemetry.SubscriptionClosed` (`Logs.SubscriptionClosed`) after
    /// [`Hub::close_subscriptions`]; 404 `Logs.NotSupported` for the Logs API on Managed
    /// Instances; 500 for a second Telemetry API subscription of one extension (as AWS's
    /// emulator does) or when delivery cannot start.
    pub(crate) fn subscribe(&self, api: Api, extension: &str, body: &[u8]) -> Answer {
        if api == Api::Logs && self.config.managed_instances {
            return Answer::error(
                StatusCode::NOT_FOUND,
                "Logs.NotSupported",
                "Lambda Managed Instances do not support the Logs API: use the Telemetry API with schema 2025-01-29",
            );
        }
        let subscription = match subscription::parse(api, body, self.config.managed_instances) {
            Ok(subscription) => subscription,
            Err(problems) => {
                return Answer::error(
                    StatusCode::BAD_REQUEST,
                    api.validation_error(),
                    &problems.join("; "),
                )
            }
        };
        let mut state = self.lock();
        if state.closed || state.stopped {
            let message = format!("{} subscription is closed already", api.name());
            return Answer::error(StatusCode::FORBIDDEN, api.closed_error(), &message);
        }
        if let Some(existing) = state
            .subscribers
            .iter()
            .find(|s| s.profile().name == extension)
        {
            return self.resubscribe(api, existing.profile().view.schema.api(), extension);
        }
        let subscriber = match self.start(extension, &subscription) {
            Ok(subscriber) => subscriber,
            Err(why) => {
                self.config.logs.line(&format!(
                    "[emulator] telemetry: cannot deliver to extension {extension}: {why}"
                ));
                return Answer::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    &why,
                );
            }
        };
        replay(&state.replay, &subscriber);
        state.subscribers.push(subscriber);
        self.subscribed.store(true, Ordering::Release);
        // Lambda reports each subscription as a platform event, to the subscribers of that
        // API (this one included) and to later ones through the replay.
        let item = Arc::new(Item::Subscribed {
            api,
            name: extension.to_string(),
            types: subscription.types.clone(),
        });
        broadcast(&mut state, SystemTime::now(), item);
        Answer::ok()
    }

    /// The answer to an extension that subscribed already, with `previous`.
    fn resubscribe(&self, api: Api, previous: Api, extension: &str) -> Answer {
        if previous != api {
            let message = format!(
                "extension {extension} is subscribed to the {} already: an extension uses either the Telemetry API or the Logs API",
                previous.name()
            );
            return Answer::error(StatusCode::BAD_REQUEST, api.validation_error(), &message);
        }
        match api {
            // "Duplicate subscribe requests do not result in duplicate subscriptions."
            Api::Logs => Answer::ok(),
            Api::Telemetry => Answer::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                &format!("extension {extension} is subscribed to the Telemetry API already"),
            ),
        }
    }

    /// Starts delivering to a new subscriber.
    fn start(&self, extension: &str, subscription: &Subscription) -> Result<Subscriber, String> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "no async runtime to deliver from".to_string())?;
        let ip = self.config.sandbox_ip;
        let target = match &subscription.destination {
            Destination::Http { port, path } => Target::Http {
                url: format!("http://{}{path}", SocketAddr::new(ip, *port)),
            },
            Destination::Tcp { port } => Target::Tcp {
                addr: SocketAddr::new(ip, *port),
            },
        };
        let profile = Profile {
            name: extension.to_string(),
            view: View {
                schema: subscription.schema,
                json_logs: self.config.log_format == LogFormat::Json,
                managed_instances: self.config.managed_instances,
            },
            types: subscription.types.clone(),
            buffering: subscription.buffering,
            retry_for: self.config.retry_for,
        };
        Subscriber::spawn(profile, target, self.config.logs.clone(), &runtime)
    }

    /// The end of init: later subscriptions are refused, and init's events are no longer
    /// kept for them.
    pub(crate) fn close_subscriptions(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.replay = Replay::default();
        self.wanted
            .store(!state.subscribers.is_empty(), Ordering::Release);
    }

    /// Whether any extension subscribed.
    pub(crate) fn has_subscribers(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// Whether emitted events go anywhere: subscriptions are still open (events are kept for
    /// extensions that subscribe later), or an extension subscribed. When false, the emulator
    /// may skip building events.
    pub(crate) fn wants_events(&self) -> bool {
        self.wanted.load(Ordering::Acquire)
    }

    /// Records `event` as happening now.
    pub(crate) fn emit(&self, event: Event) {
        self.emit_at(SystemTime::now(), event);
    }

    /// Records `event` as happening at `time` (each record's `time`).
    pub(crate) fn emit_at(&self, time: SystemTime, event: Event) {
        if !self.wants_events() {
            return;
        }
        let mut state = self.lock();
        if state.stopped {
            return;
        }
        broadcast(&mut state, time, Arc::new(Item::Event(event)));
    }

    /// Sends everything waiting, partial batches included, and waits until it is delivered or
    /// given up, at most until `deadline`. Call it before SHUTDOWN goes to the extensions, and
    /// when the runtime's output ends (a crash), as Lambda flushes then.
    pub(crate) async fn flush(&self, deadline: Instant) {
        let queues: Vec<_> = self
            .lock()
            .subscribers
            .iter()
            .map(Subscriber::queue)
            .collect();
        let all = futures_util::future::join_all(queues.iter().map(|q| q.flush()));
        let _ = tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), all).await;
    }

    /// Stops delivery at once (the environment is gone); what waits is lost.
    pub(crate) fn stop(&self) {
        let mut state = self.lock();
        state.stopped = true;
        state.replay = Replay::default();
        for subscriber in &state.subscribers {
            subscriber.stop();
        }
        self.wanted.store(false, Ordering::Release);
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Offers `item` to every subscriber, and keeps it for later ones while init goes on.
fn broadcast(state: &mut State, time: SystemTime, item: Arc<Item>) {
    for subscriber in &state.subscribers {
        subscriber.offer(&item, time);
    }
    if !state.closed {
        state.replay.record(time, item);
    }
}

/// Gives a new subscriber what happened during init so far, and how much of it was not kept.
fn replay(replay: &Replay, subscriber: &Subscriber) {
    for (time, item) in &replay.items {
        subscriber.offer(item, *time);
    }
    if replay.dropped > 0 {
        let api = subscriber.profile().view.schema.api();
        let item = Item::Dropped {
            reason: slow_consumer_reason(api).into(),
            records: replay.dropped,
            bytes: replay.dropped_weight,
        };
        subscriber.offer(&item, SystemTime::now());
    }
}
