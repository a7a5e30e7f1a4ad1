//! The client-facing listener: an HTTP/1.1 accept loop with the request limits of the current
//! policy, graceful shutdown, and policy reloads that leave open connections alone.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin;
use crate::config::{Config, ConfigError};
use crate::deadline::ConnectionTimer;
use crate::framing::{AmbiguousFraming, FramingGuard};
use crate::headers::Peer;
use crate::metrics::Metrics;
use crate::state::{Policy, Shared};

/// How long in-flight requests may run after shutdown is asked.
pub const GRACE: Duration = service::http::DEFAULT_GRACE;

/// A proxy ready to serve.
#[derive(Debug)]
pub struct Proxy {
    shared: Arc<Shared>,
    reloads: ReloadHandle,
}

/// Replaces the running policy. The binary calls it on SIGHUP; tests call it directly.
///
/// What a reload changes: routes and their policy, pools (unchanged pools keep their
/// connections and health state), cache lifetimes and grace, the admin ACL, and the request
/// limits of new connections. What needs a restart: the listen addresses and the store's
/// memory bound. Cached objects survive a reload.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    shared: Arc<Shared>,
    serial: Arc<tokio::sync::Mutex<()>>,
}

impl ReloadHandle {
    /// Switches to `config`; requests already running finish under the old policy.
    pub async fn reload(&self, config: Config) {
        let _one_at_a_time = self.serial.lock().await;
        let previous = self.shared.policy();
        let policy = Policy::start(config, Some(&previous)).await;
        self.shared.replace_policy(policy);
        Metrics::labelled(&self.shared.metrics.reloads, "result", "ok");
        tracing::info!("policy reloaded");
    }

    /// Reads `path` and switches to it; an invalid file is refused and the running policy stays.
    pub async fn reload_file(&self, path: &Path) -> Result<(), ConfigError> {
        match Config::load(path) {
            Ok(config) => {
                self.reload(config).await;
                Ok(())
            }
            Err(error) => {
                Metrics::labelled(&self.shared.metrics.reloads, "result", "refused");
                tracing::error!(%error, path = %path.display(), "new policy refused; keeping the running one");
                Err(error)
            }
        }
    }
}

impl Proxy {
    /// Starts the pools of `config` (resolving backend names once).
    pub async fn new(config: Config) -> Self {
        let shared = Arc::new(Shared::new(Policy::start(config, None).await));
        let reloads = ReloadHandle {
            shared: shared.clone(),
            serial: Arc::default(),
        };
        Self { shared, reloads }
    }

    pub fn reload_handle(&self) -> ReloadHandle {
        self.reloads.clone()
    }

    /// Serves clients on `listener` and the admin endpoints on `admin` until `shutdown`
    /// resolves, then lets in-flight requests finish for up to [`GRACE`].
    pub async fn serve(
        self,
        listener: TcpListener,
        admin: Option<TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let when_stopped = |mut stopped: watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let admin_task = admin.map(|admin| {
            tracing::info!(addr = ?admin.local_addr().ok(), "admin listening");
            tokio::spawn(service::http::serve(
                admin,
                admin::router(self.shared.clone()),
                when_stopped(stopped.clone()),
                GRACE,
            ))
        });
        tracing::info!(addr = ?listener.local_addr().ok(), "proxy listening");
        let result = accept_loop(self.shared, listener, when_stopped(stopped)).await;
        if let Some(task) = admin_task {
            task.await.map_err(std::io::Error::other)??;
        }
        result
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    service::http::accept_until(listener, shutdown, GRACE, move |stream, peer| {
        let _ = stream.set_nodelay(true);
        let limits = shared.policy().config.limits.clone();
        let mut builder = http1::Builder::new();
        builder
            .timer(ConnectionTimer::default())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes);
        let shared = shared.clone();
        let peer = Peer::new(peer);
        let (stream, ambiguous) = FramingGuard::new(stream, limits.max_header_bytes);
        let requests = Cell::new(0);
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let ordinal = requests.replace(requests.get() + 1);
            if ambiguous.is(ordinal) {
                request.extensions_mut().insert(AmbiguousFraming);
            }
            let (shared, peer) = (shared.clone(), peer.clone());
            async move { Ok::<_, Infallible>(crate::handle::handle(shared, peer, request).await) }
        });
        builder.serve_connection(TokioIo::new(stream), service)
    })
    .await
}
