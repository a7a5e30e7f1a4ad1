//! `app seed` makes the same content for the same seed.

mod common;

use app::seed::{SeedConfig, seed};
use common::{count, migrated_database};
use sqlx::PgPool;

async fn content(pool: &PgPool) -> Vec<(String, String, Vec<String>, i64)> {
    sqlx::query_as(
        "SELECT p.slug, u.username, \
                ARRAY(SELECT t.name FROM post_tags pt JOIN tags t ON t.id = pt.tag_id \
                      WHERE pt.post_id = p.id ORDER BY t.name), \
                (SELECT count(*) FROM comments c WHERE c.post_id = p.id) \
         FROM posts p JOIN users u ON u.id = p.author_id ORDER BY p.published_at, p.id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_same_seed_gives_the_same_content() {
    let config = SeedConfig {
        users: 30,
        posts: 120,
        comments: 600,
        seed: 42,
    };
    let (_one, first) = migrated_database().await;
    let (_two, second) = migrated_database().await;
    let (_three, other) = migrated_database().await;
    let summary = seed(&first, config).await.unwrap();
    assert_eq!(
        (summary.users, summary.posts, summary.comments),
        (30, 120, 600)
    );
    seed(&second, config).await.unwrap();
    seed(&other, SeedConfig { seed: 43, ..config })
        .await
        .unwrap();

    assert_eq!(count(&first, "posts").await, 120);
    assert_eq!(count(&first, "comments").await, 600);
    let authors: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE is_author")
        .fetch_one(&first)
        .await
        .unwrap();
    assert_eq!(authors, 3);
    assert_eq!(content(&first).await, content(&second).await);
    assert_ne!(content(&first).await, content(&other).await);

    // Seeding is for empty databases only.
    assert!(seed(&first, config).await.is_err());
}

/// `app seed --if-empty` runs on every `docker compose up`: the first run seeds, later runs
/// succeed and change nothing.
#[tokio::test]
async fn seed_if_empty_seeds_once_and_then_leaves_the_content_alone() {
    let (database, pool) = migrated_database().await;
    let seed_if_empty = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_app"))
            .args([
                "seed",
                "--if-empty",
                "--users",
                "5",
                "--posts",
                "10",
                "--comments",
                "20",
            ])
            .env("DATABASE_URL", &database.url)
            .output()
            .expect("the app binary runs")
    };
    let first = seed_if_empty();
    assert!(first.status.success(), "{first:?}");
    assert_eq!(count(&pool, "posts").await, 10);

    let again = seed_if_empty();
    assert!(again.status.success(), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing seeded"));
    assert_eq!(count(&pool, "posts").await, 10);
    assert_eq!(count(&pool, "comments").await, 20);
}
