//! Storage: the audit log, guest codes, lockouts and the calls seen.
//!
//! One set of queries serves both databases through sqlx's `Any` driver: an embedded SQLite file by
//! default, so the doorbell can run alone on a small server, or the stack's PostgreSQL when given a
//! `postgres://` URL. The queries stick to what both understand (`$1` parameters, `RETURNING`,
//! `ON CONFLICT`); only the schema differs (how an id is generated), hence two migration folders.
//! Times are milliseconds since the Unix epoch, in `BIGINT`s, which both store alike.

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// The database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct Event {
    pub id: i64,
    pub at: Millis,
    pub call_sid: String,
    pub caller: String,
    /// The webhook: `voice`, `gather`, `dial-status`.
    pub step: String,
    /// The keys pressed; a code shows as one `*` per digit.
    pub input: String,
    pub outcome: String,
    pub detail: String,
}

/// What is written to the audit log.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    pub call_sid: &'a str,
    pub caller: &'a str,
    pub step: &'a str,
    pub input: &'a str,
    pub outcome: &'a str,
    pub detail: &'a str,
}

/// `SELECT` of whole [`GuestCode`] rows, then `$rest` (a literal: sqlx takes only static SQL).
macro_rules! select_guest_codes {
    ($rest:literal) => {
        concat!(
            "SELECT id, label, code_hash, valid_from, valid_until, max_uses, uses, revoked_at, \
             created_at FROM guest_codes ",
            $rest
        )
    };
}

/// A code given to a guest, stored as an argon2 hash.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GuestCode {
    pub id: i64,
    pub label: String,
    pub code_hash: String,
    pub valid_from: Millis,
    pub valid_until: Millis,
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub revoked_at: Option<Millis>,
    pub created_at: Millis,
}

impl GuestCode {
    /// Why the code cannot open the door at `now`, or `None` when it can.
    pub fn refusal(&self, now: Millis) -> Option<&'static str> {
        if self.revoked_at.is_some() {
            Some("revoked")
        } else if now < self.valid_from {
            Some("not yet valid")
        } else if now >= self.valid_until {
            Some("expired")
        } else if self.max_uses.is_some_and(|max| self.uses >= max) {
            Some("used up")
        } else {
            None
        }
    }
}

/// A period during which a caller may not enter codes.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LockoutRow {
    pub caller: String,
    pub started_at: Millis,
    pub locked_until: Millis,
}

impl Store {
    /// Connects to `url` (`sqlite://FILE` or `postgres://...`) and brings the schema up to date.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        let url = if is_sqlite && !url.contains('?') {
            // Create the file on first start.
            format!("{url}?mode=rwc")
        } else {
            url.to_owned()
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if is_sqlite { 4 } else { 8 })
            .connect(&url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
        if is_sqlite {
            // Readers then do not wait for the writer; the setting stays with the file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
            SQLITE_MIGRATIONS.run(&pool).await?;
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            POSTGRES_MIGRATIONS.run(&pool).await?;
        } else {
            anyhow::bail!("the database URL must start with sqlite: or postgres:");
        }
        Ok(Self { pool })
    }

    /// Cheap check that the database answers, for the health check.
    pub async fn ping(&self) -> sqlx::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }

    /// Records the start of a call; `false` when the call was already seen (a replay).
    pub async fn start_call(
        &self,
        call_sid: &str,
        caller: &str,
        now: Millis,
    ) -> sqlx::Result<bool> {
        let result = sqlx::query(
            "INSERT INTO calls (call_sid, caller, started_at) VALUES ($1, $2, $3) \
             ON CONFLICT (call_sid) DO NOTHING",
        )
        .bind(call_sid)
        .bind(caller)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// When the call started, if it was seen.
    pub async fn call_started_at(&self, call_sid: &str) -> sqlx::Result<Option<Millis>> {
        sqlx::query_scalar("SELECT started_at FROM calls WHERE call_sid = $1")
            .bind(call_sid)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn record(&self, event: NewEvent<'_>, now: Millis) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO events (at, call_sid, caller, step, input, outcome, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(now)
        .bind(event.call_sid)
        .bind(event.caller)
        .bind(event.step)
        .bind(event.input)
        .bind(event.outcome)
        .bind(event.detail)
        .execute(&self.pool)
        .await
        .map(drop)
    }

    /// The newest `limit` events, newest first.
    pub async fn events(&self, limit: i64) -> sqlx::Result<Vec<Event>> {
        sqlx::query_as(
            "SELECT id, at, call_sid, caller, step, input, outcome, detail FROM events \
             ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// How many events of `outcome` from `caller` happened at or after `since`.
    pub async fn count_outcomes(
        &self,
        caller: &str,
        outcome: &str,
        since: Millis,
    ) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM events WHERE caller = $1 AND outcome = $2 AND at >= $3",
        )
        .bind(caller)
        .bind(outcome)
        .bind(since)
        .fetch_one(&self.pool)
        .await
    }

    /// The end of the latest lockout of `caller`, past or current.
    pub async fn latest_lockout_end(&self, caller: &str) -> sqlx::Result<Option<Millis>> {
        sqlx::query_scalar("SELECT MAX(locked_until) FROM lockouts WHERE caller = $1")
            .bind(caller)
            .fetch_one(&self.pool)
            .await
    }

    pub async fn lock(&self, caller: &str, now: Millis, until: Millis) -> sqlx::Result<()> {
        sqlx::query("INSERT INTO lockouts (caller, started_at, locked_until) VALUES ($1, $2, $3)")
            .bind(caller)
            .bind(now)
            .bind(until)
            .execute(&self.pool)
            .await
            .map(drop)
    }

    /// Lockouts still running at `now`.
    pub async fn active_lockouts(&self, now: Millis) -> sqlx::Result<Vec<LockoutRow>> {
        sqlx::query_as(
            "SELECT caller, started_at, locked_until FROM lockouts WHERE locked_until > $1 \
             ORDER BY locked_until DESC",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn add_guest_code(
        &self,
        label: &str,
        code_hash: &str,
        valid_from: Millis,
        valid_until: Millis,
        max_uses: Option<i64>,
        now: Millis,
    ) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO guest_codes (label, code_hash, valid_from, valid_until, max_uses, uses, created_at) \
             VALUES ($1, $2, $3, $4, $5, 0, $6) RETURNING id",
        )
        .bind(label)
        .bind(code_hash)
        .bind(valid_from)
        .bind(valid_until)
        .bind(max_uses)
        .bind(now)
        .fetch_one(&self.pool)
        .await
    }

    /// Every guest code, newest first.
    pub async fn guest_codes(&self) -> sqlx::Result<Vec<GuestCode>> {
        sqlx::query_as(select_guest_codes!("ORDER BY id DESC"))
            .fetch_all(&self.pool)
            .await
    }

    /// The guest codes that can open the door at `now` (see [`GuestCode::refusal`]), newest
    /// first: only these are worth an argon2 check.
    pub async fn usable_guest_codes(&self, now: Millis) -> sqlx::Result<Vec<GuestCode>> {
        sqlx::query_as(select_guest_codes!(
            "WHERE revoked_at IS NULL AND valid_from <= $1 AND valid_until > $1 \
             AND (max_uses IS NULL OR uses < max_uses) ORDER BY id DESC"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await
    }

    /// Counts one use of a code at `now`, unless it is revoked or used up in the meantime: two
    /// visitors typing a one-use code at once cannot both get in.
    pub async fn use_guest_code(&self, id: i64, now: Millis) -> sqlx::Result<bool> {
        let result = sqlx::query(
            "UPDATE guest_codes SET uses = uses + 1, last_used_at = $2 WHERE id = $1 \
             AND revoked_at IS NULL AND (max_uses IS NULL OR uses < max_uses)",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Deletes the guest codes that stopped working at or before `cutoff` — expired, revoked,
    /// or used up with their last use — and returns how many. Nothing else refers to them: the
    /// audit log holds the label itself.
    pub async fn prune_guest_codes(&self, cutoff: Millis) -> sqlx::Result<u64> {
        let result = sqlx::query(
            "DELETE FROM guest_codes WHERE valid_until <= $1 OR revoked_at <= $1 \
             OR (max_uses IS NOT NULL AND uses >= max_uses \
                 AND COALESCE(last_used_at, created_at) <= $1)",
        )
        .bind(cutoff)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// Revokes a code; `false` when there is no such code or it was already revoked.
    pub async fn revoke_guest_code(&self, id: i64, now: Millis) -> sqlx::Result<bool> {
        let result = sqlx::query(
            "UPDATE guest_codes SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }
}
