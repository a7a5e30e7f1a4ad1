//! The `doorbell` command itself: the example config served for real, the simulator's transcript,
//! guest codes, PIN hashes, the health check and a graceful stop on SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_doorbell");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/doorbell.example.toml");
const TOKEN: &str = "cli-test-token";

fn doorbell() -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_remove("DOORBELL_CONFIG")
        .env_remove("DOORBELL_DATABASE_URL")
        .env("TWILIO_AUTH_TOKEN", TOKEN)
        .kill_on_drop(true);
    command
}

async fn run(command: &mut Command) -> (bool, String, String) {
    let output = command.output().await.unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn free_port() -> u16 {
    testkit::bind_port_0().await.local_addr().unwrap().port()
}

#[tokio::test]
async fn help_explains_every_flag() {
    let (ok, help, _) = run(doorbell().args(["serve", "--help"])).await;
    assert!(ok);
    for flag in [
        "--config",
        "--listen",
        "--public-url",
        "--database-url",
        "--auth-token-file",
        "--admin-token-file",
        "--twilio-api-base",
        "--log-format",
        "TWILIO_AUTH_TOKEN",
    ] {
        assert!(help.contains(flag), "serve --help mentions {flag}");
    }
    let (_, help, _) = run(doorbell().arg("--help")).await;
    for command in [
        "serve",
        "call",
        "guest",
        "log",
        "hash-pin",
        "fake-twilio",
        "healthcheck",
    ] {
        assert!(help.contains(command), "--help lists {command}");
    }
}

#[tokio::test]
async fn the_example_config_serves_the_demo_building() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("demo.db").display());
    let port = free_port().await;
    let fake_port = free_port().await;
    let url = format!("http://127.0.0.1:{port}");
    let mut fake = doorbell()
        .args(["fake-twilio", "--listen", &format!("127.0.0.1:{fake_port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = doorbell()
        .args([
            "serve",
            "--config",
            EXAMPLE,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args([
            "--database-url",
            &database,
            "--public-url",
            "https://door.example.com",
        ])
        .args([
            "--twilio-api-base",
            &format!("http://127.0.0.1:{fake_port}"),
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    testkit::wait_for_http(&format!("{url}/healthz")).await;
    testkit::wait_for_http(&format!("http://127.0.0.1:{fake_port}/healthz")).await;
    let (healthy, _, _) = run(doorbell().args(["healthcheck", "--url", &url])).await;
    assert!(healthy);

    // The demo's owner PIN is 4321.
    let (ok, transcript, stderr) = run(doorbell().args([
        "call",
        "--url",
        &url,
        "--config",
        EXAMPLE,
        "--public-url",
        "https://door.example.com",
        "--keys",
        "4321",
    ]))
    .await;
    assert!(ok, "{stderr}");
    assert!(transcript.contains("*** DOOR OPENED ***"), "{transcript}");
    assert!(transcript.contains("plays DTMF ww9"), "{transcript}");

    let (ok, transcript, _) = run(doorbell()
        .args([
            "call",
            "--url",
            &url,
            "--public-url",
            "https://door.example.com",
        ])
        .args(["--keys", "1", "--answer", "no", "--answer", "yes"]))
    .await;
    assert!(ok);
    assert!(
        transcript.contains("rings +15005550001 … no answer"),
        "{transcript}"
    );
    assert!(
        transcript.contains("rings +15005550002 … answered"),
        "{transcript}"
    );

    // The texts about the opened door reach the fake Twilio (they are sent in the background).
    let bodies = texts_received(fake_port, 2).await;
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(
        bodies
            .iter()
            .all(|b| b.starts_with("Door opened with owner"))
    );

    let (ok, log, _) = run(doorbell().args(["log", "--database-url", &database])).await;
    assert!(ok);
    assert!(log.contains("door-opened"), "{log}");
    assert!(!log.contains("4321"), "no PIN in the log");

    // A forger is turned away, and `doorbell call` says so.
    let (ok, transcript, _) = run(doorbell().env("TWILIO_AUTH_TOKEN", "wrong").args([
        "call",
        "--url",
        &url,
        "--public-url",
        "https://door.example.com",
        "--keys",
        "4321",
    ]))
    .await;
    assert!(!ok);
    assert!(
        transcript.contains("refused the webhook: 403"),
        "{transcript}"
    );

    let pid = server.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(15), server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "a graceful stop exits 0: {status}");
    fake.kill().await.unwrap();
}

/// The bodies of the texts `doorbell fake-twilio` recorded, once there are `count` (or after 10 s).
async fn texts_received(port: u16, count: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let texts: Vec<serde_json::Value> =
            reqwest::get(format!("http://127.0.0.1:{port}/messages"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        if texts.len() >= count || tokio::time::Instant::now() > deadline {
            return texts
                .iter()
                .map(|t| t["body"].as_str().unwrap().to_owned())
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn guest_codes_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("guests.db").display());
    let (ok, out, err) = run(doorbell()
        .args(["guest", "add", "--database-url", &database])
        .args([
            "--label",
            "Plumber",
            "--valid-until",
            "+2h",
            "--max-uses",
            "1",
        ]))
    .await;
    assert!(ok, "{err}");
    let code = out.lines().next().unwrap().rsplit(' ').next().unwrap();
    assert!(
        code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()),
        "{out}"
    );
    assert!(out.contains("1 use(s)"));

    let (_, list, _) = run(doorbell().args(["guest", "list", "--database-url", &database])).await;
    assert!(
        list.contains("Plumber") && list.contains("0/1") && list.contains("valid"),
        "{list}"
    );
    assert!(!list.contains(code), "the code itself is not kept");

    let (ok, _, _) =
        run(doorbell().args(["guest", "revoke", "1", "--database-url", &database])).await;
    assert!(ok);
    let (_, list, _) = run(doorbell().args(["guest", "list", "--database-url", &database])).await;
    assert!(list.contains("revoked"), "{list}");
    let (ok, _, err) =
        run(doorbell().args(["guest", "revoke", "1", "--database-url", &database])).await;
    assert!(!ok);
    assert!(err.contains("no guest code 1"), "{err}");

    let (ok, _, err) = run(doorbell()
        .args(["guest", "add", "--database-url", &database])
        .args([
            "--label",
            "Oops",
            "--valid-from",
            "2030-01-02 10:00",
            "--valid-until",
            "2030-01-01",
        ]))
    .await;
    assert!(!ok);
    assert!(
        err.contains("--valid-until must be after --valid-from"),
        "{err}"
    );
    let (ok, _, err) = run(doorbell().args([
        "guest",
        "add",
        "--database-url",
        &database,
        "--label",
        "X",
        "--valid-until",
        "soon",
    ]))
    .await;
    assert!(!ok);
    assert!(err.contains("cannot read \"soon\""), "{err}");
}

/// Runs `doorbell hash-pin` with `input` on its stdin.
async fn hash_pin(input: &[u8]) -> (bool, String, String) {
    let mut child = doorbell()
        .arg("hash-pin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).await.unwrap();
    let output = child.wait_with_output().await.unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn hash_pin_prints_a_hash_of_the_pin_read_on_stdin() {
    let (ok, hash, _) = hash_pin(b"97531\n").await;
    assert!(ok);
    let hash = hash.trim();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("97531"));
    use argon2::PasswordVerifier;
    let parsed = argon2::PasswordHash::new(hash).unwrap();
    assert!(
        argon2::Argon2::default()
            .verify_password(b"97531", &parsed)
            .is_ok()
    );

    let (ok, _, err) = hash_pin(b"12ab\n").await;
    assert!(!ok);
    assert!(err.contains("4 to 16 digits"), "{err}");
}

#[tokio::test]
async fn a_bad_config_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[[residents]]\nname = \"Ken\"\ndigit = \"12\"\nphone = \"+1555\"\n",
    )
    .unwrap();
    let (ok, _, err) = run(doorbell()
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--public-url", "https://x.test"]))
    .await;
    assert!(!ok);
    assert!(err.contains("digit must be one of 0-9"), "{err}");
    let (ok, _, err) = run(doorbell()
        .env_remove("TWILIO_AUTH_TOKEN")
        .args(["serve", "--config", EXAMPLE]))
    .await;
    assert!(!ok);
    assert!(err.contains("TWILIO_AUTH_TOKEN"), "{err}");
}

#[tokio::test]
async fn guest_add_prunes_codes_that_stopped_working_long_ago() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("guests.db").display());
    let store = doorbell::store::Store::open(&database).await.unwrap();
    let now = doorbell::store::now_millis();
    let day = 24 * 3600 * 1000;
    for (label, until) in [("Old", now - 31 * day), ("Recent", now - 29 * day)] {
        store
            .add_guest_code(label, "$argon2id$x", now - 60 * day, until, None, now)
            .await
            .unwrap();
    }
    let (ok, out, err) = run(doorbell()
        .args(["guest", "add", "--database-url", &database])
        .args(["--label", "New", "--valid-until", "+1d"]))
    .await;
    assert!(ok, "{err}");
    assert!(
        out.contains("deleted 1 guest code(s) that stopped working over 30 days ago"),
        "{out}"
    );
    let mut labels: Vec<String> = store
        .guest_codes()
        .await
        .unwrap()
        .into_iter()
        .map(|code| code.label)
        .collect();
    labels.sort();
    assert_eq!(labels, ["New", "Recent"]);
}
