//! A doorbell on port 0 with a fake Twilio REST API, a database of its own, and the call simulator.
#![allow(dead_code)] // Each test file uses its own part of this module.

use std::path::Path;
use std::time::Duration;

use doorbell::config::{Config, OpenHouse, Secret, Settings};
use doorbell::fake_twilio::{FakeTwilio, Message};
use doorbell::simulator::{Script, Simulator, Transcript};
use doorbell::store::{Millis, Store, now_millis};
use testkit::Spawned;

pub const PUBLIC_URL: &str = "https://door.example.com";
pub const AUTH_TOKEN: &str = "test-auth-token-5e1c0f0ab2";
pub const ADMIN_TOKEN: &str = "admin-token-for-tests";
pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const TWILIO_NUMBER: &str = "+15550005555";
pub const INTERCOM: &str = "+15550009999";
pub const KEN: &str = "+15550000001";
pub const SAM: &str = "+15550000002";
pub const OWNER_PIN: &str = "4321";

/// How long a test waits for texts that should arrive.
pub const TEXT_WAIT: Duration = Duration::from_secs(10);

/// An hour, in the store's milliseconds.
pub const HOUR: Millis = 3_600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A new, empty database: a SQLite file in `dir`, or a fresh PostgreSQL database.
pub async fn database_url(backend: Backend, dir: &Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join("doorbell.db").display()),
        Backend::Postgres => testkit::fresh_database().await.url,
    }
}

/// An argon2id hash with a small cost, so that tests in debug builds stay quick; the service
/// reads the cost from the hash itself.
pub fn cheap_hash(code: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(1024, 1, 1, None).unwrap();
    let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    hasher
        .hash_password(code.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

/// Ken on 1, Sam on 2, the owner PIN, and the fake REST API at `api_base`.
pub fn settings(api_base: &str) -> Settings {
    let text = format!(
        r#"
        open_mode = "digits"

        [[residents]]
        name = "Ken"
        digit = "1"
        phone = "{KEN}"

        [[residents]]
        name = "Sam"
        digit = "2"
        phone = "{SAM}"

        [[pins]]
        label = "owner"
        hash = "{hash}"

        [lockout]
        max_wrong = 3

        [twilio]
        account_sid = "{ACCOUNT_SID}"
        number = "{TWILIO_NUMBER}"
        api_base = "{api_base}"
        "#,
        hash = cheap_hash(OWNER_PIN),
    );
    Settings::from_toml(&text, Path::new(".")).unwrap()
}

/// An open-house window covering the whole of every day.
pub fn all_day_open_house(label: &str) -> OpenHouse {
    OpenHouse {
        label: label.into(),
        days: Vec::new(),
        from: "00:00".into(),
        until: "24:00".into(),
    }
}

/// A running doorbell and everything around it.
pub struct Doorbell {
    pub service: Spawned<anyhow::Error>,
    /// The fake Twilio REST API, which records the texts.
    pub fake: FakeTwilio,
    /// The fake's server, held so that it runs as long as the doorbell.
    pub fake_service: Spawned<anyhow::Error>,
    /// The doorbell's database, for setting up guest codes and reading the audit log.
    pub store: Store,
    pub database_url: String,
    pub simulator: Simulator,
    _dir: tempfile::TempDir,
}

pub async fn start(backend: Backend) -> Doorbell {
    start_with(backend, |_| {}).await
}

pub async fn start_with(backend: Backend, customize: impl FnOnce(&mut Settings)) -> Doorbell {
    let dir = tempfile::tempdir().unwrap();
    let database_url = database_url(backend, dir.path()).await;
    start_on(dir, database_url, customize).await
}

/// A doorbell on `database_url`, which may hold data already; `dir` lives as long as it.
pub async fn start_on(
    dir: tempfile::TempDir,
    database_url: String,
    customize: impl FnOnce(&mut Settings),
) -> Doorbell {
    let fake = FakeTwilio::new(ACCOUNT_SID, Secret::new(AUTH_TOKEN));
    let fake_service = {
        let fake = fake.clone();
        testkit::spawn(move |listener, shutdown| fake.run(listener, shutdown))
            .await
            .ready("/healthz")
            .await
    };
    let mut settings = settings(&fake_service.url());
    customize(&mut settings);
    let config = Config {
        settings,
        public_url: PUBLIC_URL.into(),
        database_url: database_url.clone(),
        auth_token: Secret::new(AUTH_TOKEN),
        admin_token: Some(Secret::new(ADMIN_TOKEN)),
    };
    let service =
        testkit::spawn(move |listener, shutdown| doorbell::run(listener, config, shutdown))
            .await
            .ready("/healthz")
            .await;
    let store = Store::open(&database_url).await.unwrap();
    let simulator = Simulator::new(
        &service.url(),
        PUBLIC_URL,
        Secret::new(AUTH_TOKEN),
        ACCOUNT_SID,
    );
    Doorbell {
        service,
        fake,
        fake_service,
        store,
        database_url,
        simulator,
        _dir: dir,
    }
}

impl Doorbell {
    /// A call from the intercom pressing `keys` at successive menus, residents answering as in
    /// `answers`.
    pub async fn call(&self, keys: &[&str], answers: &[bool]) -> Transcript {
        let transcript = self
            .simulator
            .call(Script {
                from: INTERCOM.into(),
                to: TWILIO_NUMBER.into(),
                keys: keys.iter().map(|k| k.to_string()).collect(),
                answers: answers.iter().copied().collect(),
            })
            .await;
        eprintln!("{transcript}");
        transcript
    }

    /// Adds a guest code `code`, valid from `valid_from` to `valid_until` (relative to now, in
    /// milliseconds), and returns its id.
    pub async fn add_guest_code(
        &self,
        label: &str,
        code: &str,
        valid_from: Millis,
        valid_until: Millis,
        max_uses: Option<i64>,
    ) -> i64 {
        let now = now_millis();
        self.store
            .add_guest_code(
                label,
                &cheap_hash(code),
                now + valid_from,
                now + valid_until,
                max_uses,
                now,
            )
            .await
            .unwrap()
    }

    /// Waits for `count` texts and returns them all.
    pub async fn texts(&self, count: usize) -> Vec<Message> {
        let texts = self.fake.wait_for_messages(count, TEXT_WAIT).await;
        assert!(
            texts.len() >= count,
            "expected {count} texts, got {texts:?}"
        );
        texts
    }

    /// The service's Prometheus text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.service.url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of `doorbell_code_checks_total`: argon2 verifications so far.
    pub async fn code_checks(&self) -> u64 {
        let metrics = self.metrics().await;
        metrics
            .lines()
            .find_map(|line| line.strip_prefix("doorbell_code_checks_total "))
            .unwrap_or_else(|| panic!("no doorbell_code_checks_total in {metrics}"))
            .parse()
            .unwrap()
    }

    /// The audit log's outcomes, oldest first.
    pub async fn outcomes(&self) -> Vec<String> {
        let mut events = self.store.events(1000).await.unwrap();
        events.reverse();
        events.into_iter().map(|e| e.outcome).collect()
    }
}

/// Runs each named `async fn name(backend: Backend)` as a test on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}
