//! Delivery to one subscriber: its records wait in a bounded backlog, go out in batches (at
//! `maxItems` records, `maxBytes` bytes, or when the oldest has waited `timeoutMs`), one batch
//! at a time and in order, as a JSON array POSTed over a keep-alive HTTP connection or as
//! NDJSON lines over TCP.
//!
//! A listener that is not there yet is retried with backoff (the lambda-extension crate binds
//! its listener after subscribing, and binds again after each connection it accepts), as is
//! one that answers 5xx. A batch the listener refuses (4xx: the crate answers 400 to a batch it
//! cannot parse) or that cannot be delivered within the retry bound is dropped, and so are
//! records that arrive while the backlog is full: either way the subscriber then gets a
//! `platform.logsDropped` record saying how many, as Lambda sends one.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::record::{render, Item, Kind, View};
use super::subscription::Buffering;
use super::Api;
use crate::emulate::LogSink;

/// How many batches' worth of records may wait behind the one in flight before new records
/// are dropped. Lambda does not document its bound; four batches let a healthy listener absorb
/// bursts while a stalled one costs at most 4 MiB per subscriber.
const BACKLOG_BATCHES: usize = 4;

/// The first pause before retrying a delivery; it doubles up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// The longest pause between two attempts.
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Where a subscriber's listener is reached from the emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// POST batches to this URL.
    Http {
        /// `http://<sandbox ip>:<port><path>`.
        url: String,
    },
    /// Write NDJSON lines to this address.
    Tcp {
        /// `<sandbox ip>:<port>`.
        addr: SocketAddr,
    },
}

/// Who a subscriber is and how it wants its records.
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    /// The extension's name.
    pub name: String,
    /// How it sees events (API, schema, log format).
    pub view: View,
    /// The `types` it subscribed to.
    pub types: Vec<Kind>,
    /// Its batching.
    pub buffering: Buffering,
    /// How long one batch is retried before it is dropped.
    pub retry_for: Duration,
}

/// One subscriber: its backlog and the task that delivers it.
pub(crate) struct Subscriber {
    queue: Arc<Queue>,
    task: JoinHandle<()>,
}

impl Subscriber {
    /// Starts delivering to `target` on `runtime`; fails when the HTTP client cannot be built.
    pub(crate) fn spawn(
        profile: Profile,
        target: Target,
        logs: LogSink,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Subscriber, String> {
        let sender = Sender::new(target)?;
        let queue = Arc::new(Queue {
            profile,
            logs,
            backlog: Mutex::new(Backlog::default()),
            wake: Notify::new(),
            settled: watch::Sender::new(0),
        });
        let task = runtime.spawn(deliver(queue.clone(), sender));
        Ok(Subscriber { queue, task })
    }

    /// Who the subscriber is.
    pub(crate) fn profile(&self) -> &Profile {
        &self.queue.profile
    }

    /// Queues `item` at `time`, when the subscriber's API has such a record and its `types`
    /// want it.
    pub(crate) fn offer(&self, item: &Item, time: SystemTime) {
        // Filtered before rendering: function lines are most of what is emitted.
        if !self.queue.profile.types.contains(&item.kind()) {
            return;
        }
        if let Some(rendered) = render(item, time, self.queue.profile.view) {
            self.queue.push(rendered.kind, rendered.json, false);
        }
    }

    /// The backlog, to flush from outside the hub's lock.
    pub(crate) fn queue(&self) -> Arc<Queue> {
        self.queue.clone()
    }

    /// Stops delivery at once; what waits is lost.
    pub(crate) fn stop(&self) {
        self.queue.lock().stopped = true;
        self.queue.wake.notify_one();
        self.task.abort();
    }
}

/// A record waiting for its batch.
struct Waiting {
    json: String,
    since: Instant,
    /// Whether it is a `platform.logsDropped` record: a batch of only those that fails is
    /// not reported again, or a listener refusing everything would be sent reports forever.
    note: bool,
}

/// What waits for delivery, and the counts flushes wait on.
#[derive(Default)]
struct Backlog {
    records: VecDeque<Waiting>,
    bytes: usize,
    /// Records ever queued.
    pushed: u64,
    /// Records handed to batches.
    taken: u64,
    /// Until `taken` reaches this, batches go without waiting for their timeout.
    flush_to: u64,
    /// Records dropped and bytes of them, not yet reported to the subscriber.
    dropped: (u64, u64),
    stopped: bool,
}

/// A batch on its way.
struct Batch {
    records: Vec<String>,
    bytes: usize,
    notes_only: bool,
}

/// What the delivery task does next.
enum Next {
    Send(Batch),
    WaitUntil(Instant),
    Wait,
    Stop,
}

/// One subscriber's backlog, shared by the hub (which pushes) and its delivery task.
pub(crate) struct Queue {
    profile: Profile,
    logs: LogSink,
    backlog: Mutex<Backlog>,
    /// Wakes the delivery task: a first record, a full batch, a flush or a stop.
    wake: Notify,
    /// How many records were delivered or given up.
    settled: watch::Sender<u64>,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Backlog> {
        // A panic while holding the lock leaves counts that are still coherent enough to go
        // on delivering.
        self.backlog.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues one record unless its kind is filtered out, or drops it when the backlog is
    /// full (a `note` is always queued).
    fn push(&self, kind: Kind, json: String, note: bool) {
        if !self.profile.types.contains(&kind) {
            return;
        }
        let buffering = self.profile.buffering;
        let mut backlog = self.lock();
        if backlog.stopped {
            return;
        }
        let full = !backlog.records.is_empty()
            && (backlog.records.len() >= buffering.max_items * BACKLOG_BATCHES
                || backlog.bytes + json.len() > buffering.max_bytes * BACKLOG_BATCHES);
        if full && !note {
            backlog.dropped.0 += 1;
            backlog.dropped.1 += json.len() as u64;
            return;
        }
        self.report_drops(&mut backlog);
        let was_empty = backlog.records.is_empty();
        backlog.bytes += json.len();
        backlog.pushed += 1;
        backlog.records.push_back(Waiting {
            json,
            since: Instant::now(),
            note,
        });
        let batch_full =
            backlog.records.len() >= buffering.max_items || backlog.bytes >= buffering.max_bytes;
        drop(backlog);
        if was_empty || batch_full {
            self.wake.notify_one();
        }
    }

    /// Queues a `platform.logsDropped` record for the records dropped since the last one.
    fn report_drops(&self, backlog: &mut Backlog) {
        let (records, bytes) = std::mem::take(&mut backlog.dropped);
        if records == 0 {
            return;
        }
        let reason = slow_consumer_reason(self.profile.view.schema.api());
        self.logs.line(&format!(
            "[emulator] telemetry: dropped {records} records for extension {}: it reads them slower than they come",
            self.profile.name
        ));
        let item = Item::Dropped {
            reason: reason.into(),
            records,
            bytes,
        };
        if let Some(rendered) = render(&item, SystemTime::now(), self.profile.view) {
            if self.profile.types.contains(&rendered.kind) {
                backlog.bytes += rendered.json.len();
                backlog.pushed += 1;
                backlog.records.push_back(Waiting {
                    json: rendered.json,
                    since: Instant::now(),
                    note: true,
                });
            }
        }
    }

    /// What to do now: send a batch, or wait for one to be due.
    fn next(&self) -> Next {
        let buffering = self.profile.buffering;
        let mut backlog = self.lock();
        if backlog.stopped {
            return Next::Stop;
        }
        let Some(oldest) = backlog.records.front() else {
            return Next::Wait;
        };
        let due = oldest.since + buffering.timeout;
        let now_due = backlog.records.len() >= buffering.max_items
            || backlog.bytes >= buffering.max_bytes
            || backlog.taken < backlog.flush_to
            || due <= Instant::now();
        if !now_due {
            return Next::WaitUntil(due);
        }
        let batch = take(&mut backlog, buffering);
        // The batch made room: records dropped meanwhile are reported now, in their place.
        self.report_drops(&mut backlog);
        Next::Send(batch)
    }

    /// Waits for the next batch; `None` once stopped.
    async fn next_batch(&self) -> Option<Batch> {
        loop {
            match self.next() {
                Next::Send(batch) => return Some(batch),
                Next::Stop => return None,
                Next::Wait => self.wake.notified().await,
                Next::WaitUntil(due) => {
                    let due = tokio::time::Instant::from_std(due);
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep_until(due) => {}
                    }
                }
            }
        }
    }

    /// Records that `batch` was given up for `why`, and tells the subscriber.
    fn failed(&self, batch: &Batch, why: &str) {
        self.logs.line(&format!(
            "[emulator] telemetry: dropped {} records for extension {}: {why}",
            batch.records.len(),
            self.profile.name
        ));
        if batch.notes_only {
            return;
        }
        let item = Item::Dropped {
            reason: format!("could not send events: {why}"),
            records: batch.records.len() as u64,
            bytes: batch.bytes as u64,
        };
        if let Some(rendered) = render(&item, SystemTime::now(), self.profile.view) {
            self.push(rendered.kind, rendered.json, true);
        }
    }

    /// Counts `n` more records as delivered or given up.
    fn settle(&self, n: usize) {
        self.settled.send_modify(|settled| *settled += n as u64);
    }

    /// Sends what waits at once, partial batches included, and waits until all of it is
    /// delivered or given up.
    pub(crate) async fn flush(&self) {
        let target = {
            let mut backlog = self.lock();
            if backlog.stopped {
                return;
            }
            self.report_drops(&mut backlog);
            backlog.flush_to = backlog.pushed;
            backlog.pushed
        };
        self.wake.notify_one();
        let mut settled = self.settled.subscribe();
        // The sender lives as long as this queue, so waiting only ends by reaching the target
        // (or by the caller's deadline).
        let _ = settled.wait_for(|n| *n >= target).await;
    }
}

/// Takes the next batch: at most `max_items` records and, unless one record is larger,
/// `max_bytes` bytes.
fn take(backlog: &mut Backlog, buffering: Buffering) -> Batch {
    let mut batch = Batch {
        records: Vec::new(),
        bytes: 0,
        notes_only: true,
    };
    while let Some(next) = backlog.records.front() {
        let fits = batch.records.is_empty() || batch.bytes + next.json.len() <= buffering.max_bytes;
        if batch.records.len() >= buffering.max_items || !fits {
            break;
        }
        let Some(waiting) = backlog.records.pop_front() else {
            break;
        };
        backlog.bytes -= waiting.json.len();
        batch.bytes += waiting.json.len();
        batch.notes_only &= waiting.note;
        batch.records.push(waiting.json);
    }
    backlog.taken += batch.records.len() as u64;
    batch
}

/// Lambda's reason for records dropped because the subscriber is behind: the Telemetry API's
/// wording, and the Logs API's older one.
pub(crate) fn slow_consumer_reason(api: Api) -> &'static str {
    match api {
        Api::Telemetry => {
            "Some logs were dropped because the downstream consumer is slower than the logs production rate"
        }
        Api::Logs => {
            "Consumer seems to have fallen behind as it has not acknowledged receipt of logs."
        }
    }
}

/// The delivery task: batch after batch until stopped.
async fn deliver(queue: Arc<Queue>, mut sender: Sender) {
    while let Some(batch) = queue.next_batch().await {
        if let Err(why) = sender.send(&batch, queue.profile.retry_for).await {
            queue.failed(&batch, &why);
        }
        queue.settle(batch.records.len());
    }
}

/// How batches reach the listener.
enum Sender {
    Http {
        client: reqwest::Client,
        url: String,
    },
    Tcp {
        addr: SocketAddr,
        stream: Option<TcpStream>,
    },
}

/// Why one attempt failed, and whether another may succeed.
enum Failure {
    /// No listener yet, a broken connection, a 5xx: worth retrying.
    Transient(String),
    /// The listener refused the batch, or part of it may have been written: retrying could
    /// loop or duplicate.
    Final(String),
}

impl Sender {
    fn new(target: Target) -> Result<Sender, String> {
        Ok(match target {
            Target::Http { url } => {
                // One idle connection is kept: the lambda-extension crate serves each
                // accepted connection for good and binds a new listener for the next one.
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .pool_max_idle_per_host(1)
                    .tcp_nodelay(true)
                    .build()
                    .map_err(|e| format!("cannot build the HTTP client: {}", chain(&e)))?;
                Sender::Http { client, url }
            }
            Target::Tcp { addr } => Sender::Tcp { addr, stream: None },
        })
    }

    /// Delivers `batch`, retrying transient failures with backoff for up to `retry_for`.
    async fn send(&mut self, batch: &Batch, retry_for: Duration) -> Result<(), String> {
        let body = match self {
            Sender::Http { .. } => Bytes::from(format!("[{}]", batch.records.join(","))),
            Sender::Tcp { .. } => {
                let mut lines = batch.records.join("\n");
                lines.push('\n');
                Bytes::from(lines)
            }
        };
        let started = Instant::now();
        let mut pause = FIRST_RETRY_PAUSE;
        loop {
            let why = match self.attempt(body.clone()).await {
                Ok(()) => return Ok(()),
                Err(Failure::Final(why)) => return Err(why),
                Err(Failure::Transient(why)) => why,
            };
            if started.elapsed() + pause > retry_for {
                return Err(format!("{why} (retried for {:.1?})", started.elapsed()));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_RETRY_PAUSE);
        }
    }

    /// One attempt at delivering `body`.
    async fn attempt(&mut self, body: Bytes) -> Result<(), Failure> {
        match self {
            Sender::Http { client, url } => post(client, url, body).await,
            Sender::Tcp { addr, stream } => {
                if stream.is_none() {
                    let connected = TcpStream::connect(*addr).await.map_err(|e| {
                        Failure::Transient(format!("cannot connect to {addr}: {e}"))
                    })?;
                    // Records are written whole, line by line: no reason to wait for more.
                    let _ = connected.set_nodelay(true);
                    *stream = Some(connected);
                }
                let Some(connected) = stream.as_mut() else {
                    return Err(Failure::Transient(format!("cannot connect to {addr}")));
                };
                if let Err(e) = connected.write_all(&body).await {
                    *stream = None;
                    return Err(Failure::Final(format!("writing to {addr} failed: {e}")));
                }
                Ok(())
            }
        }
    }
}

/// POSTs one batch: 2xx delivers it, 5xx and connection failures may be retried, anything
/// else is the listener refusing it.
async fn post(client: &reqwest::Client, url: &str, body: Bytes) -> Result<(), Failure> {
    let response = client
        .post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| Failure::Transient(format!("POST {url} failed: {}", chain(&e))))?;
    let status = response.status();
    // The body is read whole so that the connection can carry the next batch.
    let answer = response.bytes().await.unwrap_or_default();
    if status.is_success() {
        return Ok(());
    }
    let answer = String::from_utf8_lossy(&answer);
    let why = format!(
        "POST {url} answered {status}{}{}",
        if answer.is_empty() { "" } else { ": " },
        answer.trim()
    );
    if status.is_server_error() {
        Err(Failure::Transient(why))
    } else {
        Err(Failure::Final(why))
    }
}

/// An error with its causes, `outer: inner: innermost`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
