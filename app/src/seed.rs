//! `app seed`: fills an empty database with a deterministic blog — the same `--seed` gives the
//! same users, posts, tags and comments — for demos and load tests. Rows go in with multi-row
//! `INSERT … SELECT FROM UNNEST(…)` batches, so 10 000 posts and 100 000 comments take seconds.

use std::ops::RangeInclusive;

use chrono::{DateTime, Duration, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;

use crate::markdown;
use crate::models::post::slug_of;
use crate::models::user::hash_password;

/// The password of every seeded user.
pub const SEED_PASSWORD: &str = "leanstack";

/// How much to seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedConfig {
    pub users: u32,
    pub posts: u32,
    pub comments: u32,
    /// The random seed: the same value gives the same content.
    pub seed: u64,
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedSummary {
    pub users: u64,
    pub posts: u64,
    pub comments: u64,
}

/// The newest seeded post is published at this instant (2026-01-01T00:00:00Z); older ones
/// spread over the year before, so the content does not depend on when it was seeded.
const NEWEST: i64 = 1_767_225_600;
const BATCH: usize = 2_000;

const TAGS: &[&str] = &[
    "rust",
    "postgres",
    "caching",
    "http",
    "proxy",
    "varnish",
    "memcached",
    "redis",
    "axum",
    "sqlx",
    "performance",
    "scaling",
    "databases",
    "networking",
    "linux",
    "observability",
    "testing",
    "security",
    "design",
    "operations",
    "tutorial",
    "benchmarks",
    "tokio",
    "web",
];

const WORDS: &[&str] = &[
    "cache",
    "request",
    "latency",
    "server",
    "pool",
    "node",
    "query",
    "index",
    "page",
    "proxy",
    "hash",
    "ring",
    "replica",
    "thread",
    "socket",
    "buffer",
    "header",
    "cookie",
    "session",
    "load",
    "balance",
    "shard",
    "stream",
    "queue",
    "worker",
    "tenant",
    "schema",
    "table",
    "row",
    "column",
    "trace",
    "metric",
    "log",
    "deploy",
    "rollback",
    "timeout",
    "retry",
    "backoff",
    "client",
    "browser",
    "packet",
    "kernel",
    "memory",
    "disk",
    "network",
    "router",
    "handler",
    "template",
    "view",
    "model",
    "controller",
    "migration",
    "transaction",
    "lock",
    "snapshot",
];

const TITLE_OPENERS: &[&str] = &[
    "Notes on",
    "Why I like",
    "A field guide to",
    "Measuring",
    "The trouble with",
    "Understanding",
    "Ten lessons about",
    "Debugging",
    "Designing for",
    "What nobody tells you about",
];

/// Fills the database. Fails if it already holds users: seeding is for empty databases (run
/// `app migrate` on a fresh one first).
/// Whether the database already has users (and so, content a seed would collide with).
pub async fn has_content(pool: &PgPool) -> anyhow::Result<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users)")
        .fetch_one(pool)
        .await?)
}

pub async fn seed(pool: &PgPool, config: SeedConfig) -> anyhow::Result<SeedSummary> {
    anyhow::ensure!(
        !has_content(pool).await?,
        "the database already has users; seed an empty, migrated database"
    );
    anyhow::ensure!(
        config.users > 0 || config.posts == 0,
        "posts need at least one user"
    );
    let mut rng = StdRng::seed_from_u64(config.seed);
    let progress = ProgressBar::new(u64::from(config.users + config.posts + config.comments));
    progress.set_style(
        ProgressStyle::with_template("{msg:>9} [{bar:40}] {pos}/{len} rows, {elapsed}")
            .expect("a valid progress template")
            .progress_chars("=> "),
    );

    progress.set_message("users");
    let user_ids = insert_users(pool, config.users, &progress).await?;
    let authors = &user_ids[..user_ids.len().div_ceil(10)];
    let tag_ids = insert_tags(pool).await?;

    progress.set_message("posts");
    let posts = insert_posts(pool, &mut rng, config.posts, authors, &tag_ids, &progress).await?;

    progress.set_message("comments");
    insert_comments(
        pool,
        &mut rng,
        config.comments,
        &posts,
        &user_ids,
        &progress,
    )
    .await?;
    progress.finish_with_message("done");
    Ok(SeedSummary {
        users: user_ids.len() as u64,
        posts: posts.len() as u64,
        comments: u64::from(config.comments),
    })
}

async fn insert_users(
    pool: &PgPool,
    count: u32,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<i64>> {
    // One hash for everyone: argon2 is deliberately slow, and these accounts are demo data.
    let hash = tokio::task::spawn_blocking(|| hash_password(SEED_PASSWORD)).await?;
    let authors = count.div_ceil(10);
    let all: Vec<u32> = (1..=count).collect();
    for chunk in all.chunks(BATCH) {
        let usernames: Vec<String> = chunk.iter().map(|i| format!("user{i}")).collect();
        let names: Vec<String> = chunk.iter().map(|i| format!("User {i}")).collect();
        let is_author: Vec<bool> = chunk.iter().map(|&i| i <= authors).collect();
        // WITH ORDINALITY + ORDER BY: ids are assigned in input order, so they are the same on
        // every run.
        sqlx::query(
            "INSERT INTO users (username, display_name, password_hash, is_author) \
             SELECT u, d, $3, a FROM UNNEST($1::text[], $2::text[], $4::bool[]) \
                 WITH ORDINALITY AS t(u, d, a, i) \
             ORDER BY i",
        )
        .bind(&usernames)
        .bind(&names)
        .bind(&hash)
        .bind(&is_author)
        .execute(pool)
        .await?;
        progress.inc(chunk.len() as u64);
    }
    // Authors first, so that `ids[..authors]` are the authors.
    let ids = sqlx::query_scalar("SELECT id FROM users ORDER BY is_author DESC, id")
        .fetch_all(pool)
        .await?;
    Ok(ids)
}

async fn insert_tags(pool: &PgPool) -> anyhow::Result<Vec<i64>> {
    let names: Vec<&str> = TAGS.to_vec();
    sqlx::query("INSERT INTO tags (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING")
        .bind(&names)
        .execute(pool)
        .await?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT t.id FROM unnest($1::text[]) WITH ORDINALITY AS n(name, i) \
         JOIN tags t ON t.name = n.name ORDER BY n.i",
    )
    .bind(&names)
    .fetch_all(pool)
    .await?;
    Ok(ids)
}

fn sentence(rng: &mut StdRng, words: usize) -> String {
    let mut text: Vec<&str> = (0..words)
        .map(|_| *WORDS.choose(rng).expect("words"))
        .collect();
    let first = text[0];
    let capitalised = first[..1].to_uppercase() + &first[1..];
    text[0] = &capitalised;
    format!("{}.", text.join(" "))
}

/// A run of `sentences` sentences of `words` words each (both drawn from their ranges).
fn paragraph(
    rng: &mut StdRng,
    sentences: RangeInclusive<usize>,
    words: RangeInclusive<usize>,
) -> String {
    let count = rng.random_range(sentences);
    let text: Vec<String> = (0..count)
        .map(|_| {
            let words = rng.random_range(words.clone());
            sentence(rng, words)
        })
        .collect();
    text.join(" ")
}

fn post_body(rng: &mut StdRng) -> String {
    let paragraphs = rng.random_range(3..=6);
    let mut body = String::new();
    for index in 0..paragraphs {
        if index == 2 && rng.random_bool(0.3) {
            body.push_str("```\n");
            body.push_str(&format!(
                "GET /posts/{} HTTP/1.1\n",
                rng.random_range(1..10_000)
            ));
            body.push_str("```\n\n");
        }
        body.push_str(&paragraph(rng, 2..=5, 6..=14));
        body.push_str("\n\n");
    }
    body.push_str(&format!(
        "*Filed under {}.*\n",
        WORDS.choose(rng).expect("words")
    ));
    body
}

/// A seeded post's id and publication time (comments come after it).
struct SeededPost {
    id: i64,
    published_at: DateTime<Utc>,
}

async fn insert_posts(
    pool: &PgPool,
    rng: &mut StdRng,
    count: u32,
    authors: &[i64],
    tag_ids: &[i64],
    progress: &ProgressBar,
) -> anyhow::Result<Vec<SeededPost>> {
    let newest = DateTime::from_timestamp(NEWEST, 0).expect("a valid instant");
    let step = Duration::days(365) / i32::try_from(count.max(1)).unwrap_or(i32::MAX);
    let mut seeded = Vec::with_capacity(count as usize);
    let all: Vec<u32> = (0..count).collect();
    for chunk in all.chunks(BATCH) {
        let mut slugs = Vec::new();
        let mut titles = Vec::new();
        let mut markdowns = Vec::new();
        let mut htmls = Vec::new();
        let mut excerpts = Vec::new();
        let mut author_ids = Vec::new();
        let mut times = Vec::new();
        let mut tag_lists = Vec::new();
        for &index in chunk {
            let title = format!(
                "{} {} {}",
                TITLE_OPENERS.choose(rng).expect("openers"),
                WORDS.choose(rng).expect("words"),
                WORDS.choose(rng).expect("words"),
            );
            let body = post_body(rng);
            let rendered = markdown::render(&body);
            slugs.push(format!("{}-{}", slug_of(&title), index + 1));
            titles.push(title);
            markdowns.push(body);
            htmls.push(rendered.html);
            excerpts.push(rendered.excerpt);
            author_ids.push(*authors.choose(rng).expect("at least one author"));
            // Post 1 is the oldest, post N the newest.
            times.push(newest - step * i32::try_from(count - 1 - index).unwrap_or(i32::MAX));
            let tag_count = rng.random_range(1..=3);
            let tags: Vec<i64> = tag_ids.choose_multiple(rng, tag_count).copied().collect();
            tag_lists.push(tags);
        }
        let ids: Vec<(i64, String)> = sqlx::query_as(
            "INSERT INTO posts (slug, title, body_markdown, body_html, excerpt, author_id, published_at) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                                  $6::int8[], $7::timestamptz[]) \
             RETURNING id, slug",
        )
        .bind(&slugs)
        .bind(&titles)
        .bind(&markdowns)
        .bind(&htmls)
        .bind(&excerpts)
        .bind(&author_ids)
        .bind(&times)
        .fetch_all(pool)
        .await?;
        let id_of: std::collections::HashMap<String, i64> =
            ids.into_iter().map(|(id, slug)| (slug, id)).collect();
        let mut tag_post_ids = Vec::new();
        let mut tag_tag_ids = Vec::new();
        for ((slug, tags), published_at) in slugs.iter().zip(&tag_lists).zip(&times) {
            let id = id_of[slug];
            seeded.push(SeededPost {
                id,
                published_at: *published_at,
            });
            for tag in tags {
                tag_post_ids.push(id);
                tag_tag_ids.push(*tag);
            }
        }
        sqlx::query(
            "INSERT INTO post_tags (post_id, tag_id) SELECT * FROM UNNEST($1::int8[], $2::int8[])",
        )
        .bind(&tag_post_ids)
        .bind(&tag_tag_ids)
        .execute(pool)
        .await?;
        progress.inc(chunk.len() as u64);
    }
    Ok(seeded)
}

async fn insert_comments(
    pool: &PgPool,
    rng: &mut StdRng,
    count: u32,
    posts: &[SeededPost],
    users: &[i64],
    progress: &ProgressBar,
) -> anyhow::Result<()> {
    if posts.is_empty() || users.is_empty() {
        anyhow::ensure!(count == 0, "comments need at least one post and one user");
        return Ok(());
    }
    let all: Vec<u32> = (0..count).collect();
    for chunk in all.chunks(BATCH * 5) {
        let mut post_ids = Vec::with_capacity(chunk.len());
        let mut author_ids = Vec::with_capacity(chunk.len());
        let mut bodies = Vec::with_capacity(chunk.len());
        let mut times = Vec::with_capacity(chunk.len());
        for _ in chunk {
            let post = posts.choose(rng).expect("at least one post");
            post_ids.push(post.id);
            author_ids.push(*users.choose(rng).expect("at least one user"));
            bodies.push(paragraph(rng, 1..=3, 4..=12));
            times.push(post.published_at + Duration::minutes(rng.random_range(1..=60 * 24 * 30)));
        }
        sqlx::query(
            "INSERT INTO comments (post_id, author_id, body, created_at) \
             SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::timestamptz[])",
        )
        .bind(&post_ids)
        .bind(&author_ids)
        .bind(&bodies)
        .bind(&times)
        .execute(pool)
        .await?;
        progress.inc(chunk.len() as u64);
    }
    Ok(())
}
