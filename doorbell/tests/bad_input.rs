//! Bad webhooks get a clear 4xx and leave nothing but an audit entry; the service goes on.

mod common;

use common::{AUTH_TOKEN, Backend, Doorbell, PUBLIC_URL, start};
use doorbell::signature;

const CALL_SID: &str = "CA0123456789abcdef0123456789abcdef";

fn call_params(call_sid: &str) -> Vec<(String, String)> {
    [
        ("AccountSid", common::ACCOUNT_SID),
        ("CallSid", call_sid),
        ("From", common::INTERCOM),
        ("To", common::TWILIO_NUMBER),
        ("CallStatus", "ringing"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// POSTs `params` to `path`, signed as Twilio would.
async fn signed_post(
    doorbell: &Doorbell,
    path: &str,
    params: &[(String, String)],
) -> (u16, String) {
    post_signed_for(doorbell, path, &format!("{PUBLIC_URL}{path}"), params).await
}

/// POSTs `params` to `path` with a signature over `signed_url`.
async fn post_signed_for(
    doorbell: &Doorbell,
    path: &str,
    signed_url: &str,
    params: &[(String, String)],
) -> (u16, String) {
    let signature = signature::sign(AUTH_TOKEN, signed_url, params);
    let response = reqwest::Client::new()
        .post(format!("{}{path}", doorbell.service.url()))
        .header(signature::HEADER, signature)
        .form(params)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The status of [`signed_post`]'s answer.
async fn status_of(doorbell: &Doorbell, path: &str, params: &[(String, String)]) -> u16 {
    signed_post(doorbell, path, params).await.0
}

fn with(mut params: Vec<(String, String)>, name: &str, value: &str) -> Vec<(String, String)> {
    params.push((name.to_owned(), value.to_owned()));
    params
}

async fn still_serves(doorbell: &Doorbell) {
    let call = doorbell.call(&["1"], &[true]).await;
    assert_eq!(call.dialed(), vec![common::KEN], "the service goes on");
}

#[tokio::test]
async fn an_unsigned_webhook_is_refused() {
    let doorbell = start(Backend::Sqlite).await;
    let response = reqwest::Client::new()
        .post(format!("{}/twilio/voice", doorbell.service.url()))
        .form(&call_params(CALL_SID))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("unsigned request"));
    let events = doorbell.store.events(10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].outcome.as_str(), events[0].detail.as_str()),
        ("refused", "unsigned request")
    );
    still_serves(&doorbell).await;
}

#[tokio::test]
async fn a_signature_for_another_url_is_refused() {
    let doorbell = start(Backend::Sqlite).await;
    let params = call_params(CALL_SID);
    // Signed for /twilio/voice, sent to /twilio/voice/gather.
    let (status, _) = post_signed_for(
        &doorbell,
        "/twilio/voice/gather",
        &format!("{PUBLIC_URL}/twilio/voice"),
        &with(params, "Digits", "4321"),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn the_url_with_the_default_port_is_accepted() {
    let doorbell = start(Backend::Sqlite).await;
    let params = call_params(CALL_SID);
    let (status, body) = post_signed_for(
        &doorbell,
        "/twilio/voice",
        "https://door.example.com:443/twilio/voice",
        &params,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_replayed_incoming_call_is_refused() {
    let doorbell = start(Backend::Sqlite).await;
    let params = call_params(CALL_SID);
    assert_eq!(status_of(&doorbell, "/twilio/voice", &params).await, 200);
    let (status, body) = signed_post(&doorbell, "/twilio/voice", &params).await;
    assert_eq!(status, 403);
    assert!(body.contains("replayed"), "{body}");
}

#[tokio::test]
async fn keys_for_a_call_never_started_are_refused() {
    let doorbell = start(Backend::Sqlite).await;
    let params = with(call_params(CALL_SID), "Digits", common::OWNER_PIN);
    let (status, body) = signed_post(&doorbell, "/twilio/voice/gather", &params).await;
    assert_eq!(status, 403);
    assert!(body.contains("no such call"), "{body}");
    assert_eq!(doorbell.outcomes().await, ["refused"]);
}

#[tokio::test]
async fn missing_parameters_are_a_400() {
    let doorbell = start(Backend::Sqlite).await;
    let no_from: Vec<_> = call_params(CALL_SID)
        .into_iter()
        .filter(|(k, _)| k != "From")
        .collect();
    let (status, body) = signed_post(&doorbell, "/twilio/voice", &no_from).await;
    assert_eq!(status, 400);
    assert!(body.contains("parameter From is missing"), "{body}");

    assert_eq!(
        status_of(&doorbell, "/twilio/voice", &call_params(CALL_SID)).await,
        200
    );
    let (status, body) =
        signed_post(&doorbell, "/twilio/voice/gather", &call_params(CALL_SID)).await;
    assert_eq!(status, 400);
    assert!(body.contains("parameter Digits is missing"), "{body}");
    let last = &doorbell.store.events(1).await.unwrap()[0];
    assert_eq!(
        (last.outcome.as_str(), last.detail.as_str()),
        ("bad-request", "parameter Digits is missing")
    );

    let (status, body) = signed_post(
        &doorbell,
        "/twilio/voice/dial-status?tried=1",
        &call_params(CALL_SID),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("DialCallStatus"), "{body}");
    still_serves(&doorbell).await;
}

#[tokio::test]
async fn repeated_and_malformed_parameters_are_a_400() {
    let doorbell = start(Backend::Sqlite).await;
    assert_eq!(
        status_of(&doorbell, "/twilio/voice", &call_params(CALL_SID)).await,
        200
    );
    let twice = with(with(call_params(CALL_SID), "Digits", "1"), "Digits", "2");
    let (status, body) = signed_post(&doorbell, "/twilio/voice/gather", &twice).await;
    assert_eq!(status, 400);
    assert!(body.contains("Digits is given twice"), "{body}");

    for digits in ["12a4", "1 2", "<script>", &"1".repeat(40)] {
        let params = with(call_params(CALL_SID), "Digits", digits);
        let (status, body) = signed_post(&doorbell, "/twilio/voice/gather", &params).await;
        assert_eq!(status, 400, "Digits={digits:?}");
        assert!(body.contains("Digits holds only"), "{body}");
    }

    let bad_sid = call_params("CA-not-a-sid");
    assert_eq!(status_of(&doorbell, "/twilio/voice", &bad_sid).await, 400);

    let params = with(call_params(CALL_SID), "DialCallStatus", "no-answer");
    assert_eq!(
        status_of(&doorbell, "/twilio/voice/dial-status?tried=5", &params).await,
        400
    );
    assert_eq!(
        status_of(&doorbell, "/twilio/voice/dial-status", &params).await,
        400
    );
    let weird = with(call_params(CALL_SID), "DialCallStatus", "exploded");
    assert_eq!(
        status_of(&doorbell, "/twilio/voice/dial-status?tried=1", &weird).await,
        400
    );

    let outcomes = doorbell.outcomes().await;
    assert_eq!(outcomes[0], "menu");
    assert!(
        outcomes[1..].iter().all(|o| o == "bad-request"),
        "bad requests leave only their audit entries: {outcomes:?}"
    );
    // Eight bad gathers and dial-statuses; the Query rejection of a missing `tried` comes first.
    assert_eq!(outcomes.len(), 1 + 8);
    still_serves(&doorbell).await;
}

#[tokio::test]
async fn a_huge_body_is_a_413() {
    let doorbell = start(Backend::Sqlite).await;
    let params = with(call_params(CALL_SID), "Junk", &"x".repeat(100_000));
    let (status, _) = signed_post(&doorbell, "/twilio/voice", &params).await;
    assert_eq!(status, 413);
    still_serves(&doorbell).await;
}

#[tokio::test]
async fn a_body_that_is_not_a_form_is_a_415() {
    let doorbell = start(Backend::Sqlite).await;
    let response = reqwest::Client::new()
        .post(format!("{}/twilio/voice", doorbell.service.url()))
        .header("content-type", "application/json")
        .body(r#"{"CallSid":"CA1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
}

#[tokio::test]
async fn unknown_tones_are_a_404() {
    let doorbell = start(Backend::Sqlite).await;
    for path in [
        "/twilio/tones/x.wav",
        "/twilio/tones/99.wav",
        "/twilio/tones/9.mp3",
    ] {
        let response = reqwest::get(format!("{}{path}", doorbell.service.url()))
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    let response = reqwest::get(format!("{}/twilio/tones/9.wav", doorbell.service.url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/wav");
}

/// Twilio calls the Dial action even when the visitor hung up while a phone rang.
#[tokio::test]
async fn a_visitor_who_hung_up_ends_the_round() {
    let doorbell = start(Backend::Sqlite).await;
    assert_eq!(
        status_of(&doorbell, "/twilio/voice", &call_params(CALL_SID)).await,
        200
    );
    let mut params = call_params(CALL_SID);
    params.retain(|(k, _)| k != "CallStatus");
    let params = with(
        with(params, "CallStatus", "completed"),
        "DialCallStatus",
        "no-answer",
    );
    let (status, body) = signed_post(&doorbell, "/twilio/voice/dial-status?tried=1", &params).await;
    assert_eq!(status, 200);
    assert!(body.ends_with("<Response><Hangup/></Response>"), "{body}");
    assert_eq!(doorbell.outcomes().await, ["menu", "caller-hung-up"]);
}
