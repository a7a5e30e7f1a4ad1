//! Sign-up, log-in and log-out, with the session cookie and CSRF tokens.

mod common;

use common::{PASSWORD, Site, browser, count, csrf_token};

#[tokio::test]
async fn sign_up_log_out_and_log_in_with_csrf() {
    let site = Site::start(1).await;
    let app = site.app("app-1").await;

    // The form starts a session: the one cookie the app sets.
    let response = app.get("/signup").await;
    assert_eq!(response.headers()["cache-control"], "private, no-store");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("leanstack_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let token = csrf_token(&response.text().await.unwrap());

    // Without the token (or with another) nothing happens.
    let fields = [
        ("username", "carol"),
        ("display_name", "Carol"),
        ("password", PASSWORD),
    ];
    let forged = app.post_form("/signup", &fields).await;
    assert_eq!(forged.status(), 403);
    let mut with_wrong_token = fields.to_vec();
    with_wrong_token.push(("csrf_token", "forged"));
    assert_eq!(
        app.post_form("/signup", &with_wrong_token).await.status(),
        403
    );
    // A request from a browser without the session cannot reuse a token either.
    let stranger = browser()
        .post(app.url("/signup"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("username", "carol"),
            ("password", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 403);
    assert_eq!(count(&site.pool, "users").await, 0);

    let mut signed = fields.to_vec();
    signed.push(("csrf_token", &token));
    let response = app.post_form("/signup", &signed).await;
    assert_eq!(response.status(), 303);
    let session = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(session.starts_with("leanstack_session="));
    assert_ne!(session, cookie, "log-in starts a new session");
    let front = app.page("/").await;
    assert!(
        front.contains("Carol") && front.contains("Log out"),
        "{front}"
    );
    assert!(!front.contains("Write a post"), "new users are readers");

    // Log out, with the token of the new session.
    let response = app
        .post_form("/logout", &[("csrf_token", &csrf_token(&front))])
        .await;
    assert_eq!(response.status(), 303);
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert!(app.page("/").await.contains("Log in"));

    // A wrong password re-renders the form; the right one logs in.
    let response = app.log_in("carol", "wrong password!").await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("do not match"));
    let response = app.log_in("carol", PASSWORD).await;
    assert_eq!(response.status(), 303);
    assert!(app.page("/").await.contains("Carol"));
}

#[tokio::test]
async fn a_taken_username_or_short_password_is_explained() {
    let site = Site::start(1).await;
    let app = site.app("app-1").await;
    common::author(&site.pool, "ann").await;
    let token = app.form_token("/signup").await;
    let response = app.submit_sign_up(&token, "ann", "long enough").await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("That username is taken.")
    );
    let response = app.submit_sign_up(&token, "dan", "short").await;
    assert_eq!(response.status(), 422);
    let body = response.text().await.unwrap();
    assert!(body.contains("at least 8 characters"), "{body}");
    assert!(
        body.contains("value=\"dan\""),
        "the form keeps what was typed"
    );
    assert_eq!(count(&site.pool, "users").await, 1);
}

#[tokio::test]
async fn the_cookie_is_secure_behind_a_tls_proxy() {
    let site = Site::start(1).await;
    let app = site.app("app-1").await;
    let response = app
        .client
        .get(app.url("/login"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn writing_needs_a_login_and_posting_needs_an_author() {
    let site = Site::start(1).await;
    let app = site.app("app-1").await;
    let response = app.get("/posts/new").await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/login");

    app.sign_up("reader").await;
    let token = app.form_token("/").await;
    let response = app.get("/posts/new").await;
    assert_eq!(response.status(), 403);
    let response = app.new_post(&token, "T", "B", "").await;
    assert_eq!(response.status(), 403);
    assert_eq!(count(&site.pool, "posts").await, 0);
}
