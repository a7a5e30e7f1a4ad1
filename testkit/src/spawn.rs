//! Starting one of the project's services in-process on port 0.
//!
//! Every service exposes `run(listener, config, shutdown)`. [`spawn`] hands it a listener bound
//! to 127.0.0.1:0 and a shutdown future that [`Spawned::shutdown`] resolves, so a test knows the
//! address before the service starts and can stop it gracefully at the moment it chooses.

use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The future a spawned service must stop on.
pub type ShutdownSignal = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// How long [`wait_for_http`] waits for a service to answer before failing the test.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A listener on 127.0.0.1 with a port the system chose.
pub async fn bind_port_0() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding 127.0.0.1:0 must work in a test")
}

/// A service running in this process.
#[derive(Debug)]
pub struct Spawned<E> {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), E>>,
}

/// Starts `run(listener, shutdown)` on a fresh port-0 listener.
///
/// `run` is usually a closure over the service's config:
/// `spawn(|listener, shutdown| app::run(listener, config, shutdown))`.
pub async fn spawn<F, Fut, E>(run: F) -> Spawned<E>
where
    F: FnOnce(TcpListener, ShutdownSignal) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    let listener = bind_port_0().await;
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown: ShutdownSignal = Box::pin(async move {
        // A dropped sender (the test ended without calling `shutdown`) also stops the service.
        let _ = stopped.await;
    });
    let task = tokio::spawn(run(listener, shutdown));
    Spawned {
        addr,
        stop: Some(stop),
        task,
    }
}

impl<E: Debug> Spawned<E> {
    /// `http://<addr>` — the base URL of an HTTP service.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until `GET <path>` answers with a success status.
    pub async fn ready(self, path: &str) -> Self {
        wait_for_http(&format!("{}{path}", self.url())).await;
        self
    }

    /// Resolves the service's shutdown future without waiting for it to stop.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Asks the service to stop and waits until `run` has returned; panics if it returned an
    /// error or panicked.
    pub async fn shutdown(mut self) {
        self.begin_shutdown();
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => panic!("service stopped with an error: {error:?}"),
            Err(join_error) => panic!("service task failed: {join_error}"),
        }
    }
}

/// Polls `url` until it answers 2xx, failing the test after a bound.
pub async fn wait_for_http(url: &str) {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    let mut last = String::from("no attempt");
    while tokio::time::Instant::now() < deadline {
        match client.get(url).timeout(Duration::from_secs(2)).send().await {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => last = format!("status {}", response.status()),
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{url} did not become ready within {READY_TIMEOUT:?}: {last}");
}
