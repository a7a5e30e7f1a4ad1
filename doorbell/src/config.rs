//! The doorbell's configuration: a TOML file (residents, owner PIN hashes, how the door opens,
//! voice, tone, lockout, Twilio account) plus the secrets and addresses that come from flags, the
//! environment or secret files.
//!
//! Secrets are wrapped in [`Secret`], whose `Debug` prints `[redacted]`, so a config logged with
//! `?config` can never leak the auth token.

use std::fmt;
use std::path::Path;

use chrono::{Datelike, NaiveTime, Weekday};
use serde::Deserialize;

/// A value that must never appear in logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it (signing, basic auth).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a secret file (a Docker or Kubernetes secret), ignoring a trailing newline.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read secret file {}: {e}", path.display()))?;
        Ok(Self(text.trim_end_matches(['\r', '\n']).to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Everything the service needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The settings of the TOML file.
    pub settings: Settings,
    /// The URL Twilio uses to reach the service, without the `/twilio/...` path
    /// (e.g. `https://door.example.com`): webhook signatures are computed over it.
    pub public_url: String,
    /// `sqlite://FILE` (the default, embedded) or `postgres://...`.
    pub database_url: String,
    /// The Twilio auth token: the key of webhook signatures and the password of the REST API.
    pub auth_token: Secret,
    /// Protects `/admin`; without one the admin page is disabled.
    pub admin_token: Option<Secret>,
}

/// How a correct code opens the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OpenMode {
    /// `<Play digits="ww9"/>`: Twilio generates the DTMF itself.
    #[default]
    Digits,
    /// `<Play>` of a WAV tone this service synthesises (`/twilio/tones/9.wav`).
    Tone,
}

/// How the synthesised tone is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ToneEncoding {
    /// 16-bit linear PCM.
    #[default]
    Pcm,
    /// 8-bit G.711 μ-law, the telephone network's own encoding.
    Mulaw,
}

/// The TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Used when neither `--public-url` nor `DOORBELL_PUBLIC_URL` is given.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Used when neither `--database-url` nor `DOORBELL_DATABASE_URL` is given.
    #[serde(default)]
    pub database_url: Option<String>,
    #[serde(default)]
    pub open_mode: OpenMode,
    /// What `<Play digits>` sends in `digits` mode; `w` waits half a second.
    #[serde(default = "default_open_digits")]
    pub open_digits: String,
    /// Only calls from these numbers get the menu; the others are rejected. Empty: everyone.
    #[serde(default)]
    pub allowed_callers: Vec<String>,
    /// Codes shorter than this are taken as a menu choice, never checked as a code.
    #[serde(default = "default_min_code_length")]
    pub min_code_length: usize,
    #[serde(default)]
    pub voice: Voice,
    #[serde(default)]
    pub menu: Menu,
    pub residents: Vec<Resident>,
    #[serde(default)]
    pub pins: Vec<Pin>,
    #[serde(default)]
    pub dial: DialSettings,
    #[serde(default)]
    pub tone: ToneSettings,
    #[serde(default)]
    pub lockout: Lockout,
    #[serde(default)]
    pub notify: Notify,
    #[serde(default)]
    pub twilio: Twilio,
    #[serde(default)]
    pub open_house: Vec<OpenHouse>,
    /// Webhooks for a call that started longer ago than this are refused as replays.
    #[serde(default = "default_max_call_seconds")]
    pub max_call_seconds: u64,
    /// Webhooks carrying a parameter Twilio does not document for them are refused (400).
    /// `false` accepts them, for the time between Twilio adding a parameter and an update.
    #[serde(default = "yes")]
    pub strict_parameters: bool,
    /// Guest codes expired, used up or revoked longer ago than this are deleted (the audit log
    /// keeps their labels: it stores them, not a reference).
    #[serde(default = "default_guest_code_retention_days")]
    pub guest_code_retention_days: u64,
}

fn default_open_digits() -> String {
    "ww9".into()
}
fn default_min_code_length() -> usize {
    4
}
fn default_max_call_seconds() -> u64 {
    3600
}
/// How long guest codes are kept after they stopped working, unless configured.
pub const DEFAULT_GUEST_CODE_RETENTION_DAYS: u64 = 30;

fn default_guest_code_retention_days() -> u64 {
    DEFAULT_GUEST_CODE_RETENTION_DAYS
}

/// The voice of `<Say>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Voice {
    /// A Twilio voice: `alice`, `man`, `woman`, `Polly.Joanna`, `Google.en-US-Standard-C`, ...
    pub voice: String,
    /// A BCP-47 language tag, e.g. `en-US`, `fr-FR`.
    pub language: String,
}

impl Default for Voice {
    fn default() -> Self {
        Self {
            voice: "Polly.Joanna".into(),
            language: "en-US".into(),
        }
    }
}

/// What callers hear.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Menu {
    /// Said once before the menu.
    pub greeting: String,
    /// Played instead of the spoken menu when set (an MP3 or WAV URL).
    pub audio_url: Option<String>,
    /// Appended to the spoken list of residents.
    pub code_prompt: String,
    /// How many times the menu is offered before the goodbye.
    pub repeats: u32,
    /// Seconds Twilio waits for a key after the menu (and between keys).
    pub timeout_seconds: u32,
    pub goodbye: String,
    pub invalid_code: String,
    pub locked_out: String,
    pub no_such_choice: String,
    pub nobody_answered: String,
    pub door_opening: String,
}

impl Default for Menu {
    fn default() -> Self {
        Self {
            greeting: "Hello.".into(),
            audio_url: None,
            code_prompt: "If you have a code, enter it, then press the pound key.".into(),
            repeats: 3,
            timeout_seconds: 5,
            goodbye: "Goodbye.".into(),
            invalid_code: "That code is not valid.".into(),
            locked_out: "Code entry is locked for now. Please try again later.".into(),
            no_such_choice: "Sorry, that is not a choice.".into(),
            nobody_answered: "Sorry, nobody answered. Goodbye.".into(),
            door_opening: "Welcome.".into(),
        }
    }
}

/// A person the menu can put a visitor through to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resident {
    pub name: String,
    /// The menu key, `0`–`9`.
    pub digit: String,
    /// E.164, e.g. `+15551234567`.
    pub phone: String,
    /// Texts about the door (opened, nobody answered, lockout) go to residents with `notify`.
    #[serde(default = "yes")]
    pub notify: bool,
}

fn yes() -> bool {
    true
}

/// An owner PIN, stored as an argon2 hash (`doorbell hash-pin` prints one).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// Said in texts and the audit log instead of the PIN ("door opened with owner").
    pub label: String,
    /// The PHC string `$argon2id$...`.
    #[serde(default)]
    pub hash: Option<String>,
    /// A file holding the PHC string, read at start.
    #[serde(default)]
    pub hash_file: Option<String>,
    /// An environment variable holding the PHC string, read at start.
    #[serde(default)]
    pub hash_env: Option<String>,
}

/// Putting a visitor through.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialSettings {
    /// Seconds a resident's phone rings.
    pub timeout_seconds: u32,
    /// When the chosen resident does not answer, ring the others in `order`.
    pub try_others: bool,
    /// The ring order by menu digit; empty means the residents' order in this file.
    pub order: Vec<String>,
    /// The caller ID residents see; empty means `twilio.number`, else the called number.
    pub caller_id: Option<String>,
}

impl Default for DialSettings {
    fn default() -> Self {
        Self {
            timeout_seconds: 20,
            try_others: true,
            order: Vec::new(),
            caller_id: None,
        }
    }
}

/// The DTMF tone of `open_mode = "tone"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToneSettings {
    /// The key the building's system takes as "open".
    pub digit: char,
    pub duration_ms: u32,
    pub gap_ms: u32,
    pub repeats: u32,
    /// The level of each of the two sine waves, in dB relative to full scale (at most −6.03 so
    /// their sum cannot clip).
    pub level_dbfs: f64,
    pub encoding: ToneEncoding,
    /// Silence after the tone before hanging up, in seconds.
    pub pause_seconds: u32,
}

impl Default for ToneSettings {
    fn default() -> Self {
        Self {
            digit: '9',
            duration_ms: 400,
            gap_ms: 200,
            repeats: 2,
            level_dbfs: -10.0,
            encoding: ToneEncoding::Pcm,
            pause_seconds: 1,
        }
    }
}

/// Wrong-code lockout, per calling number.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lockout {
    /// Wrong codes allowed within `window_seconds` before code entry is refused.
    pub max_wrong: u32,
    pub window_seconds: u64,
    /// How long code entry stays refused.
    pub cooldown_seconds: u64,
}

impl Default for Lockout {
    fn default() -> Self {
        Self {
            max_wrong: 5,
            window_seconds: 600,
            cooldown_seconds: 900,
        }
    }
}

/// Which events are texted to the residents with `notify = true`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Notify {
    pub on_open: bool,
    pub on_no_answer: bool,
    pub on_lockout: bool,
}

impl Default for Notify {
    fn default() -> Self {
        Self {
            on_open: true,
            on_no_answer: true,
            on_lockout: true,
        }
    }
}

/// The Twilio account texts are sent from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Twilio {
    /// `AC...`; without it no text is sent.
    pub account_sid: String,
    /// The Twilio number texts come from and residents see as caller ID.
    pub number: String,
    /// Where the REST API lives; point it at `doorbell fake-twilio` to try things out.
    pub api_base: String,
}

impl Default for Twilio {
    fn default() -> Self {
        Self {
            account_sid: String::new(),
            number: String::new(),
            api_base: "https://api.twilio.com".into(),
        }
    }
}

/// A time when the door opens for any caller, e.g. a party or an open house.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenHouse {
    pub label: String,
    /// `mon`..`sun`; empty means every day.
    #[serde(default)]
    pub days: Vec<Weekday>,
    /// Local time of the server (set `TZ`), `HH:MM`.
    pub from: String,
    /// `HH:MM`, or `24:00` for the end of the day.
    pub until: String,
}

impl OpenHouse {
    /// Whether the window covers `local` (a time in the server's time zone).
    pub fn covers(&self, local: chrono::NaiveDateTime) -> bool {
        let day_matches = self.days.is_empty() || self.days.contains(&local.weekday());
        let minute = minute_of_day(local.time());
        match (parse_minute(&self.from), parse_minute(&self.until)) {
            (Some(from), Some(until)) => day_matches && from <= minute && minute < until,
            _ => false,
        }
    }
}

fn minute_of_day(time: NaiveTime) -> u32 {
    use chrono::Timelike;
    time.hour() * 60 + time.minute()
}

/// `HH:MM` as minutes since midnight; `24:00` is the end of the day.
fn parse_minute(text: &str) -> Option<u32> {
    if text == "24:00" {
        return Some(24 * 60);
    }
    NaiveTime::parse_from_str(text, "%H:%M")
        .ok()
        .map(minute_of_day)
}

impl Settings {
    /// Parses and checks a TOML document; `hash_file`s are read relative to `base_dir`.
    pub fn from_toml(text: &str, base_dir: &Path) -> anyhow::Result<Self> {
        let mut settings: Settings = toml::from_str(text)?;
        for pin in &mut settings.pins {
            if let Some(file) = pin.hash_file.take() {
                let hash = Secret::from_file(&base_dir.join(file))?;
                pin.hash = Some(hash.expose().to_owned());
            }
            if let Some(variable) = pin.hash_env.take() {
                let hash = std::env::var(&variable).map_err(|_| {
                    anyhow::anyhow!(
                        "pin {}: environment variable {variable} is not set",
                        pin.label
                    )
                })?;
                pin.hash = Some(hash);
            }
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Reads the TOML file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, base).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    fn validate(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        if self.residents.is_empty() {
            bail!("at least one [[residents]] is needed");
        }
        let mut digits = std::collections::HashSet::new();
        for resident in &self.residents {
            if resident.digit.len() != 1 || !resident.digit.chars().all(|c| c.is_ascii_digit()) {
                bail!("resident {}: digit must be one of 0-9", resident.name);
            }
            if !digits.insert(&resident.digit) {
                bail!("digit {} is given to two residents", resident.digit);
            }
            if !resident.phone.starts_with('+') {
                bail!(
                    "resident {}: phone must be in E.164 form (+15551234567)",
                    resident.name
                );
            }
        }
        for digit in &self.dial.order {
            if !digits.contains(digit) {
                bail!("dial.order names digit {digit}, which no resident has");
            }
        }
        for pin in &self.pins {
            let hash = pin.hash.as_deref().unwrap_or_default();
            argon2::PasswordHash::new(hash).map_err(|e| {
                anyhow::anyhow!(
                    "pin {}: hash is not an argon2 PHC string ({e}); make one with `doorbell hash-pin`",
                    pin.label
                )
            })?;
        }
        if self.min_code_length < 2 {
            bail!("min_code_length must be at least 2, so that codes and menu keys differ");
        }
        if !self
            .open_digits
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, 'w' | 'W' | '*' | '#'))
        {
            bail!("open_digits may hold only 0-9, *, # and w/W (waits)");
        }
        crate::tone::Dtmf::of(self.tone.digit)
            .ok_or_else(|| anyhow::anyhow!("tone.digit must be a DTMF key (0-9, *, #, A-D)"))?;
        if self.tone.level_dbfs > -6.03 {
            bail!("tone.level_dbfs must be at most -6.03, or the two sines would clip together");
        }
        if self.tone.repeats == 0 || self.tone.duration_ms == 0 {
            bail!("tone.repeats and tone.duration_ms must be positive");
        }
        for window in &self.open_house {
            if parse_minute(&window.from).is_none() || parse_minute(&window.until).is_none() {
                bail!("open_house {}: from and until are HH:MM", window.label);
            }
        }
        Ok(())
    }

    /// Residents in ring order.
    pub fn ring_order(&self) -> Vec<&Resident> {
        if self.dial.order.is_empty() {
            self.residents.iter().collect()
        } else {
            self.dial
                .order
                .iter()
                .filter_map(|digit| self.resident(digit))
                .collect()
        }
    }

    pub fn resident(&self, digit: &str) -> Option<&Resident> {
        self.residents.iter().find(|r| r.digit == digit)
    }

    /// The open-house window covering `now`, if any.
    pub fn open_house_at(&self, now: chrono::DateTime<chrono::Local>) -> Option<&OpenHouse> {
        self.open_house
            .iter()
            .find(|window| window.covers(now.naive_local()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [[residents]]
        name = "Ken"
        digit = "1"
        phone = "+15550000001"
    "#;

    #[test]
    fn defaults_fill_a_minimal_file() {
        let settings = Settings::from_toml(MINIMAL, Path::new(".")).unwrap();
        assert_eq!(settings.open_mode, OpenMode::Digits);
        assert_eq!(settings.tone.duration_ms, 400);
        assert_eq!(settings.tone.gap_ms, 200);
        assert_eq!(settings.tone.repeats, 2);
        assert_eq!(settings.menu.repeats, 3);
        assert!(settings.strict_parameters);
        assert_eq!(settings.guest_code_retention_days, 30);
    }

    #[test]
    fn rejects_a_pin_that_is_not_a_hash() {
        let text = format!("{MINIMAL}\n[[pins]]\nlabel = \"owner\"\nhash = \"4321\"\n");
        let error = Settings::from_toml(&text, Path::new(".")).unwrap_err();
        assert!(error.to_string().contains("hash-pin"), "{error}");
    }

    #[test]
    fn reads_a_pin_hash_from_a_secret_file() {
        let dir = tempfile::tempdir().unwrap();
        let hash = crate::codes::hash("2468");
        std::fs::write(dir.path().join("owner.pin"), format!("{hash}\n")).unwrap();
        let text = format!("{MINIMAL}\n[[pins]]\nlabel = \"owner\"\nhash_file = \"owner.pin\"\n");
        let settings = Settings::from_toml(&text, dir.path()).unwrap();
        assert_eq!(settings.pins[0].hash.as_deref(), Some(hash.as_str()));
        let missing = format!("{MINIMAL}\n[[pins]]\nlabel = \"owner\"\nhash_file = \"nope\"\n");
        assert!(Settings::from_toml(&missing, dir.path()).is_err());
    }

    #[test]
    fn rejects_two_residents_on_one_digit() {
        let text = format!("{MINIMAL}{MINIMAL}");
        let error = Settings::from_toml(&text, Path::new(".")).unwrap_err();
        assert!(error.to_string().contains("two residents"), "{error}");
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "[redacted]");
    }

    #[test]
    fn open_house_windows() {
        let window = OpenHouse {
            label: "party".into(),
            days: vec![Weekday::Sat],
            from: "18:00".into(),
            until: "24:00".into(),
        };
        let at = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
        // 2026-11-28 is a Saturday.
        assert!(window.covers(at("2026-11-28 18:00")));
        assert!(window.covers(at("2026-11-28 23:59")));
        assert!(!window.covers(at("2026-11-28 17:59")));
        assert!(!window.covers(at("2026-11-27 19:00")));
    }
}
