//! Cache-aside through the pool: reads come from the cache, writes invalidate exactly what they
//! change (across app instances sharing the pool), and the proxy is told what to purge.

mod common;

use std::sync::{Arc, Mutex};

use axum::routing::post;
use common::{PASSWORD, Site, TestApp, author, db_queries, migrated_database, publish};

#[tokio::test]
async fn a_second_read_makes_no_database_query() {
    let site = Site::start(2).await;
    let ann = author(&site.pool, "ann").await;
    let post = publish(&site.pool, &ann, "Cached", "Body", "rust").await;
    let app = site.app("app-1").await;
    for path in [
        "/".to_owned(),
        format!("/posts/{}", post.slug),
        "/tags/rust".to_owned(),
        "/authors/ann".to_owned(),
        "/search?q=cached".to_owned(),
        "/api/search?q=body".to_owned(),
    ] {
        let first = app.get(&path).await;
        assert_eq!(first.status(), 200, "{path}");
        assert!(db_queries(&first) > 0, "{path}: the first read loads");
        let second = app.get(&path).await;
        assert_eq!(second.status(), 200, "{path}");
        assert_eq!(db_queries(&second), 0, "{path}: the second read is a hit");
        let timing = second.headers()["server-timing"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(timing.contains("0 misses"), "{path}: {timing}");
    }
    // The API reads the same cache entries as the pages it mirrors.
    for path in ["/api/posts".to_owned(), format!("/api/posts/{}", post.slug)] {
        let response = app.get(&path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(db_queries(&response), 0, "{path}");
    }
}

#[tokio::test]
async fn a_new_comment_shows_on_the_next_read_through_either_instance() {
    let site = Site::start(2).await;
    let ann = author(&site.pool, "ann").await;
    let post = publish(&site.pool, &ann, "Shared pool", "Body", "caching").await;
    let one = site.app("app-1").await;
    let two = site.app("app-2").await;
    let path = format!("/posts/{}", post.slug);

    // Both instances read (and the pool caches) the post and the listings first.
    for app in [&one, &two] {
        assert!(!app.page(&path).await.contains("First!"));
        assert!(app.page("/").await.contains("0 comments"));
        assert!(app.page("/tags/caching").await.contains("0 comments"));
    }
    let warm = two.get(&path).await;
    assert_eq!(db_queries(&warm), 0, "app-2 reads what app-1 cached");
    assert_eq!(warm.headers()["x-served-by"], "app-2");

    one.sign_up("bob").await;
    let token = one.form_token(&path).await;
    let response = one.comment(&path, &token, "First!").await;
    assert_eq!(response.status(), 303);
    assert!(
        response.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(&path)
    );

    assert!(two.page(&path).await.contains("First!"), "app-2 sees it");
    assert!(one.page(&path).await.contains("First!"), "app-1 sees it");
    assert!(two.page("/").await.contains("1 comment"));
    assert!(two.page("/tags/caching").await.contains("1 comment"));
    assert!(two.page("/authors/ann").await.contains("1 comment"));
}

#[tokio::test]
async fn a_new_post_shows_on_every_listing_it_belongs_to() {
    let site = Site::start(2).await;
    let ann = author(&site.pool, "ann").await;
    publish(&site.pool, &ann, "Older post", "Body", "rust").await;
    let one = site.app("app-1").await;
    let two = site.app("app-2").await;
    for path in ["/", "/tags/rust", "/authors/ann", "/api/posts"] {
        assert!(!two.page(path).await.contains("Brand new"), "{path}");
    }
    assert_eq!(two.get("/tags/fresh").await.status(), 404);

    one.log_in("ann", PASSWORD).await;
    let token = one.form_token("/posts/new").await;
    let response = one
        .new_post(&token, "Brand new", "Fresh *content*", "rust fresh")
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/posts/brand-new");

    for path in [
        "/",
        "/tags/rust",
        "/tags/fresh",
        "/authors/ann",
        "/api/posts",
    ] {
        assert!(two.page(path).await.contains("Brand new"), "{path}");
    }
    assert!(
        two.page("/posts/brand-new")
            .await
            .contains("<em>content</em>")
    );
}

/// A purge the proxy received: its surrogate keys, and whether it was soft.
type Purge = (String, bool);

/// A stand-in for the proxy's admin endpoint that records the purges it receives.
async fn fake_proxy_admin() -> (String, Arc<Mutex<Vec<Purge>>>) {
    let purges = Arc::new(Mutex::new(Vec::new()));
    let recorded = purges.clone();
    let router = axum::Router::new().route(
        "/purge",
        post(move |headers: axum::http::HeaderMap| {
            let recorded = recorded.clone();
            async move {
                let keys = headers["surrogate-key"].to_str().unwrap().to_owned();
                let soft = headers.get("soft-purge").is_some_and(|value| value == "1");
                recorded.lock().unwrap().push((keys, soft));
                "purged"
            }
        }),
    );
    let listener = testkit::bind_port_0().await;
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, purges)
}

#[tokio::test]
async fn writes_ask_the_proxy_to_purge_by_surrogate_key() {
    let site = Site::start(1).await;
    let ann = author(&site.pool, "ann").await;
    let post = publish(&site.pool, &ann, "Purge me", "Body", "rust").await;
    let (admin_url, purges) = fake_proxy_admin().await;
    let app = site.app_with_proxy("app-1", Some(admin_url)).await;

    app.log_in("ann", PASSWORD).await;
    let path = format!("/posts/{}", post.slug);
    let token = app.form_token(&path).await;
    let response = app.comment(&path, &token, "Hi").await;
    assert_eq!(response.status(), 303);
    let response = app.new_post(&token, "Second", "B", "go").await;
    assert_eq!(response.status(), 303);

    let purges = purges.lock().unwrap().clone();
    assert_eq!(purges.len(), 2, "{purges:?}");
    // Soft, so the proxy keeps the old pages for stale-if-error.
    assert!(purges.iter().all(|(_, soft)| *soft), "{purges:?}");
    assert_eq!(purges[0].0, format!("post-{}", post.id));
    let new_post_keys: Vec<&str> = purges[1].0.split(' ').collect();
    for key in ["search", "front", "tag-go", &format!("author-{}", ann.id)] {
        assert!(new_post_keys.contains(&key), "{key} in {new_post_keys:?}");
    }
}

#[tokio::test]
async fn a_failed_purge_does_not_fail_the_write() {
    let site = Site::start(1).await;
    let ann = author(&site.pool, "ann").await;
    let post = publish(&site.pool, &ann, "No proxy", "Body", "").await;
    // Nothing listens there.
    let closed = testkit::bind_port_0().await.local_addr().unwrap();
    let app = site
        .app_with_proxy("app-1", Some(format!("http://{closed}")))
        .await;
    app.sign_up("bob").await;
    let path = format!("/posts/{}", post.slug);
    let token = app.form_token(&path).await;
    let response = app.comment(&path, &token, "Saved").await;
    assert_eq!(response.status(), 303);
    assert!(app.page(&path).await.contains("Saved"));
}

#[tokio::test]
async fn pages_are_served_from_the_database_when_the_cache_pool_is_down() {
    let (_database, pool) = migrated_database().await;
    let ann = author(&pool, "ann").await;
    let post = publish(&pool, &ann, "Still here", "Body", "rust").await;
    let closed = testkit::bind_port_0().await.local_addr().unwrap();
    let app = TestApp::start(pool, &closed.to_string(), "app-1").await;
    for path in [
        "/".to_owned(),
        format!("/posts/{}", post.slug),
        "/tags/rust".to_owned(),
    ] {
        for _ in 0..2 {
            let response = app.get(&path).await;
            assert_eq!(response.status(), 200, "{path}");
            assert!(
                db_queries(&response) > 0,
                "{path}: every read goes to the database"
            );
            assert!(response.text().await.unwrap().contains("Still here"));
        }
    }
    // Writes work too: invalidation of an unreachable pool is skipped.
    app.sign_up("bob").await;
}

#[tokio::test]
async fn with_the_database_down_cached_pages_are_served_and_others_get_a_503_page() {
    let site = Site::start(2).await;
    let ann = author(&site.pool, "ann").await;
    let cached = publish(&site.pool, &ann, "Cached", "Body", "").await;
    let uncached = publish(&site.pool, &ann, "Uncached", "Body", "").await;
    let healthy = site.app("app-1").await;
    healthy.page(&format!("/posts/{}", cached.slug)).await;

    // A second instance whose database is unreachable, sharing the pool.
    let closed = testkit::bind_port_0().await.local_addr().unwrap();
    let unreachable = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_secs(2))
        .connect_lazy(&format!("postgres://nobody@{closed}/nothing"))
        .unwrap();
    let broken = TestApp::start(unreachable, &site.nodes.arg(), "app-2").await;

    let response = broken.get(&format!("/posts/{}", cached.slug)).await;
    assert_eq!(response.status(), 200, "served from the cache");
    let response = broken.get(&format!("/posts/{}", uncached.slug)).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = response.text().await.unwrap();
    assert!(body.contains("<h1>503 Service Unavailable</h1>"), "{body}");
    assert_eq!(broken.get("/readyz").await.status(), 503);
    assert_eq!(broken.get("/healthz").await.status(), 200);
    assert_eq!(broken.get("/api/posts/uncached").await.status(), 503);
}
