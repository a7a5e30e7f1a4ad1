//! Bad input gets a clear answer and changes nothing: invalid forms, oversize bodies, SQL
//! injection and XSS attempts.

mod common;

use common::{PASSWORD, Site, author, count, publish};

#[tokio::test]
async fn an_invalid_form_is_shown_again_with_messages_and_nothing_is_saved() {
    let site = Site::start(1).await;
    let ann = author(&site.pool, "ann").await;
    let post = publish(&site.pool, &ann, "Existing", "Body", "").await;
    let app = site.app("app-1").await;
    app.log_in("ann", PASSWORD).await;
    let token = app.form_token("/posts/new").await;

    let response = app.new_post(&token, "  ", "Kept *draft*", "ok c++").await;
    assert_eq!(response.status(), 422);
    assert_eq!(response.headers()["cache-control"], "private, no-store");
    let body = response.text().await.unwrap();
    assert!(body.contains("The title is empty."), "{body}");
    assert!(body.contains("is not a valid tag"), "{body}");
    assert!(
        body.contains("Kept *draft*</textarea>"),
        "the draft is kept"
    );
    assert_eq!(count(&site.pool, "posts").await, 1);

    let path = format!("/posts/{}", post.slug);
    let response = app.comment(&path, &token, " \n ").await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("The comment is empty.")
    );
    assert_eq!(count(&site.pool, "comments").await, 0);

    let response = app.comment("/posts/no-such-post", &token, "x").await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn an_oversize_body_is_refused_with_413() {
    let site = Site::start(1).await;
    author(&site.pool, "ann").await;
    let app = site.app("app-1").await;
    app.log_in("ann", PASSWORD).await;
    let token = app.form_token("/posts/new").await;
    let huge = "x".repeat(app::MAX_BODY_BYTES + 1);
    let response = app.new_post(&token, "Huge", &huge, "").await;
    assert_eq!(response.status(), 413);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("413 Payload Too Large")
    );
    assert_eq!(count(&site.pool, "posts").await, 0);
    // The app goes on.
    assert_eq!(app.get("/").await.status(), 200);
}

#[tokio::test]
async fn sql_injection_is_inert() {
    let site = Site::start(1).await;
    let ann = author(&site.pool, "ann").await;
    let post = publish(&site.pool, &ann, "Target", "Body", "").await;
    let app = site.app("app-1").await;
    let attack = "x' OR '1'='1'; DROP TABLE posts; --";

    let encoded: String = url::form_urlencoded::byte_serialize(attack.as_bytes()).collect();
    assert_eq!(app.get(&format!("/posts/{encoded}")).await.status(), 404);
    assert_eq!(app.get(&format!("/tags/{encoded}")).await.status(), 404);
    assert_eq!(app.get(&format!("/authors/{encoded}")).await.status(), 404);
    let results = app.page(&format!("/search?q={encoded}")).await;
    assert!(
        !results.contains("/posts/target"),
        "the attack matches nothing"
    );
    let response = app.log_in(attack, attack).await;
    assert_eq!(response.status(), 422);

    // Bound parameters store the text as text.
    app.log_in("ann", PASSWORD).await;
    let path = format!("/posts/{}", post.slug);
    let token = app.form_token(&path).await;
    let response = app.comment(&path, &token, attack).await;
    assert_eq!(response.status(), 303);
    assert_eq!(count(&site.pool, "posts").await, 1);
    let stored: String = sqlx::query_scalar("SELECT body FROM comments")
        .fetch_one(&site.pool)
        .await
        .unwrap();
    assert_eq!(stored, attack);
}

#[tokio::test]
async fn xss_is_inert() {
    let site = Site::start(1).await;
    author(&site.pool, "ann").await;
    let app = site.app("app-1").await;
    app.log_in("ann", PASSWORD).await;
    let token = app.form_token("/posts/new").await;
    let response = app
        .new_post(
            &token,
            "<script>alert('title')</script> Hello",
            "<script>alert('body')</script>\n\n<img src=x onerror=\"alert('img')\">\n\n\
             [click](javascript:alert('link'))",
            "",
        )
        .await;
    assert_eq!(response.status(), 303);
    let path = response.headers()["location"].to_str().unwrap().to_owned();
    let response = app
        .comment(&path, &token, "<script>alert('comment')</script>")
        .await;
    assert_eq!(response.status(), 303);

    for page in [app.page(&path).await, app.page("/").await] {
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("onerror"), "{page}");
        assert!(!page.contains("javascript:"), "{page}");
    }
    let page = app.page(&path).await;
    // Shown as text, escaped.
    assert!(
        page.contains("&#60;script&#62;alert(&#39;title&#39;)"),
        "{page}"
    );
    assert!(
        page.contains("&#60;script&#62;alert(&#39;comment&#39;)"),
        "{page}"
    );
}
