//! The page in a real headless Chromium (Debian's `chromium`), against the whole stack running
//! in this process: it loads, draws every tier, its numbers move while load runs, and a
//! screenshot is saved to `target/stackview-screenshot.png`.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::{Page, ScreenshotParams};
use common::{APPS, CACHE_NODES, Stack, serve_view};
use futures::StreamExt;
use serde::Deserialize;

const PATIENCE: Duration = Duration::from_secs(30);

/// What the page shows, read from its DOM.
#[derive(Debug, Deserialize)]
struct Shown {
    generation: i64,
    status: String,
    tiers: Vec<Drawn>,
    edges: Vec<Edge>,
}

#[derive(Debug, Deserialize)]
struct Drawn {
    tier: String,
    name: String,
    up: bool,
    /// The big number, e.g. `12.5req/s`.
    main: String,
    text: String,
}

#[derive(Debug, Deserialize)]
struct Edge {
    edge: String,
    rate: String,
}

const READ_DOM: &str = r#"JSON.stringify({
    generation: Number(document.documentElement.dataset.generation ?? -1),
    status: document.getElementById("status").textContent,
    tiers: [...document.querySelectorAll("[data-tier]")].map((g) => ({
        tier: g.dataset.tier,
        name: g.dataset.name,
        up: g.dataset.up === "true",
        main: g.querySelector("[data-field=main]")?.textContent ?? "",
        text: g.textContent,
    })),
    edges: [...document.querySelectorAll("[data-edge]")].map((e) => ({
        edge: e.dataset.edge,
        rate: e.dataset.rate,
    })),
})"#;

async fn read(page: &Page) -> Shown {
    let json: String = page
        .evaluate(READ_DOM)
        .await
        .expect("the page evaluates scripts")
        .into_value()
        .expect("a string");
    serde_json::from_str(&json).expect("the DOM summary is JSON")
}

/// `12.5req/s` → 12.5, `1.2k…` → 1200; `–` (no rate yet) → None.
fn shown_number(text: &str) -> Option<f64> {
    let digits: String = text
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let value: f64 = digits.parse().ok()?;
    let scale = match text[digits.len()..].chars().next() {
        Some('k') => 1e3,
        Some('M') => 1e6,
        _ => 1.0,
    };
    Some(value * scale)
}

impl Shown {
    fn of(&self, tier: &str) -> Vec<&Drawn> {
        self.tiers.iter().filter(|b| b.tier == tier).collect()
    }

    /// Names of what is moving: boxes whose big number is above zero, arrows carrying traffic.
    fn moving(&self) -> BTreeSet<String> {
        let boxes = self
            .tiers
            .iter()
            .filter(|b| shown_number(&b.main).is_some_and(|n| n > 0.0))
            .map(|b| format!("{}:{}", b.tier, b.name));
        let edges = self
            .edges
            .iter()
            .filter(|e| e.rate.parse::<f64>().is_ok_and(|rate| rate > 0.0))
            .map(|e| e.edge.clone());
        boxes.chain(edges).collect()
    }
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from)
}

fn screenshot_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("stackview-screenshot.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chromium_draws_every_tier_and_its_numbers_move_under_load() {
    let stack = Stack::start().await;
    let view = serve_view(stack.sources()).await;

    let profile = tempfile::tempdir().unwrap();
    let config = BrowserConfig::builder()
        .chrome_executable(chromium())
        // Root in a container: Chromium's sandbox needs user namespaces it does not have.
        .no_sandbox()
        .new_headless_mode()
        .user_data_dir(profile.path())
        .viewport(Viewport {
            width: 1440,
            height: 900,
            device_scale_factor: Some(1.0),
            ..Viewport::default()
        })
        .window_size(1440, 900)
        .args(["--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        // CI builds and tests other crates on the same two cores: be patient.
        .launch_timeout(Duration::from_secs(60))
        .request_timeout(Duration::from_secs(30))
        .build()
        .expect("a browser configuration");
    let (mut browser, mut handler) = Browser::launch(config)
        .await
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium().display()));
    let events = tokio::spawn(async move { while handler.next().await.is_some() {} });

    let page = browser
        .new_page(format!("{}/stack", view.url()))
        .await
        .expect("the page opens");

    // Loads and draws every tier, all up.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let idle = loop {
        let shown = read(&page).await;
        let drawn = shown.of("proxy").len() == 1
            && shown.of("app").len() == APPS
            && shown.of("cache").len() == CACHE_NODES
            && shown.of("database").len() == 1
            && shown.of("doorbell").len() == 1
            && shown.generation >= 2;
        if drawn {
            break shown;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page did not draw every tier: {shown:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        idle.tiers.iter().all(|b| b.up),
        "every tier up: {:#?}",
        idle.tiers
    );
    assert_eq!(idle.status, "live", "{idle:#?}");
    let mut app_names: Vec<&str> = idle.of("app").iter().map(|b| b.name.as_str()).collect();
    app_names.sort_unstable();
    assert_eq!(app_names, ["app-1", "app-2"]);
    let doorbell_before = idle.of("doorbell")[0].text.clone();
    assert!(
        doorbell_before.contains("calls 0"),
        "no call yet: {doorbell_before}"
    );

    // Load runs until everything has been seen moving (bounded in requests and time).
    let stop = AtomicBool::new(false);
    let expected: BTreeSet<String> = idle
        .tiers
        .iter()
        .filter(|b| matches!(b.tier.as_str(), "proxy" | "app" | "client"))
        .map(|b| format!("{}:{}", b.tier, b.name))
        .chain(idle.edges.iter().map(|e| e.edge.clone()))
        .filter(|name| !name.contains("doorbell"))
        .collect();
    let watch = async {
        stack.ring().await;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut seen = BTreeSet::new();
        let mut last_generation = idle.generation;
        let mut generations = 0;
        let shown = loop {
            let shown = read(&page).await;
            if shown.generation != last_generation {
                generations += 1;
                last_generation = shown.generation;
            }
            seen.extend(shown.moving());
            let doorbell_moved = shown.of("doorbell")[0].text != doorbell_before;
            // A few seconds of history, so the screenshot's sparklines show the load.
            if expected.is_subset(&seen) && doorbell_moved && generations >= 6 {
                break shown;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not everything moved: expected {expected:?}, seen {seen:?}; {shown:#?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        page.save_screenshot(
            ScreenshotParams::builder().full_page(true).build(),
            screenshot_path(),
        )
        .await
        .expect("a screenshot");
        stop.store(true, Ordering::Relaxed);
        shown
    };
    let (answered, during) = tokio::join!(stack.load_until(20_000, 8, &stop), watch);
    assert!(answered > 0);
    assert!(
        during.of("doorbell")[0].text.contains("calls 1"),
        "the call through the proxy is counted: {:#?}",
        during.of("doorbell")
    );
    let proxy = shown_number(&during.of("proxy")[0].main);
    eprintln!(
        "proxy showed {proxy:?} req/s; screenshot at {}",
        screenshot_path().display()
    );
    assert!(
        std::fs::metadata(screenshot_path()).is_ok_and(|m| m.len() > 10_000),
        "a real screenshot was written"
    );

    browser.close().await.expect("the browser closes");
    let _ = browser.wait().await;
    events.abort();
}

#[test]
fn numbers_are_read_as_the_page_formats_them() {
    assert_eq!(shown_number("12.5req/s"), Some(12.5));
    assert_eq!(shown_number("1.2kreq/s"), Some(1200.0));
    assert_eq!(shown_number("0cmd/s"), Some(0.0));
    assert_eq!(shown_number("–req/s"), None);
    assert_eq!(shown_number("down"), None);
}
