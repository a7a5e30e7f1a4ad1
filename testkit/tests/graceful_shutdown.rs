//! A service started on port 0 answers, and a graceful shutdown lets an in-flight request finish
//! within the grace period, and cuts it off after.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::sync::Notify;

/// A router whose `/slow` handler tells the test it has started, then waits for the test's go.
fn slow_router(entered: Arc<Notify>, release: Arc<Notify>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/slow",
            get(move || async move {
                entered.notify_one();
                release.notified().await;
                "finished"
            }),
        )
}

#[tokio::test]
async fn shutdown_waits_for_the_request_in_flight() {
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let router = slow_router(entered.clone(), release.clone());
    let mut service = testkit::spawn(|listener, shutdown| {
        service::http::serve(listener, router, shutdown, Duration::from_secs(30))
    })
    .await
    .ready("/healthz")
    .await;

    let url = format!("{}/slow", service.url());
    let in_flight = tokio::spawn(async move { reqwest::get(url).await?.text().await });
    entered.notified().await;

    service.begin_shutdown();
    // New connections are refused once shutdown has begun…
    let health = format!("{}/healthz", service.url());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while reqwest::get(&health).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still accepting after shutdown"
        );
        tokio::task::yield_now().await;
    }
    // …while the request already in flight still completes.
    release.notify_one();
    assert_eq!(in_flight.await.unwrap().unwrap(), "finished");
    service.shutdown().await;
}

#[tokio::test]
async fn shutdown_cuts_off_requests_after_the_grace_period() {
    let (entered, never_released) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let router = slow_router(entered.clone(), never_released);
    let mut service = testkit::spawn(|listener, shutdown| {
        service::http::serve(listener, router, shutdown, Duration::from_millis(200))
    })
    .await
    .ready("/healthz")
    .await;

    let url = format!("{}/slow", service.url());
    let hanging = tokio::spawn(async move { reqwest::get(url).await?.text().await });
    entered.notified().await;

    service.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(10), service.shutdown())
        .await
        .expect("the server stopped at the end of its grace period");
    assert!(
        hanging.await.unwrap().is_err(),
        "the hanging request was cut off"
    );
}
