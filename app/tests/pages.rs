//! Every page renders, and read pages follow the HTTP caching contract with the proxy.

mod common;

use common::{CacheNodes, PASSWORD, Site, TestApp, author, migrated_database, publish};

#[tokio::test]
async fn every_page_renders() {
    let site = Site::start(2).await;
    let ann = author(&site.pool, "ann").await;
    let post = publish(
        &site.pool,
        &ann,
        "Consistent hashing in practice",
        "Keys spread over **nodes**.\n\n- one\n- two",
        "caching rust",
    )
    .await;
    let named_like_the_form = publish(&site.pool, &ann, "New", "Body", "").await;
    assert_eq!(named_like_the_form.slug, "new-2", "/posts/new is the form");
    let app = site.app("app-1").await;

    let front = app.page("/").await;
    assert!(front.contains("Consistent hashing in practice"), "{front}");
    assert!(front.contains("href=\"/tags/caching\""));
    assert!(front.contains("0 comments"));

    let page = app.page(&format!("/posts/{}", post.slug)).await;
    assert!(page.contains("<strong>nodes</strong>"), "{page}");
    assert!(page.contains("Log in</a> or <a href=\"/signup\">sign up</a> to comment"));

    assert!(app.page("/tags/rust").await.contains("Consistent hashing"));
    assert!(app.page("/authors/ann").await.contains("Posts by ann"));
    let results = app.page("/search?q=hashing").await;
    assert!(
        results.contains("Consistent hashing in practice"),
        "{results}"
    );
    assert!(app.page("/search?q=").await.contains("<h1>Search</h1>"));
    assert!(
        app.page("/search?q=zebra")
            .await
            .contains("No post matches.")
    );
    assert!(app.page("/login").await.contains("<h1>Log in</h1>"));
    assert!(app.page("/signup").await.contains("<h1>Sign up</h1>"));
    assert_eq!(app.page("/healthz").await, "ok");
    assert_eq!(app.page("/readyz").await, "ready");
    // SIGTERM's path: `run` returns cleanly.
    app.spawned.shutdown().await;
}

#[tokio::test]
async fn read_pages_follow_the_caching_contract() {
    let site = Site::start(1).await;
    let ann = author(&site.pool, "ann").await;
    let post = publish(&site.pool, &ann, "Hello", "World", "rust").await;
    let app = site.app("app-7").await;

    let response = app.get("/").await;
    let headers = response.headers().clone();
    assert_eq!(
        headers["cache-control"],
        "public, max-age=0, s-maxage=300, stale-while-revalidate=30, stale-if-error=86400"
    );
    assert_eq!(headers["surrogate-key"], format!("front post-{}", post.id));
    assert_eq!(headers["x-served-by"], "app-7");
    assert!(
        headers.get("set-cookie").is_none(),
        "anonymous pages set no cookie"
    );
    let timing = headers["server-timing"].to_str().unwrap();
    assert!(
        timing.contains("cache;dur=") && timing.contains("render;dur="),
        "{timing}"
    );

    let etag = headers["etag"].clone();
    let revalidated = app
        .client
        .get(app.url("/"))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
    assert_eq!(revalidated.headers()["etag"], etag);
    assert!(revalidated.text().await.unwrap().is_empty());

    let post_page = app.get(&format!("/posts/{}", post.slug)).await;
    assert_eq!(
        post_page.headers()["surrogate-key"],
        format!("post-{}", post.id)
    );
    let tag_page = app.get("/tags/rust").await;
    assert_eq!(
        tag_page.headers()["surrogate-key"],
        format!("tag-rust post-{}", post.id)
    );
    let author_page = app.get("/authors/ann").await;
    assert_eq!(
        author_page.headers()["surrogate-key"],
        format!("author-{} post-{}", ann.id, post.id)
    );

    // Once logged in, the same page is private.
    app.log_in("ann", PASSWORD).await;
    let private = app.get("/").await;
    assert_eq!(private.headers()["cache-control"], "private, no-store");
    assert!(private.headers().get("etag").is_none());
    assert!(private.headers().get("surrogate-key").is_none());
    assert!(private.text().await.unwrap().contains("Write a post"));
}

#[tokio::test]
async fn unknown_addresses_get_a_404_page() {
    let site = Site::start(1).await;
    let app = site.app("app-1").await;
    for path in [
        "/posts/no-such-post",
        "/posts/Not%20A%20Slug",
        "/tags/nothing",
        "/authors/nobody",
        "/no/such/page",
        "/?page=2",
        "/assets/style.css",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
        let body = response.text().await.unwrap();
        assert!(body.contains("<h1>404 Not Found</h1>"), "{path}: {body}");
    }
    let bad_page = app.get("/?page=zero").await;
    assert_eq!(bad_page.status(), 400);
    assert!(
        bad_page
            .text()
            .await
            .unwrap()
            .contains("<h1>400 Bad Request</h1>")
    );
}

#[tokio::test]
async fn assets_have_hashed_names_and_are_immutable() {
    let site = Site::start(1).await;
    let app = site.app("app-1").await;
    let front = app.page("/").await;
    let start = front.find("/assets/style.").expect("a stylesheet link");
    let end = start + front[start..].find('"').unwrap();
    let href = &front[start..end];
    assert!(
        href.ends_with(".css") && href.len() > "/assets/style..css".len(),
        "{href}"
    );
    let response = app.get(href).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        response.headers()["content-type"],
        "text/css; charset=utf-8"
    );
    assert!(response.text().await.unwrap().contains(":root"));
}

#[tokio::test]
async fn metrics_count_requests_queries_and_cache_lookups() {
    let site = Site::start(1).await;
    let app = site.app("app-1").await;
    app.page("/").await;
    app.page("/").await;
    let metrics = app.page("/metrics").await;
    assert!(
        metrics.contains(r#"app_http_requests_total{method="GET",route="/",status="200"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains("app_http_request_duration_seconds_bucket{"));
    assert!(metrics.contains("app_db_queries_total 1"), "{metrics}");
    assert!(
        metrics.contains(r#"app_http_requests_reaching_db_total{route="/"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("cache_pool_"), "{metrics}");
}

/// Every app server carries the live view of the stack, reading the database it uses.
#[tokio::test]
async fn the_live_view_of_the_stack_is_mounted() {
    let (_database, pool) = migrated_database().await;
    let nodes = CacheNodes::start(1).await;
    let app = TestApp::start(pool, &nodes.arg(), "app-1").await;

    let page = app.get("/stack").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains(r#"<svg id="stack""#));

    let snapshot: serde_json::Value = app.get("/stack.json").await.json().await.unwrap();
    assert!(
        snapshot["database"].is_object(),
        "the view reads this app's database: {snapshot}"
    );
}
