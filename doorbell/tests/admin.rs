//! The admin page: behind the token, showing the audit log, guest codes and lockouts.

mod common;

use common::{ADMIN_TOKEN, Backend, OWNER_PIN, start};

async fn get(url: &str, auth: Option<(&str, &str)>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    request = match auth {
        Some(("bearer", token)) => request.bearer_auth(token),
        Some((user, password)) => request.basic_auth(user, Some(password)),
        None => request,
    };
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_page_needs_the_token() {
    let doorbell = start(Backend::Sqlite).await;
    let url = format!("{}/admin", doorbell.service.url());
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    assert_eq!(get(&url, Some(("bearer", "wrong"))).await.0, 401);
    assert_eq!(get(&url, Some(("admin", "wrong"))).await.0, 401);
    assert_eq!(get(&url, Some(("bearer", ADMIN_TOKEN))).await.0, 200);
    assert_eq!(get(&url, Some(("anyone", ADMIN_TOKEN))).await.0, 200);
}

#[tokio::test]
async fn without_a_token_there_is_no_page() {
    // The harness always sets a token; a service without one is started beside it.
    let doorbell = start(Backend::Sqlite).await;
    let config = doorbell::Config {
        settings: common::settings("http://127.0.0.1:9"),
        public_url: common::PUBLIC_URL.into(),
        database_url: doorbell.database_url.clone(),
        auth_token: doorbell::Secret::new(common::AUTH_TOKEN),
        admin_token: None,
    };
    let bare = testkit::spawn(move |l, s| doorbell::run(l, config, s))
        .await
        .ready("/healthz")
        .await;
    assert_eq!(
        get(&format!("{}/admin", bare.url()), Some(("bearer", "")))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn the_page_shows_calls_codes_and_lockouts_escaped() {
    let doorbell = start(Backend::Sqlite).await;
    doorbell
        .add_guest_code("<b>Plumber</b>", "555666", 0, common::HOUR, Some(2))
        .await;
    doorbell.call(&[OWNER_PIN], &[]).await;
    doorbell.call(&["1111", "2222", "3333"], &[]).await;
    let (status, html) = get(
        &format!("{}/admin", doorbell.service.url()),
        Some(("bearer", ADMIN_TOKEN)),
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains("door-opened"));
    assert!(html.contains("lockout-started"));
    assert!(
        html.contains(common::INTERCOM),
        "the locked-out caller is listed"
    );
    assert!(html.contains("Plumber"));
    assert!(!html.contains("<b>Plumber</b>"), "labels are escaped");
    assert!(html.contains("0/2"));
    assert!(!html.contains(OWNER_PIN), "no PIN in clear");
}

#[tokio::test]
async fn metrics_count_outcomes() {
    let doorbell = start(Backend::Sqlite).await;
    doorbell.call(&[OWNER_PIN], &[]).await;
    doorbell.texts(2).await;
    let metrics = doorbell.metrics().await;
    assert!(
        metrics.contains(r#"doorbell_call_outcomes_total{outcome="door-opened"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"doorbell_texts_total{outcome="sent"} 2"#),
        "{metrics}"
    );
}
