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

/// A request as Twilio sends it to the `/twilio/voice` URL of a phone number: every parameter
/// its reference lists for voice requests, with the older `Caller*`/`Called*` names.
fn everything_twilio_sends(call_sid: &str, call_status: &str) -> Vec<(String, String)> {
    let mut params = call_params(call_sid);
    params.retain(|(k, _)| k != "CallStatus");
    for (name, value) in [
        ("CallStatus", call_status),
        ("ApiVersion", "2010-04-01"),
        ("Direction", "inbound"),
        ("Called", common::TWILIO_NUMBER),
        ("Caller", common::INTERCOM),
        ("ForwardedFrom", "+15550007777"),
        ("CallerName", "LOBBY INTERCOM"),
        ("ParentCallSid", ""),
        (
            "CallToken",
            "%7B%22parentCallInfoToken%22%3A%22eyJhbGciOiJFUzI1NiJ9%22%7D",
        ),
        ("StirVerstat", "TN-Validation-Passed-A"),
        ("AddOns", r#"{"status":"successful","results":{}}"#),
        ("CallerCity", "SAN FRANCISCO"),
        ("CallerState", "CA"),
        ("CallerZip", "94105"),
        ("CallerCountry", "US"),
        ("CalledCity", ""),
        ("CalledState", "CA"),
        ("CalledZip", ""),
        ("CalledCountry", "US"),
        ("FromCity", "SAN FRANCISCO"),
        ("FromState", "CA"),
        ("FromZip", "94105"),
        ("FromCountry", "US"),
        ("ToCity", ""),
        ("ToState", "CA"),
        ("ToZip", ""),
        ("ToCountry", "US"),
    ] {
        params.push((name.to_owned(), value.to_owned()));
    }
    params
}

#[tokio::test]
async fn every_parameter_twilio_documents_is_accepted() {
    let doorbell = start(Backend::Sqlite).await;
    let incoming = everything_twilio_sends(CALL_SID, "ringing");
    let (status, body) = signed_post(&doorbell, "/twilio/voice", &incoming).await;
    assert_eq!(status, 200, "{body}");

    let mut gather = everything_twilio_sends(CALL_SID, "in-progress");
    for (name, value) in [
        ("Digits", "1"),
        ("FinishedOnKey", ""),
        ("msg", "Gather End"),
        ("SpeechResult", ""),
        ("Confidence", "0.0"),
    ] {
        gather.push((name.to_owned(), value.to_owned()));
    }
    let (status, body) = signed_post(&doorbell, "/twilio/voice/gather", &gather).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Calling Ken."), "{body}");

    let mut dial = everything_twilio_sends(CALL_SID, "in-progress");
    for (name, value) in [
        ("DialCallStatus", "completed"),
        ("DialCallSid", "CAfedcba9876543210fedcba9876543210"),
        ("DialCallDuration", "42"),
        ("DialBridged", "true"),
        ("RecordingUrl", ""),
    ] {
        dial.push((name.to_owned(), value.to_owned()));
    }
    let (status, body) = signed_post(&doorbell, "/twilio/voice/dial-status?tried=1", &dial).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(doorbell.outcomes().await, ["menu", "dialing", "answered"]);
}

#[tokio::test]
async fn an_unknown_parameter_is_a_400_naming_it() {
    let doorbell = start(Backend::Sqlite).await;
    let junk = with(call_params(CALL_SID), "Junk", "1");
    let (status, body) = signed_post(&doorbell, "/twilio/voice", &junk).await;
    assert_eq!(status, 400);
    assert_eq!(body.trim_end(), r#"unknown parameter "Junk""#);
    let events = doorbell.store.events(10).await.unwrap();
    assert_eq!(events.len(), 1, "nothing but the audit entry: {events:?}");
    assert_eq!(
        (
            events[0].outcome.as_str(),
            events[0].detail.as_str(),
            events[0].call_sid.as_str()
        ),
        ("bad-request", r#"unknown parameter "Junk""#, CALL_SID)
    );
    // The call was not started: the same call, as Twilio sends it, is answered.
    assert_eq!(
        status_of(&doorbell, "/twilio/voice", &call_params(CALL_SID)).await,
        200
    );

    let many = (0..7).fold(call_params(CALL_SID), |params, i| {
        with(params, &format!("X{i}"), "")
    });
    let many = with(many, &"Y".repeat(200), "");
    let (status, body) = signed_post(&doorbell, "/twilio/voice/gather", &many).await;
    assert_eq!(status, 400);
    assert_eq!(
        body.trim_end(),
        r#"unknown parameters "X0", "X1", "X2", "X3", "X4" and 3 more"#
    );
    let metrics = doorbell.metrics().await;
    assert!(
        metrics.contains(r#"doorbell_webhooks_refused_total{reason="unknown parameter"} 2"#),
        "{metrics}"
    );
    still_serves(&doorbell).await;
}

#[tokio::test]
async fn parameters_of_another_webhook_are_a_400() {
    let doorbell = start(Backend::Sqlite).await;
    let keys_too_early = with(call_params(CALL_SID), "Digits", common::OWNER_PIN);
    let (status, body) = signed_post(&doorbell, "/twilio/voice", &keys_too_early).await;
    assert_eq!(status, 400);
    assert!(body.contains(r#"unknown parameter "Digits""#), "{body}");

    assert_eq!(
        status_of(&doorbell, "/twilio/voice", &call_params(CALL_SID)).await,
        200
    );
    let dial_on_gather = with(
        with(call_params(CALL_SID), "Digits", "1"),
        "DialCallStatus",
        "completed",
    );
    let (status, body) = signed_post(&doorbell, "/twilio/voice/gather", &dial_on_gather).await;
    assert_eq!(status, 400);
    assert!(
        body.contains(r#"unknown parameter "DialCallStatus""#),
        "{body}"
    );

    let keys_on_dial = with(
        with(call_params(CALL_SID), "DialCallStatus", "completed"),
        "Digits",
        common::OWNER_PIN,
    );
    let (status, body) = signed_post(
        &doorbell,
        "/twilio/voice/dial-status?tried=1",
        &keys_on_dial,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains(r#"unknown parameter "Digits""#), "{body}");
    assert_eq!(
        doorbell.outcomes().await,
        ["bad-request", "menu", "bad-request", "bad-request"]
    );
}

#[tokio::test]
async fn a_forged_request_with_unknown_parameters_is_a_403() {
    let doorbell = start(Backend::Sqlite).await;
    let junk = with(call_params(CALL_SID), "Junk", "1");
    let (status, body) = post_signed_for(
        &doorbell,
        "/twilio/voice",
        "https://elsewhere.example.com/twilio/voice",
        &junk,
    )
    .await;
    assert_eq!(status, 403, "the signature is checked first: {body}");
    assert_eq!(doorbell.outcomes().await, ["refused"]);
}

#[tokio::test]
async fn unknown_parameters_pass_when_not_strict() {
    let doorbell = common::start_with(Backend::Sqlite, |settings| {
        settings.strict_parameters = false;
    })
    .await;
    let junk = with(call_params(CALL_SID), "NewTwilioParameter", "1");
    assert_eq!(status_of(&doorbell, "/twilio/voice", &junk).await, 200);
    assert_eq!(doorbell.outcomes().await, ["menu"]);
}
