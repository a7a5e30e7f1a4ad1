//! Every call flow end to end: the simulator plays Twilio against a running doorbell, whose texts
//! go to the fake Twilio REST API. Each test runs on SQLite and on PostgreSQL.

mod common;

use std::time::Duration;

use common::{Backend, HOUR, INTERCOM, KEN, OWNER_PIN, SAM, all_day_open_house, start, start_with};
use doorbell::config::{OpenMode, ToneEncoding};
use doorbell::simulator::Step;
use doorbell::store::now_millis;

async fn menu_then_1_rings_ken(backend: Backend) {
    let doorbell = start(backend).await;
    let call = doorbell.call(&["1"], &[true]).await;
    assert!(
        call.said()
            .iter()
            .any(|s| s.contains("For Ken, press 1. For Sam, press 2.")),
        "the menu lists the residents"
    );
    assert_eq!(call.dialed(), vec![KEN]);
    assert!(!call.door_opened());
    assert_eq!(call.steps.last(), Some(&Step::Hangup));
    assert_eq!(doorbell.outcomes().await, ["menu", "dialing", "answered"]);
}

async fn menu_then_2_rings_sam(backend: Backend) {
    let doorbell = start(backend).await;
    let call = doorbell.call(&["2"], &[true]).await;
    assert_eq!(call.dialed(), vec![SAM]);
    assert_eq!(doorbell.outcomes().await, ["menu", "dialing", "answered"]);
}

async fn no_answer_rings_the_next_resident_then_texts(backend: Backend) {
    let doorbell = start(backend).await;
    let call = doorbell.call(&["2"], &[false, false]).await;
    assert_eq!(
        call.dialed(),
        vec![SAM, KEN],
        "Sam first, then the next in order"
    );
    assert!(
        call.said()
            .iter()
            .any(|s| s.contains("Sam is not answering. Trying Ken."))
    );
    assert!(call.said().iter().any(|s| s.contains("nobody answered")));
    let texts = doorbell.texts(2).await;
    let mut recipients: Vec<&str> = texts.iter().map(|t| t.to.as_str()).collect();
    recipients.sort();
    assert_eq!(recipients, [KEN, SAM]);
    for text in &texts {
        assert!(text.body.contains("Visitor at the door"), "{}", text.body);
        assert!(text.body.contains("nobody answered"), "{}", text.body);
        assert_eq!(text.from, common::TWILIO_NUMBER);
    }
    assert_eq!(
        doorbell.outcomes().await,
        ["menu", "dialing", "not-answered", "nobody-answered"]
    );
}

async fn the_second_resident_answering_ends_the_round(backend: Backend) {
    let doorbell = start(backend).await;
    let call = doorbell.call(&["1"], &[false, true]).await;
    assert_eq!(call.dialed(), vec![KEN, SAM]);
    assert_eq!(
        doorbell.outcomes().await,
        ["menu", "dialing", "not-answered", "answered"]
    );
}

async fn owner_pin_opens_the_door_with_digits(backend: Backend) {
    let doorbell = start(backend).await;
    let call = doorbell.call(&[OWNER_PIN], &[]).await;
    assert!(call.steps.contains(&Step::PlayDigits("ww9".into())));
    assert!(call.door_opened());
    let texts = doorbell.texts(2).await;
    assert!(
        texts
            .iter()
            .all(|t| t.body.starts_with("Door opened with owner at "))
    );
    let events = doorbell.store.events(10).await.unwrap();
    let opened = events.iter().find(|e| e.outcome == "door-opened").unwrap();
    assert_eq!(opened.input, "****", "the PIN is never logged in clear");
    assert_eq!(opened.caller, INTERCOM);
}

async fn owner_pin_opens_the_door_with_the_tone(backend: Backend) {
    let doorbell = start_with(backend, |settings| {
        settings.open_mode = OpenMode::Tone;
        settings.tone.encoding = ToneEncoding::Mulaw;
    })
    .await;
    let call = doorbell.call(&[OWNER_PIN], &[]).await;
    assert!(call.steps.contains(&Step::PlayUrl(format!(
        "{}/twilio/tones/9.wav",
        common::PUBLIC_URL
    ))));
    assert!(
        call.steps.contains(&Step::Heard("99".into())),
        "the file holds two bursts of 9"
    );
    assert!(call.door_opened());
    let texts = doorbell.texts(2).await;
    assert!(
        texts
            .iter()
            .all(|t| t.body.contains("Door opened with owner"))
    );
}

async fn a_wrong_pin_is_refused_and_the_menu_offered_again(backend: Backend) {
    let doorbell = start(backend).await;
    let call = doorbell.call(&["9999", "1"], &[true]).await;
    assert!(!call.door_opened());
    let said = call.said();
    let invalid = said
        .iter()
        .position(|s| *s == "That code is not valid.")
        .unwrap();
    assert!(
        said[invalid + 1].contains("For Ken, press 1"),
        "the menu follows"
    );
    assert_eq!(call.dialed(), vec![KEN], "the caller can still ring Ken");
    assert_eq!(
        doorbell.outcomes().await,
        ["menu", "wrong-code", "dialing", "answered"]
    );
}

async fn a_valid_guest_code_opens_until_used_up(backend: Backend) {
    let doorbell = start(backend).await;
    doorbell
        .add_guest_code("Plumber", "246810", -HOUR, HOUR, Some(1))
        .await;
    let first = doorbell.call(&["246810"], &[]).await;
    assert!(first.door_opened());
    let texts = doorbell.texts(2).await;
    assert!(
        texts[0].body.contains("guest code \"Plumber\""),
        "{}",
        texts[0].body
    );

    let second = doorbell.call(&["246810"], &[]).await;
    assert!(!second.door_opened(), "a one-use code works once");
    assert!(second.said().contains(&"That code is not valid."));
    let events = doorbell.store.events(1).await.unwrap();
    assert_eq!(
        events[0].outcome, "wrong-code",
        "a used-up code is no longer checked: it is a wrong code"
    );
}

async fn an_expired_guest_code_does_not_open(backend: Backend) {
    let doorbell = start(backend).await;
    doorbell
        .add_guest_code("Party", "135790", -2 * HOUR, -HOUR, None)
        .await;
    let call = doorbell.call(&["135790"], &[]).await;
    assert!(!call.door_opened());
    assert!(call.said().contains(&"That code is not valid."));
    assert_eq!(doorbell.outcomes().await, ["menu", "wrong-code"]);
}

async fn a_revoked_guest_code_does_not_open(backend: Backend) {
    let doorbell = start(backend).await;
    let id = doorbell
        .add_guest_code("Cleaner", "112233", -HOUR, HOUR, None)
        .await;
    assert!(
        doorbell
            .store
            .revoke_guest_code(id, now_millis())
            .await
            .unwrap()
    );
    let call = doorbell.call(&["112233"], &[]).await;
    assert!(!call.door_opened());
    assert_eq!(doorbell.outcomes().await, ["menu", "wrong-code"]);
}

/// A code typed at the door costs one argon2 verification per owner PIN and per guest code
/// usable now: expired, used-up, revoked and future codes are not verified against.
async fn only_usable_guest_codes_are_verified(backend: Backend) {
    let doorbell = start(backend).await;
    doorbell
        .add_guest_code("Nanny", "202020", -HOUR, HOUR, None)
        .await;
    doorbell
        .add_guest_code("Party", "303030", -2 * HOUR, -HOUR, None)
        .await;
    let used_up = doorbell
        .add_guest_code("Plumber", "404040", -HOUR, HOUR, Some(1))
        .await;
    assert!(
        doorbell
            .store
            .use_guest_code(used_up, now_millis())
            .await
            .unwrap()
    );
    let revoked = doorbell
        .add_guest_code("Cleaner", "505050", -HOUR, HOUR, None)
        .await;
    assert!(
        doorbell
            .store
            .revoke_guest_code(revoked, now_millis())
            .await
            .unwrap()
    );
    doorbell
        .add_guest_code("Guest next week", "606060", 24 * HOUR, 48 * HOUR, None)
        .await;
    assert_eq!(doorbell.code_checks().await, 0);

    // A wrong code: the owner PIN and the nanny's code, nothing else.
    let wrong = doorbell.call(&["999999"], &[]).await;
    assert!(!wrong.door_opened());
    assert_eq!(doorbell.code_checks().await, 2);

    // The expired code is a wrong code, at the same cost.
    doorbell.call(&["303030"], &[]).await;
    assert_eq!(doorbell.code_checks().await, 4);

    let nanny = doorbell.call(&["202020"], &[]).await;
    assert!(nanny.door_opened());
    assert_eq!(doorbell.code_checks().await, 6);

    // The owner PIN matches first.
    let owner = doorbell.call(&[OWNER_PIN], &[]).await;
    assert!(owner.door_opened());
    assert_eq!(doorbell.code_checks().await, 7);
}

/// Guest codes that stopped working over `guest_code_retention_days` ago are gone once the
/// doorbell answers; the audit log still names them.
async fn old_guest_codes_are_pruned_when_serving_starts(backend: Backend) {
    const DAY: i64 = 24 * HOUR;
    let dir = tempfile::tempdir().unwrap();
    let database_url = common::database_url(backend, dir.path()).await;
    let store = doorbell::store::Store::open(&database_url).await.unwrap();
    let now = now_millis();
    let add = |label: &'static str, until: i64| {
        let store = store.clone();
        async move {
            store
                .add_guest_code(
                    label,
                    &common::cheap_hash("777777"),
                    now - 60 * DAY,
                    until,
                    None,
                    now,
                )
                .await
                .unwrap()
        }
    };
    add("Last month", now - 8 * DAY).await;
    let recent = add("Last week", now - 6 * DAY).await;
    let event = doorbell::store::NewEvent {
        call_sid: "CA0123456789abcdef0123456789abcdef",
        caller: INTERCOM,
        step: "gather",
        input: "******",
        outcome: "door-opened",
        detail: "guest code \"Last month\"",
    };
    store.record(event, now - 9 * DAY).await.unwrap();

    let doorbell = common::start_on(dir, database_url, |settings| {
        settings.guest_code_retention_days = 7;
    })
    .await;
    let kept: Vec<i64> = doorbell
        .store
        .guest_codes()
        .await
        .unwrap()
        .iter()
        .map(|code| code.id)
        .collect();
    assert_eq!(kept, [recent]);
    let log = doorbell.store.events(10).await.unwrap();
    assert_eq!(log[0].detail, "guest code \"Last month\"");
}

async fn wrong_codes_lock_code_entry_and_text_the_residents(backend: Backend) {
    let doorbell = start(backend).await;
    // max_wrong = 3 in the test settings.
    let call = doorbell
        .call(&["1111", "2222", "3333", OWNER_PIN], &[])
        .await;
    assert!(
        !call.door_opened(),
        "the right PIN is refused during the lockout"
    );
    assert!(
        call.said()
            .iter()
            .any(|s| s.contains("Code entry is locked"))
    );
    let texts = doorbell.texts(2).await;
    assert!(
        texts.iter().all(|t| t.body.contains("locked until")),
        "{texts:?}"
    );
    assert!(texts.iter().all(|t| t.body.contains(INTERCOM)));
    assert_eq!(
        doorbell.outcomes().await,
        [
            "menu",
            "wrong-code",
            "wrong-code",
            "wrong-code",
            "lockout-started",
            "locked-out"
        ]
    );
    // Another call from the same number is still locked out; the menu still rings residents.
    let again = doorbell.call(&[OWNER_PIN, "1"], &[true]).await;
    assert!(!again.door_opened());
    assert_eq!(again.dialed(), vec![KEN]);
}

async fn a_forged_signature_is_refused(backend: Backend) {
    let doorbell = start(backend).await;
    let mut forger = doorbell.simulator.clone();
    forger.auth_token = doorbell::Secret::new("not-the-token");
    let call = forger
        .call(doorbell::simulator::Script {
            from: INTERCOM.into(),
            to: common::TWILIO_NUMBER.into(),
            keys: [OWNER_PIN.to_string()].into(),
            answers: Default::default(),
        })
        .await;
    assert_eq!(call.refused(), Some(403));
    assert!(!call.door_opened());
    let events = doorbell.store.events(10).await.unwrap();
    assert_eq!(events.len(), 1, "only the audit entry is written");
    assert_eq!(events[0].outcome, "refused");
    assert_eq!(events[0].detail, "forged signature");
}

async fn callers_other_than_the_intercom_are_rejected(backend: Backend) {
    let doorbell = start_with(backend, |settings| {
        settings.allowed_callers = vec!["+15550001234".into()];
    })
    .await;
    let call = doorbell.call(&["1"], &[true]).await;
    assert!(call.steps.contains(&Step::Reject));
    assert!(call.dialed().is_empty());
    assert_eq!(doorbell.outcomes().await, ["rejected"]);
}

async fn an_open_house_opens_for_everyone(backend: Backend) {
    let doorbell = start_with(backend, |settings| {
        settings.open_house = vec![all_day_open_house("always")];
    })
    .await;
    let call = doorbell.call(&[], &[]).await;
    assert!(call.door_opened());
    let texts = doorbell.texts(2).await;
    assert!(
        texts[0].body.contains("open house \"always\""),
        "{}",
        texts[0].body
    );
}

async fn a_silent_caller_hears_the_menu_three_times_then_goodbye(backend: Backend) {
    let doorbell = start(backend).await;
    let call = doorbell.call(&[], &[]).await;
    let no_inputs = call.steps.iter().filter(|s| **s == Step::NoInput).count();
    assert_eq!(no_inputs, 3);
    assert_eq!(call.said().last(), Some(&"Goodbye."));
    assert_eq!(call.steps.last(), Some(&Step::Hangup));
}

async fn a_key_no_resident_has_is_not_a_choice(backend: Backend) {
    let doorbell = start(backend).await;
    let call = doorbell.call(&["7", "2"], &[true]).await;
    assert!(call.said().contains(&"Sorry, that is not a choice."));
    assert_eq!(call.dialed(), vec![SAM]);
}

/// Texts go out in the background: an unreachable REST API does not hold up the door.
async fn a_hanging_rest_api_does_not_delay_the_answer(backend: Backend) {
    let black_hole = testkit::bind_port_0().await;
    let black_hole_url = format!("http://{}", black_hole.local_addr().unwrap());
    let accepting = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = black_hole.accept().await {
            held.push(stream);
        }
    });
    let doorbell = start_with(backend, |settings| {
        settings.twilio.api_base = black_hole_url
    })
    .await;
    let call = tokio::time::timeout(Duration::from_secs(5), doorbell.call(&[OWNER_PIN], &[]))
        .await
        .expect("the TwiML answer does not wait for the texts");
    assert!(call.door_opened());
    accepting.abort();
}

on_both_databases!(
    menu_then_1_rings_ken,
    menu_then_2_rings_sam,
    no_answer_rings_the_next_resident_then_texts,
    the_second_resident_answering_ends_the_round,
    owner_pin_opens_the_door_with_digits,
    owner_pin_opens_the_door_with_the_tone,
    a_wrong_pin_is_refused_and_the_menu_offered_again,
    a_valid_guest_code_opens_until_used_up,
    an_expired_guest_code_does_not_open,
    a_revoked_guest_code_does_not_open,
    only_usable_guest_codes_are_verified,
    old_guest_codes_are_pruned_when_serving_starts,
    wrong_codes_lock_code_entry_and_text_the_residents,
    a_forged_signature_is_refused,
    callers_other_than_the_intercom_are_rejected,
    an_open_house_opens_for_everyone,
    a_silent_caller_hears_the_menu_three_times_then_goodbye,
    a_key_no_resident_has_is_not_a_choice,
    a_hanging_rest_api_does_not_delay_the_answer,
);
