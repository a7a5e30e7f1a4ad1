//! Health checks: active checks take a failing backend out and bring it back after it recovers;
//! passive ejection takes out a backend that refuses connections or answers 5xx.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Origin, Reply, Seen, TestProxy, config_toml, get};

#[tokio::test]
async fn active_checks_eject_a_failing_backend_and_bring_it_back() {
    let sick = Arc::new(AtomicBool::new(false));
    let flag = sick.clone();
    let a = Origin::start(move |seen: &Seen| {
        if seen.target == "/healthz" && flag.load(Ordering::Relaxed) {
            Reply::status(503)
        } else {
            Reply::ok("a").cache("no-store")
        }
    })
    .await;
    let b = Origin::start(|_: &Seen| Reply::ok("b").cache("no-store")).await;
    let config = config_toml(
        r#"
        [pools.app]
        backends = ["{a}", "{b}"]
        [pools.app.health]
        path = "/healthz"
        interval = "50ms"
        timeout = "200ms"
        rise = 2
        fall = 2
        "#,
        &[("a", &a), ("b", &b)],
    );
    let proxy = TestProxy::start(config).await;
    let a_addr = a.backend();
    let healthy = |addr: String| {
        let proxy = &proxy;
        async move {
            let status = proxy.status().await;
            status["pools"][0]["backends"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["address"] == addr.as_str())
                .unwrap()["healthy"]
                .as_bool()
                .unwrap()
        }
    };
    assert!(healthy(a_addr.clone()).await);
    sick.store(true, Ordering::Relaxed);
    common::eventually(Duration::from_secs(5), "a ejected", || async {
        !healthy(a_addr.clone()).await
    })
    .await;
    let before = a.count("/page");
    for _ in 0..10 {
        assert_eq!(get(&proxy.url("/page")).await.2, "b");
    }
    assert_eq!(a.count("/page"), before);
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains(&format!(
            "proxy_backend_up{{pool=\"app\",backend=\"{a_addr}\"}} 0"
        )),
        "{metrics}"
    );
    sick.store(false, Ordering::Relaxed);
    common::eventually(Duration::from_secs(5), "a back", || healthy(a_addr.clone())).await;
    let bodies: Vec<String> =
        futures::future::join_all((0..6).map(|_| async { get(&proxy.url("/page")).await.2 })).await;
    assert!(bodies.iter().any(|b| b == "a"), "{bodies:?}");
}

#[tokio::test]
async fn passive_ejection_after_consecutive_5xx() {
    let broken = Origin::start(|_: &Seen| Reply::status(500)).await;
    let good = Origin::start(|_: &Seen| Reply::ok("good").cache("no-store")).await;
    let config = config_toml(
        r#"
        [pools.app]
        backends = ["{broken}", "{good}"]
        eject_after = 2
        eject_for = "1m"
        "#,
        &[("broken", &broken), ("good", &good)],
    );
    let proxy = TestProxy::start(config).await;
    for _ in 0..6 {
        get(&proxy.url("/p")).await;
    }
    assert_eq!(broken.count("/p"), 2, "ejected after two 500s");
    for _ in 0..6 {
        assert_eq!(
            get(&proxy.url("/p")).await,
            (200, "PASS".into(), "good".into())
        );
    }
    assert_eq!(broken.count("/p"), 2);
}
