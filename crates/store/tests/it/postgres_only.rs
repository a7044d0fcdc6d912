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
