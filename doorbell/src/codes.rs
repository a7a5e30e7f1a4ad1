//! Codes that open the door — owner PINs from the config and guest codes from the database, both
//! kept only as argon2 hashes — and the wrong-code lockout.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use prometheus_client::metrics::counter::Counter;
use rand::Rng;

use crate::config::{Lockout, Settings};
use crate::store::{Millis, Store};

/// The argon2 PHC string of `code`, with a fresh salt and the crate's default (OWASP) cost.
pub fn hash(code: &str) -> String {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(code.as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any input")
        .to_string()
}

fn matches(code: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(code.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A random code of `length` digits for a guest.
pub fn random_code(length: usize) -> String {
    let mut rng = rand::rng();
    (0..length)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// Whether `text` can be a code: digits only, of a length worth checking.
pub fn is_well_formed(text: &str, min_length: usize) -> bool {
    (min_length..=16).contains(&text.len()) && text.chars().all(|c| c.is_ascii_digit())
}

/// What a code entered at the door amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The door opens; `label` names the code in texts and the log.
    Opens { label: String },
    /// A guest code that stopped working between reading it and counting its use.
    Refused { label: String, reason: &'static str },
    /// No such code.
    Wrong,
}

/// Checks `code` against the owner PINs and the guest codes usable at `now`, counting a use of
/// a guest code that opens the door. Each argon2 verification counts one in `verifications`.
///
/// Codes expired, used up, revoked or not valid yet are left out by the query, so the work per
/// entry grows with the codes usable now, not with every code ever made: a code that no longer
/// works is just a wrong code.
pub async fn check(
    settings: &Settings,
    store: &Store,
    code: &str,
    now: Millis,
    verifications: &Counter,
) -> anyhow::Result<Verdict> {
    let guests = store.usable_guest_codes(now).await?;
    let owner_hashes: Vec<(String, String)> = settings
        .pins
        .iter()
        .filter_map(|pin| Some((pin.label.clone(), pin.hash.clone()?)))
        .collect();
    let guest_hashes: Vec<String> = guests.iter().map(|g| g.code_hash.clone()).collect();
    let code = code.to_owned();
    let verifications = verifications.clone();
    // argon2 is deliberately slow (tens of milliseconds each): keep it off the async workers.
    let found = tokio::task::spawn_blocking(move || {
        let verify = |phc: &str| {
            verifications.inc();
            matches(&code, phc)
        };
        if let Some((label, _)) = owner_hashes.iter().find(|(_, phc)| verify(phc)) {
            return Some(Err(label.clone()));
        }
        guest_hashes.iter().position(|phc| verify(phc)).map(Ok)
    })
    .await?;
    Ok(match found {
        None => Verdict::Wrong,
        Some(Err(owner_label)) => Verdict::Opens { label: owner_label },
        Some(Ok(index)) => {
            let guest = &guests[index];
            let label = format!("guest code \"{}\"", guest.label);
            if store.use_guest_code(guest.id, now).await? {
                Verdict::Opens { label }
            } else {
                // Used up or revoked since it was read.
                Verdict::Refused {
                    label,
                    reason: "used up or revoked",
                }
            }
        }
    })
}

/// Deletes the guest codes that stopped working more than `retention_days` before `now`;
/// returns how many.
pub async fn prune(store: &Store, retention_days: u64, now: Millis) -> sqlx::Result<u64> {
    let retention = millis_from_seconds(retention_days.saturating_mul(24 * 3600));
    store.prune_guest_codes(now.saturating_sub(retention)).await
}

/// The outcome a wrong code is logged with; the lockout counts these.
pub const WRONG_CODE: &str = "wrong-code";

/// Until when `caller` may not enter codes, if locked out at `now`.
pub async fn locked_until(
    store: &Store,
    caller: &str,
    now: Millis,
) -> sqlx::Result<Option<Millis>> {
    Ok(store
        .latest_lockout_end(caller)
        .await?
        .filter(|&until| until > now))
}

/// Called after a wrong code from `caller` was logged: locks the caller out when that makes
/// `max_wrong` within the window. Wrong codes from before the end of an earlier lockout do not
/// count again. Returns the end of the new lockout.
pub async fn after_wrong_code(
    store: &Store,
    policy: &Lockout,
    caller: &str,
    now: Millis,
) -> sqlx::Result<Option<Millis>> {
    let window_start = now.saturating_sub(millis_from_seconds(policy.window_seconds));
    let since = match store.latest_lockout_end(caller).await? {
        Some(previous_end) => window_start.max(previous_end),
        None => window_start,
    };
    let wrong = store.count_outcomes(caller, WRONG_CODE, since).await?;
    if policy.max_wrong > 0 && wrong >= i64::from(policy.max_wrong) {
        // Saturating: a cooldown configured as "forever" (huge) must not overflow mid-call.
        let until = now.saturating_add(millis_from_seconds(policy.cooldown_seconds));
        store.lock(caller, now, until).await?;
        Ok(Some(until))
    } else {
        Ok(None)
    }
}

/// `seconds` in milliseconds, saturating at the largest [`Millis`].
pub fn millis_from_seconds(seconds: u64) -> Millis {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_matches_its_code_only() {
        let phc = hash("4321");
        assert!(phc.starts_with("$argon2id$"));
        assert!(matches("4321", &phc));
        assert!(!matches("4322", &phc));
        assert!(!matches("4321", "not a hash"));
    }

    #[test]
    fn code_shapes() {
        assert!(is_well_formed("4321", 4));
        assert!(!is_well_formed("432", 4));
        assert!(!is_well_formed("43a1", 4));
        assert!(!is_well_formed(&"1".repeat(17), 4));
        let code = random_code(6);
        assert!(is_well_formed(&code, 6), "{code}");
    }
}
