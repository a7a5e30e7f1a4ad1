//! The end-to-end checks and the failure drills. Each returns a one-line account of what it saw,
//! or why it failed.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Result, bail, ensure};
use tokio::time::{Instant, sleep};

use crate::compose::Compose;
use crate::load::{SteadyLoad, Tally, Target};
use crate::site::{Page, Site};

/// How long a drill keeps the load running with a tier stopped.
const OUTAGE: Duration = Duration::from_secs(8);
/// How long a tier may take to be back in use after it is started again.
const RECOVERY: Duration = Duration::from_secs(60);
/// Concurrent readers in the drills' steady load, and each one's pause between requests.
const WORKERS: usize = 6;
const PACE: Duration = Duration::from_millis(20);

pub async fn front_page(site: &Site) -> Result<String> {
    let page = site.get("/").await?;
    ensure!(page.status == 200, "status {}", page.status);
    ensure!(page.x_cache.is_some(), "no X-Cache header");
    ensure!(page.served_by.is_some(), "no X-Served-By header");
    ensure!(page.db_queries.is_some(), "no Server-Timing db entry");
    Ok(format!(
        "200, X-Cache {}, X-Served-By {}",
        page.x_cache.unwrap_or_default(),
        page.served_by.unwrap_or_default()
    ))
}

pub async fn load_balanced(site: &Site) -> Result<String> {
    let slug = &site.post_slugs().await?[0];
    let mut instances = BTreeSet::new();
    for _ in 0..12 {
        let page = site.get_bypassing_cache(&format!("/posts/{slug}")).await?;
        ensure!(page.status == 200, "status {}", page.status);
        instances.extend(page.served_by);
    }
    ensure!(instances.len() >= 2, "every request went to {instances:?}");
    Ok(format!("12 requests answered by {instances:?}"))
}

pub async fn second_request_hits(site: &Site) -> Result<String> {
    let path = format!("/posts/{}", site.post_slugs().await?[1]);
    let first = site.get(&path).await?;
    let second = site.get(&path).await?;
    ensure!(
        second.x_cache.as_deref() == Some("HIT"),
        "second request: X-Cache {:?} (first {:?})",
        second.x_cache,
        first.x_cache
    );
    Ok(format!("{:?} then HIT", first.x_cache.unwrap_or_default()))
}

pub async fn comment_after_invalidation(site: &Site) -> Result<String> {
    let slug = site.post_slugs().await?[2].clone();
    let path = format!("/posts/{slug}");
    let session = site.sign_up(&unique("reader")).await?;
    site.get(&path).await?;
    let cached = site.get(&path).await?;
    ensure!(
        cached.x_cache.as_deref() == Some("HIT"),
        "post page not cached before the comment"
    );

    let text = unique("comment");
    session.comment(&slug, &text).await?;
    let seen = poll(Duration::from_secs(10), || async {
        Ok(site.get(&path).await?.body.contains(&text))
    })
    .await?;
    ensure!(
        seen,
        "the anonymous page still lacks the new comment after 10 s"
    );
    Ok("visible to anonymous readers after the purge".into())
}

pub fn demo_call(compose: &Compose) -> Result<String> {
    let output = compose.run(&["--profile", "demo", "run", "--rm", "doorbell-demo"])?;
    let transcript = String::from_utf8_lossy(&output.stdout);
    ensure!(
        transcript.contains("DOOR OPENED"),
        "transcript:\n{transcript}"
    );
    let texts = compose.logs("twilio-fake", 50);
    ensure!(
        texts.contains("text received"),
        "the fake Twilio API recorded no text:\n{texts}"
    );
    Ok("the simulator heard the door open and the residents were texted".into())
}

/// The loadtest profile: a short open-loop run through the proxy, with its report written to the
/// bind-mounted ./loadtest-report.
pub fn loadtest_profile(compose: &Compose) -> Result<String> {
    let report = compose.root().join("loadtest-report/loadtest-report.json");
    let _ = std::fs::remove_file(&report);
    let output = compose.run(&[
        "--profile",
        "loadtest",
        "run",
        "--rm",
        "-T",
        "loadtest",
        "loadtest",
        "--rate",
        "50",
        "--duration",
        "5s",
    ])?;
    let summary = String::from_utf8_lossy(&output.stdout);
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&report)
            .map_err(|e| anyhow::anyhow!("no report at {}: {e}", report.display()))?,
    )?;
    ensure!(
        json.is_object(),
        "the report is not a JSON object:\n{summary}"
    );
    Ok(format!(
        "report written ({} bytes of JSON)",
        json.to_string().len()
    ))
}

/// The drills' load: anonymous readers of cached pages, plus readers with a session cookie,
/// whose requests always reach an app server.
async fn drill_targets(site: &Site) -> Result<Vec<Target>> {
    let slugs = site.post_slugs().await?;
    let mut targets = vec![Target {
        path: "/".into(),
        bypass: false,
    }];
    for slug in slugs.iter().take(6) {
        targets.push(Target {
            path: format!("/posts/{slug}"),
            bypass: false,
        });
        targets.push(Target {
            path: format!("/posts/{slug}"),
            bypass: true,
        });
    }
    Ok(targets)
}

pub async fn stop_app(compose: &Compose, site: &Site) -> Result<String> {
    let load = SteadyLoad::start(site, drill_targets(site).await?, WORKERS, PACE);
    sleep(Duration::from_secs(2)).await;
    load.take().await;
    let (stopping, outage) = take_down(compose, &load, "app-2").await?;
    compose.run(&["start", "app-2"])?;
    compose.wait_healthy(&["app-2"], RECOVERY)?;
    let back = poll(RECOVERY, || async {
        sleep(Duration::from_secs(2)).await;
        Ok(load.take().await.served_by.contains_key("app-2"))
    })
    .await?;
    let rest = load.stop().await;
    println!("  app-2 stopping: {stopping}\n  app-2 down: {outage}");
    ensure!(stopping.failed + outage.failed == 0, "requests failed");
    ensure!(
        !outage.served_by.contains_key("app-2"),
        "app-2 answered while stopped: {outage}"
    );
    ensure!(
        back,
        "the proxy did not send to app-2 again within {RECOVERY:?}: {rest}"
    );
    Ok(format!(
        "{} requests while app-2 stopped and was down, none failed; app-2 back in rotation",
        stopping.sent + outage.sent
    ))
}

pub async fn stop_cache(compose: &Compose, site: &Site) -> Result<String> {
    let load = SteadyLoad::start(site, drill_targets(site).await?, WORKERS, PACE);
    sleep(Duration::from_secs(3)).await;
    let before = load.take().await;
    let (stopping, outage) = take_down(compose, &load, "cache-3").await?;
    compose.run(&["start", "cache-3"])?;
    compose.wait_healthy(&["cache-3"], RECOVERY)?;
    let target = before.pool_hit_ratio() - 0.05;
    let deadline = Instant::now() + RECOVERY;
    let (mut recovered, mut last) = (false, None);
    while !recovered && Instant::now() < deadline {
        sleep(Duration::from_secs(3)).await;
        let window = load.take().await;
        recovered = window.pool_hit_ratio() >= target;
        last = Some(window);
    }
    load.stop().await;
    println!("  before: {before}\n  cache-3 stopping: {stopping}\n  cache-3 down: {outage}");
    ensure!(stopping.failed + outage.failed == 0, "requests failed");
    ensure!(
        recovered,
        "the pool hit ratio did not return to {target:.2} within {RECOVERY:?}: {last:?}"
    );
    Ok(format!(
        "{} requests with cache-3 down, none failed; pool hit ratio {:.0}% before, {:.0}% during, back over {:.0}% after",
        outage.sent,
        before.pool_hit_ratio() * 100.0,
        outage.pool_hit_ratio() * 100.0,
        target * 100.0
    ))
}

pub async fn stop_postgres(compose: &Compose, site: &Site) -> Result<String> {
    let slugs = site.post_slugs().await?;
    // Posts outside the drill's load (which reads the first six), read once and then commented
    // on: the comment soft-purges their cached pages, which the proxy may then serve only if
    // the app fails — as it will, with the post's pool entry deleted and the database down.
    let witnesses: Vec<&String> = slugs.iter().skip(6).take(3).collect();
    ensure!(
        witnesses.len() == 3,
        "the front page links {} posts, the drill needs 9",
        slugs.len()
    );
    let session = site.sign_up(&unique("witness")).await?;
    let mut acknowledged = Vec::new();
    for slug in &witnesses {
        site.get(&format!("/posts/{slug}")).await?;
        let text = unique("before-the-outage");
        session.comment(slug, &text).await?;
        acknowledged.push((slug.to_string(), text));
    }
    // Anonymous readers only: a request with a session cookie needs the database to check it.
    let readers: Vec<Target> = drill_targets(site)
        .await?
        .into_iter()
        .filter(|t| !t.bypass)
        .collect();
    for target in &readers {
        site.get(&target.path).await?;
    }
    let load = SteadyLoad::start(site, readers, WORKERS, PACE);
    sleep(Duration::from_secs(2)).await;
    load.take().await;
    let (stopping, outage) = take_down(compose, &load, "postgres").await?;
    let mut soft_purged = Vec::new();
    for (slug, _) in &acknowledged {
        soft_purged.push(site.get(&format!("/posts/{slug}")).await?);
    }
    let uncached = site
        .get(&format!("/search?q={}", unique("nowhere")))
        .await?;
    compose.run(&["start", "postgres"])?;
    compose.wait_healthy(&["postgres"], RECOVERY)?;
    let recovered = poll(RECOVERY, || async {
        Ok(site
            .get(&format!("/search?q={}", unique("again")))
            .await?
            .status
            == 200)
    })
    .await?;
    load.stop().await;
    let stale = |page: &Page| page.status == 200 && page.x_cache.as_deref() == Some("STALE");
    println!(
        "  postgres stopping: {stopping}\n  postgres down: {outage}; soft-purged pages answered {:?}; \
         an uncached page answered {}",
        soft_purged
            .iter()
            .map(|page| format!("{} {}", page.status, page.x_cache.as_deref().unwrap_or("-")))
            .collect::<Vec<_>>(),
        uncached.status
    );
    ensure!(stopping.failed + outage.failed == 0, "cached pages failed");
    ensure!(
        soft_purged.iter().all(stale),
        "pages soft-purged before the outage were not served stale (stale-if-error)"
    );
    ensure!(
        uncached.status == 503 && !uncached.body.is_empty(),
        "an uncached page answered {} (expected a 503 page) while postgres was down",
        uncached.status
    );
    ensure!(
        recovered,
        "uncached pages did not recover within {RECOVERY:?}"
    );
    for (slug, text) in &acknowledged {
        let page = site.get(&format!("/posts/{slug}")).await?;
        if !page.body.contains(text.as_str()) {
            bail!(
                "the comment acknowledged before the outage on {slug} is not shown (X-Cache {:?})",
                page.x_cache
            );
        }
    }
    Ok(format!(
        "{} cached requests with postgres down, none failed ({} served stale); {} soft-purged \
         pages served stale; uncached → 503; all {} acknowledged comments kept and shown",
        outage.sent,
        outage.stale,
        soft_purged.len(),
        acknowledged.len()
    ))
}

/// Stops `service` under the running `load`, then keeps the load on it for [`OUTAGE`]; returns
/// what the load saw while the service stopped (it may finish what it was doing) and while it
/// was down. Both must be free of failures.
async fn take_down(compose: &Compose, load: &SteadyLoad, service: &str) -> Result<(Tally, Tally)> {
    compose.run(&["stop", service])?;
    let stopping = load.take().await;
    sleep(OUTAGE).await;
    let down = load.take().await;
    ensure!(
        down.sent > 0,
        "no request was sent while {service} was down"
    );
    Ok((stopping, down))
}

/// Calls `probe` until it says yes or `timeout` passes.
async fn poll<F, Fut>(timeout: Duration, mut probe: F) -> Result<bool>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if probe().await.unwrap_or(false) {
            return Ok(true);
        }
        sleep(Duration::from_millis(250)).await;
    }
    Ok(false)
}

/// A name no earlier run used.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}{}{nanos:09}", std::process::id())
}
