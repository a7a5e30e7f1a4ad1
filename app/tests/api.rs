//! The JSON API mirrors the read pages.

mod common;

use common::{Site, author, publish};
use serde_json::Value;

#[tokio::test]
async fn the_json_api_mirrors_the_read_pages() {
    let site = Site::start(2).await;
    let ann = author(&site.pool, "ann").await;
    let first = publish(&site.pool, &ann, "First post", "Hello **API**", "rust web").await;
    let second = publish(&site.pool, &ann, "Second post", "More", "rust").await;
    let app = site.app("app-1").await;

    let response = app.get("/api/posts").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public")
    );
    assert_eq!(
        response.headers()["surrogate-key"],
        format!("front post-{} post-{}", second.id, first.id)
    );
    let list: Value = response.json().await.unwrap();
    assert_eq!(list["page"], 1);
    assert_eq!(list["has_next"], false);
    let slugs: Vec<&str> = list["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|post| post["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["second-post", "first-post"], "newest first");
    assert_eq!(list["posts"][1]["tags"], serde_json::json!(["rust", "web"]));
    assert_eq!(list["posts"][1]["comment_count"], 0);

    let post: Value = app.get("/api/posts/first-post").await.json().await.unwrap();
    assert_eq!(post["post"]["title"], "First post");
    assert!(
        post["post"]["body_html"]
            .as_str()
            .unwrap()
            .contains("<strong>API</strong>")
    );
    assert_eq!(post["comments"], serde_json::json!([]));

    let tag: Value = app.get("/api/tags/web").await.json().await.unwrap();
    assert_eq!(tag["posts"].as_array().unwrap().len(), 1);
    let by_author: Value = app.get("/api/authors/ann").await.json().await.unwrap();
    assert_eq!(by_author["username"], "ann");
    assert_eq!(by_author["posts"].as_array().unwrap().len(), 2);
    let found: Value = app.get("/api/search?q=second").await.json().await.unwrap();
    assert_eq!(found["posts"][0]["slug"], "second-post");

    for (path, status) in [
        ("/api/posts/nope", 404),
        ("/api/tags/nope", 404),
        ("/api/authors/nope", 404),
        ("/api/posts?page=0", 400),
        ("/api/posts?page=x", 400),
        ("/api/search?q=", 400),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}"
        );
    }
}
