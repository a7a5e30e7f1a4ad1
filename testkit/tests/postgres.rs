//! The harness gives each test a real, private PostgreSQL database.

use sqlx::Row;

#[tokio::test]
async fn a_table_created_in_a_fresh_database_reads_back() {
    let database = testkit::fresh_database().await;
    let pool = database.pool().await;

    sqlx::query("CREATE TABLE visitors (id serial PRIMARY KEY, name text NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO visitors (name) VALUES ($1), ($2)")
        .bind("Ken")
        .bind("Sam")
        .execute(&pool)
        .await
        .unwrap();

    let names: Vec<String> = sqlx::query("SELECT name FROM visitors ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get("name"))
        .collect();
    assert_eq!(names, ["Ken", "Sam"]);
}

#[tokio::test]
async fn each_test_database_is_its_own() {
    let first = testkit::fresh_database().await;
    let second = testkit::fresh_database().await;
    assert_ne!(first.name, second.name);

    let first_pool = first.pool().await;
    sqlx::query("CREATE TABLE only_in_first (x int)")
        .execute(&first_pool)
        .await
        .unwrap();

    let second_pool = second.pool().await;
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'only_in_first'",
    )
    .fetch_one(&second_pool)
    .await
    .unwrap();
    assert_eq!(
        tables, 0,
        "a table made in one test's database leaked into another's"
    );
}
