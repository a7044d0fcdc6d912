//! What only the PostgreSQL backend has: a server that may be unreachable, and a URL with a
//! password that must never reach a message.

use clawbridge_store::{PgStore, StoreError};

fn config_message(result: clawbridge_store::Result<PgStore>) -> String {
    match result {
        Err(StoreError::Config(message)) => message,
        other => panic!("expected a Config error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_config_error_without_the_password() {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let message = config_message(PgStore::connect("postgres://bridge:hunter2@127.0.0.1:1/clawbridge").await);
    assert!(message.contains("cannot connect to PostgreSQL at postgres://bridge@127.0.0.1:1/clawbridge"), "{message}");
    assert!(message.contains("CLAWBRIDGE_DATABASE_URL"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn a_malformed_url_is_a_config_error_without_the_password() {
    let message = config_message(PgStore::connect("postgres://bridge:hunter2@127.0.0.1:notaport/db").await);
    assert!(message.contains("not a valid PostgreSQL URL"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

/// Every pooled connection has server-side statement and lock timeouts, so a stuck query or a
/// lock held by a dead transaction cannot hold the store forever; the URL's own options win.
#[tokio::test]
async fn pooled_connections_have_statement_and_lock_timeouts() {
    let Some(target) = crate::target::Target::postgres().await else { return };
    let crate::target::Target::Postgres { url, schema } = &target else { unreachable!() };
    let store = PgStore::connect_with(crate::target::schema_options(url, schema)).await.unwrap();
    let statement: String = sqlx::query_scalar("SHOW statement_timeout").fetch_one(store.pool()).await.unwrap();
    let lock: String = sqlx::query_scalar("SHOW lock_timeout").fetch_one(store.pool()).await.unwrap();
    assert_eq!((statement.as_str(), lock.as_str()), ("30s", "10s"));
    drop(store);
    target.cleanup().await;
}
