//! The HTTP server of `uploadgate serve`, for the API and the local bucket
//! alike: hyper-util's connection builder, tower-http's body timeout, and
//! an accept loop that holds the limits a public listener needs.
//!
//! * **Header timeout.** A connection whose first request's headers are not
//!   complete within `UPLOADGATE_HEADER_TIMEOUT` is closed, so half-sent
//!   requests cannot hold sockets.
//! * **Idle timeout.** hyper's header-read timer, which starts whenever a
//!   connection waits for a request, is set to `UPLOADGATE_IDLE_TIMEOUT`:
//!   a keep-alive connection that sends nothing for that long is closed.
//! * **Body timeout.** tower-http's `RequestBodyTimeoutLayer`: a body that
//!   sends no data for `UPLOADGATE_BODY_TIMEOUT` fails.
//! * **Connection cap.** At most `UPLOADGATE_MAX_CONNECTIONS` connections,
//!   lowered to fit the process's open-file limit. At the cap a new
//!   connection evicts the oldest one that has not sent a complete request
//!   yet (a slow client, not a served one); if every connection is busy
//!   with real requests, the new one is closed. So a flood of half-sent
//!   requests never keeps `/healthz` (or anyone else) out, and `accept`
//!   never runs out of file descriptors.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::add_extension::AddExtensionLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// File descriptors kept free for everything but client connections (the
/// store, logs, outbound connections, the other listener).
const FD_RESERVE: u64 = 64;

/// The limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to complete the first request's headers.
    pub header_timeout: Duration,
    /// Longest pause between chunks of a request body.
    pub body_timeout: Duration,
    /// Longest a connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Most connections at once.
    pub max_connections: usize,
}

impl Limits {
    /// These limits with the connection cap lowered to fit the open-file
    /// limit (`RLIMIT_NOFILE`), shared by `listeners` listeners. Returns the
    /// limits and whether the cap was lowered.
    pub fn fit_open_files(self, listeners: u64) -> (Self, bool) {
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        let room = soft.saturating_sub(FD_RESERVE) / listeners.max(1);
        let fits = usize::try_from(room).unwrap_or(usize::MAX).max(1);
        if fits < self.max_connections {
            (
                Limits {
                    max_connections: fits,
                    ..self
                },
                true,
            )
        } else {
            (self, false)
        }
    }
}

/// One live connection, as the accept loop sees it.
struct Live {
    id: u64,
    /// Set when hyper hands the connection's first request to the service.
    served: Arc<AtomicBool>,
    abort: tokio::task::AbortHandle,
}

/// The live connections, oldest first.
#[derive(Default)]
struct Table {
    live: Mutex<VecDeque<Live>>,
    next_id: AtomicU64,
}

impl Table {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Live>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes room for one more connection under `max`: evicts the oldest
    /// connection that has not been served. False if every one is serving.
    fn make_room(&self, max: usize) -> bool {
        let mut live = self.lock();
        if live.len() < max {
            return true;
        }
        match live.iter().position(|c| !c.served.load(Ordering::Acquire)) {
            Some(i) => {
                if let Some(c) = live.remove(i) {
                    c.abort.abort();
                }
                true
            }
            None => false,
        }
    }

    fn remove(&self, id: u64) {
        self.lock().retain(|c| c.id != id);
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Serves `service` on `listener` under `limits` until `shutdown`
/// resolves, then lets open requests finish (up to 10 s). The service sees
/// each request with axum's `ConnectInfo<SocketAddr>`.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) where
    S: tower::Service<
            http::Request<tower_http::timeout::TimeoutBody<Incoming>>,
            Response = http::Response<B>,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let table = Arc::new(Table::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors (or another transient error):
                    // shed a slow connection and try again shortly.
                    tracing::warn!(error = %e, connections = table.len(), "accept failed");
                    table.make_room(table.len().max(1));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        if !table.make_room(limits.max_connections) {
            tracing::debug!(%peer, "connection cap reached; every connection is serving; closing the new one");
            drop(stream);
            continue;
        }
        let served = Arc::new(AtomicBool::new(false));
        let svc = ServiceBuilder::new()
            .layer(RequestBodyTimeoutLayer::new(limits.body_timeout))
            .layer(AddExtensionLayer::new(ConnectInfo(peer)))
            .map_request({
                let served = Arc::clone(&served);
                move |req| {
                    served.store(true, Ordering::Release);
                    req
                }
            })
            .service(service.clone());
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn.into_owned());
        let id = table.next_id.fetch_add(1, Ordering::Relaxed);
        let (header_timeout, table_for_task, served_for_task) = (
            limits.header_timeout,
            Arc::clone(&table),
            Arc::clone(&served),
        );
        // Registered before the task can finish, so its removal is never
        // overtaken by its insertion.
        let mut live = table.lock();
        let task = tokio::spawn(async move {
            tokio::pin!(conn);
            let outcome = tokio::select! {
                r = &mut conn => Some(r),
                () = tokio::time::sleep(header_timeout) => None,
            };
            let result = match outcome {
                Some(r) => r,
                // The first request is not in yet: a slow or silent client.
                None if !served_for_task.load(Ordering::Acquire) => {
                    tracing::debug!(%peer, "no complete request within the header timeout; closing");
                    table_for_task.remove(id);
                    return;
                }
                None => conn.await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            table_for_task.remove(id);
        });
        live.push_back(Live {
            id,
            served,
            abort: task.abort_handle(),
        });
        drop(live);
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still open 10 s after shutdown; closing them");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_open_file_limit() {
        let generous = Limits {
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            max_connections: usize::MAX,
        };
        let (fitted, lowered) = generous.fit_open_files(2);
        assert!(lowered);
        assert!(fitted.max_connections < usize::MAX && fitted.max_connections >= 1);
        let small = Limits {
            max_connections: 1,
            ..generous
        };
        assert_eq!(small.fit_open_files(2), (small, false));
    }
}
