//! The HTTP server loop of the emulator's listeners (the Invoke API, the HTTP fronts), made to
//! stay up and answer well-behaved clients while others abuse it, as Lambda's endpoints do:
//!
//! - a client gets [`HEADER_TIMEOUT`] to send a request's headers, then its connection is
//!   closed (slowloris clients would otherwise hold connections, and file descriptors, forever);
//! - the file-descriptor limit is raised to the hard limit once, so that a thousand connections
//!   fit under a default soft limit of 1024, and an accept that fails for lack of descriptors
//!   (or memory) waits a moment and goes on rather than ending the server;
//! - requests that are not HTTP, or whose headers are too large or malformed, are answered by
//!   hyper with 400 or 431 and closed; bodies are bounded by the handlers (6 MB).
//!
//! axum's own `serve` sets none of these: it gives hyper no timer, so no timeout applies.

use std::future::Future;
use std::sync::Once;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long a client has to send a request's headers (hyper's own default, which it only applies
/// with a timer). It also bounds how long a kept-alive connection may sit idle.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown` completes, then lets the connections in flight
/// finish their requests (and closes idle ones) before returning. Each request carries the
/// peer's [`ConnectInfo`].
pub async fn serve(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()>) {
    raise_fd_limit();
    let (stop, stopping) = watch::channel(false);
    let (done, mut all_done) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => {
                    // Out of descriptors or memory for a moment (EMFILE, ENFILE, ENOMEM), or
                    // a connection reset before it was accepted: none of them ends the server.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service =
            TowerToHyperService::new(app.clone().layer(axum::Extension(ConnectInfo(peer))));
        let mut stopping = stopping.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            loop {
                tokio::select! {
                    _ = connection.as_mut() => break,
                    changed = stopping.changed() => {
                        if changed.is_err() || *stopping.borrow() {
                            connection.as_mut().graceful_shutdown();
                            let _ = connection.as_mut().await;
                            break;
                        }
                    }
                }
            }
            drop(done);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    drop(done);
    // Every connection task holds a sender; `changed` fails once the last one is gone.
    while all_done.changed().await.is_ok() {}
}

/// Raises this process's soft limit on open files to its hard limit, once.
fn raise_fd_limit() {
    static RAISED: Once = Once::new();
    RAISED.call_once(|| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0
                && limit.rlim_cur < limit.rlim_max
            {
                limit.rlim_cur = limit.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
    });
}
