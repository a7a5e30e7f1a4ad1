//! The store and the lockout rules at chosen times, on SQLite and on PostgreSQL.

mod common;

use common::Backend;
use doorbell::codes::{self, WRONG_CODE};
use doorbell::config::Lockout;
use doorbell::store::{NewEvent, Store};

const T0: i64 = 1_800_000_000_000;
const SECOND: i64 = 1000;

async fn open(backend: Backend) -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = common::database_url(backend, dir.path()).await;
    let store = Store::open(&url).await.unwrap();
    // Opening again finds the schema up to date.
    Store::open(&url).await.unwrap();
    (store, dir)
}

const POLICY: Lockout = Lockout {
    max_wrong: 3,
    window_seconds: 600,
    cooldown_seconds: 900,
};

/// Logs a wrong code and applies [`POLICY`], as the flow does.
async fn wrong_code(store: &Store, caller: &str, at: i64) -> Option<i64> {
    wrong_code_under(store, &POLICY, caller, at).await
}

/// Logs a wrong code and applies `policy`.
async fn wrong_code_under(store: &Store, policy: &Lockout, caller: &str, at: i64) -> Option<i64> {
    let event = NewEvent {
        call_sid: "CA1",
        caller,
        step: "gather",
        input: "****",
        outcome: WRONG_CODE,
        detail: "",
    };
    store.record(event, at).await.unwrap();
    codes::after_wrong_code(store, policy, caller, at)
        .await
        .unwrap()
}

async fn lockout_starts_at_the_limit_and_ends_after_the_cooldown(backend: Backend) {
    let (store, _dir) = open(backend).await;
    assert_eq!(wrong_code(&store, "+1", T0).await, None);
    assert_eq!(wrong_code(&store, "+1", T0 + SECOND).await, None);
    assert_eq!(
        wrong_code(&store, "+2", T0 + SECOND).await,
        None,
        "another caller counts apart"
    );
    let until = wrong_code(&store, "+1", T0 + 2 * SECOND).await;
    assert_eq!(until, Some(T0 + 2 * SECOND + 900 * SECOND));
    let until = until.unwrap();
    assert_eq!(
        codes::locked_until(&store, "+1", T0 + 3 * SECOND)
            .await
            .unwrap(),
        Some(until)
    );
    assert_eq!(
        codes::locked_until(&store, "+2", T0 + 3 * SECOND)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        codes::locked_until(&store, "+1", until).await.unwrap(),
        None,
        "over at its end"
    );
    // The wrong codes before the lockout do not count again.
    assert_eq!(wrong_code(&store, "+1", until + SECOND).await, None);
    assert_eq!(
        store.active_lockouts(T0 + 3 * SECOND).await.unwrap().len(),
        1
    );
}

async fn wrong_codes_outside_the_window_do_not_count(backend: Backend) {
    let (store, _dir) = open(backend).await;
    wrong_code(&store, "+1", T0).await;
    wrong_code(&store, "+1", T0 + SECOND).await;
    assert_eq!(wrong_code(&store, "+1", T0 + 601 * SECOND).await, None);
    assert!(wrong_code(&store, "+1", T0 + 602 * SECOND).await.is_none());
    assert!(wrong_code(&store, "+1", T0 + 603 * SECOND).await.is_some());
}

async fn a_cooldown_of_any_length_locks_without_overflowing(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let forever = Lockout {
        max_wrong: 1,
        window_seconds: u64::MAX,
        cooldown_seconds: u64::MAX,
    };
    let until = wrong_code_under(&store, &forever, "+1", T0).await;
    assert_eq!(until, Some(i64::MAX));
    assert_eq!(
        codes::locked_until(&store, "+1", T0 + SECOND)
            .await
            .unwrap(),
        until
    );
}

async fn guest_codes_count_their_uses(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let id = store
        .add_guest_code("Nanny", "$argon2id$x", T0, T0 + 60 * SECOND, Some(2), T0)
        .await
        .unwrap();
    let unlimited = store
        .add_guest_code("Family", "$argon2id$y", T0, T0 + 60 * SECOND, None, T0)
        .await
        .unwrap();
    assert!(store.use_guest_code(id, T0).await.unwrap());
    assert!(store.use_guest_code(id, T0).await.unwrap());
    assert!(
        !store.use_guest_code(id, T0).await.unwrap(),
        "two uses only"
    );
    for _ in 0..5 {
        assert!(store.use_guest_code(unlimited, T0).await.unwrap());
    }
    let codes = store.guest_codes().await.unwrap();
    let nanny = codes.iter().find(|c| c.id == id).unwrap();
    assert_eq!((nanny.uses, nanny.max_uses), (2, Some(2)));
    assert_eq!(nanny.refusal(T0 + SECOND), Some("used up"));
    let family = codes.iter().find(|c| c.id == unlimited).unwrap();
    assert_eq!(family.refusal(T0 - SECOND), Some("not yet valid"));
    assert_eq!(family.refusal(T0 + SECOND), None);
    assert_eq!(family.refusal(T0 + 60 * SECOND), Some("expired"));
    assert!(store.revoke_guest_code(unlimited, T0).await.unwrap());
    assert!(
        !store.revoke_guest_code(unlimited, T0).await.unwrap(),
        "already revoked"
    );
    assert!(!store.use_guest_code(unlimited, T0).await.unwrap());
}

/// The ids of the guest codes usable at `at`.
async fn usable_at(store: &Store, at: i64) -> Vec<i64> {
    let mut ids: Vec<i64> = store
        .usable_guest_codes(at)
        .await
        .unwrap()
        .iter()
        .map(|code| code.id)
        .collect();
    ids.sort_unstable();
    ids
}

async fn only_usable_guest_codes_are_read_for_a_check(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let minute = 60 * SECOND;
    let add = |label: &'static str, from: i64, until: i64, max_uses: Option<i64>| {
        let store = store.clone();
        async move {
            store
                .add_guest_code(label, "$argon2id$x", from, until, max_uses, T0)
                .await
                .unwrap()
        }
    };
    let window = add("window", T0, T0 + minute, None).await;
    let later = add("later", T0 + minute, T0 + 2 * minute, None).await;
    let once = add("once", T0, T0 + minute, Some(1)).await;
    let revoked = add("revoked", T0, T0 + minute, None).await;
    assert!(store.revoke_guest_code(revoked, T0).await.unwrap());

    assert_eq!(usable_at(&store, T0 - 1).await, Vec::<i64>::new());
    assert_eq!(
        usable_at(&store, T0).await,
        [window, once],
        "valid from its first millisecond"
    );
    assert!(store.use_guest_code(once, T0 + SECOND).await.unwrap());
    assert_eq!(usable_at(&store, T0 + SECOND).await, [window], "used up");
    assert_eq!(
        usable_at(&store, T0 + minute).await,
        [later],
        "expired at valid_until, which starts the next one"
    );
    assert_eq!(usable_at(&store, T0 + 2 * minute).await, Vec::<i64>::new());
    // Every code is still listed for `guest list` and the admin page.
    assert_eq!(store.guest_codes().await.unwrap().len(), 4);
}

async fn codes_that_stopped_working_are_pruned_after_the_retention(backend: Backend) {
    let (store, _dir) = open(backend).await;
    const DAY: i64 = 24 * 3600 * SECOND;
    let now = T0 + 100 * DAY;
    let add = |label: &'static str, until: i64, max_uses: Option<i64>| {
        let store = store.clone();
        async move {
            store
                .add_guest_code(label, "$argon2id$x", T0, until, max_uses, T0)
                .await
                .unwrap()
        }
    };
    add("expired long ago", now - 31 * DAY, None).await;
    let expired_lately = add("expired lately", now - 29 * DAY, None).await;
    let used_up_long_ago = add("used up long ago", now + DAY, Some(1)).await;
    assert!(
        store
            .use_guest_code(used_up_long_ago, now - 31 * DAY)
            .await
            .unwrap()
    );
    let used_up_lately = add("used up lately", now + DAY, Some(1)).await;
    assert!(
        store
            .use_guest_code(used_up_lately, now - 29 * DAY)
            .await
            .unwrap()
    );
    let used_once_of_two = add("used once of two", now + DAY, Some(2)).await;
    assert!(
        store
            .use_guest_code(used_once_of_two, now - 31 * DAY)
            .await
            .unwrap()
    );
    let revoked_long_ago = add("revoked long ago", now + DAY, None).await;
    assert!(
        store
            .revoke_guest_code(revoked_long_ago, now - 31 * DAY)
            .await
            .unwrap()
    );
    let revoked_lately = add("revoked lately", now + DAY, None).await;
    assert!(
        store
            .revoke_guest_code(revoked_lately, now - 29 * DAY)
            .await
            .unwrap()
    );
    let valid = add("valid", now + DAY, None).await;

    assert_eq!(codes::prune(&store, 30, now).await.unwrap(), 3);
    let mut kept: Vec<i64> = store
        .guest_codes()
        .await
        .unwrap()
        .iter()
        .map(|code| code.id)
        .collect();
    kept.sort_unstable();
    assert_eq!(
        kept,
        [
            expired_lately,
            used_up_lately,
            used_once_of_two,
            revoked_lately,
            valid
        ]
    );
    assert_eq!(
        codes::prune(&store, 30, now).await.unwrap(),
        0,
        "nothing left to prune"
    );
    assert_eq!(
        codes::prune(&store, u64::MAX, now).await.unwrap(),
        0,
        "a retention of any length, without overflowing"
    );
    assert_eq!(
        codes::prune(&store, 0, now).await.unwrap(),
        3,
        "no retention: everything that stopped working"
    );
}

async fn a_call_starts_once(backend: Backend) {
    let (store, _dir) = open(backend).await;
    assert!(store.start_call("CA1", "+1", T0).await.unwrap());
    assert!(!store.start_call("CA1", "+1", T0 + 1).await.unwrap());
    assert_eq!(store.call_started_at("CA1").await.unwrap(), Some(T0));
    assert_eq!(store.call_started_at("CA2").await.unwrap(), None);
}

on_both_databases!(
    lockout_starts_at_the_limit_and_ends_after_the_cooldown,
    wrong_codes_outside_the_window_do_not_count,
    a_cooldown_of_any_length_locks_without_overflowing,
    guest_codes_count_their_uses,
    only_usable_guest_codes_are_read_for_a_check,
    codes_that_stopped_working_are_pruned_after_the_retention,
    a_call_starts_once,
);
