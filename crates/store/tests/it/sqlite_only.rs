//! What only the SQLite backend has: a file, a directory, and the ways they can be wrong.

use clawbridge_store::{Operations, SqliteStore, Store, StoreError};

fn config_message(result: clawbridge_store::Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(StoreError::Config(message)) => message,
        other => panic!("expected a Config error, got {other:?}"),
    }
}

#[test]
fn opening_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let path = std::path::Path::new("/nonexistent/never-opened.db");
    assert_send(&SqliteStore::open(path));
    assert_send(&clawbridge_store::PgStore::connect("postgres://h/db"));
    assert_send(&clawbridge_store::open("sqlite:///nonexistent/x.db"));
}

#[tokio::test]
async fn open_creates_missing_directories_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a").join("b").join("clawbridge.db");
    let store = SqliteStore::open(&path).await.unwrap();
    assert!(path.is_file());
    assert_eq!(store.path(), path);
    store.check_writable(1).await.unwrap();
    store.close().await;

    let mode: String = {
        let store = SqliteStore::open(&path).await.unwrap();
        let mode = store.backend().to_owned();
        store.close().await;
        mode
    };
    assert_eq!(mode, "sqlite");
}

#[tokio::test]
async fn a_corrupt_file_is_a_config_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clawbridge.db");
    std::fs::write(&path, "this is not a database, just text. ".repeat(200)).unwrap();
    let message = config_message(SqliteStore::open(&path).await);
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("not a usable SQLite database"), "{message}");
    assert!(message.contains("backup"), "{message}");
}

#[tokio::test]
async fn an_uncreatable_directory_is_a_config_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let message = config_message(SqliteStore::open(&blocker.join("clawbridge.db")).await);
    assert!(message.contains(&blocker.display().to_string()), "{message}");
    assert!(message.contains("CLAWBRIDGE_STATE_DIR"), "{message}");
}

#[tokio::test]
async fn a_directory_in_place_of_the_file_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clawbridge.db");
    std::fs::create_dir(&path).unwrap();
    let message = config_message(SqliteStore::open(&path).await);
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[tokio::test]
async fn open_by_url() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("url.db");
    let store = clawbridge_store::open(&format!("sqlite://{}", path.display())).await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    assert!(path.is_file());
    let with_options = dir.path().join("opts.db");
    let store = clawbridge_store::open(&format!("sqlite://{}?mode=rwc", with_options.display())).await.unwrap();
    store.check_writable(1).await.unwrap();
    assert!(with_options.is_file());
    let message = config_message(clawbridge_store::open("sqlite::memory:").await.map(|_| ()));
    assert!(message.contains("in-memory"), "{message}");
    let message = config_message(clawbridge_store::open("mysql://u:pw@h/db").await.map(|_| ()));
    assert!(message.contains("mysql://u:***@h/db"), "{message}");
    assert!(!message.contains("pw"), "{message}");
}

#[tokio::test]
async fn the_journal_is_wal_and_writes_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clawbridge.db");
    SqliteStore::open(&path).await.unwrap().close().await;
    use sqlx::{Connection, SqliteConnection};
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut conn).await.unwrap();
    assert_eq!(mode, "wal");
    let version: i64 =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(&mut conn).await.unwrap();
    assert_eq!(version, 8, "every migration ran");
}
