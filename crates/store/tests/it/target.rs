//! Backend set-up for the conformance suite.

use clawbridge_store::{MemoryStore, PgStore, SharedStore, SqliteStore};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;

/// Where the PostgreSQL tests connect unless `CLAWBRIDGE_TEST_DATABASE_URL` says otherwise.
const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// One isolated database for one test. Opening it several times gives independent stores on the
/// same data: separate pools, as two processes would have (for memory: handles on one store).
pub enum Target {
    Sqlite { _dir: TempDir, path: PathBuf },
    Postgres { url: String, schema: String },
    Memory { store: MemoryStore },
}

impl Target {
    /// A fresh in-memory store.
    #[expect(clippy::unused_async, reason = "same shape as `Target::postgres` for the suite macro")]
    pub async fn memory() -> Option<Self> {
        Some(Self::Memory { store: MemoryStore::new() })
    }

    /// A fresh SQLite file in a temp dir (not created until the first `open`).
    #[expect(clippy::unused_async, reason = "same shape as `Target::postgres` for the suite macro")]
    pub async fn sqlite() -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state").join("clawbridge.db");
        Some(Self::Sqlite { _dir: dir, path })
    }

    /// A fresh schema in the test database, or `None` when PostgreSQL is unreachable and
    /// `CLAWBRIDGE_SKIP_POSTGRES=1`.
    pub async fn postgres() -> Option<Self> {
        let url = pg_url();
        let mut admin = match admin_connection(&url).await {
            Ok(conn) => conn,
            Err(e) if std::env::var("CLAWBRIDGE_SKIP_POSTGRES").as_deref() == Ok("1") => {
                eprintln!("skipping: PostgreSQL unreachable ({e}) and CLAWBRIDGE_SKIP_POSTGRES=1");
                return None;
            }
            Err(e) => panic!(
                "PostgreSQL at {} is unreachable: {e}. Start it, point CLAWBRIDGE_TEST_DATABASE_URL at one, \
                 or set CLAWBRIDGE_SKIP_POSTGRES=1 to skip the PostgreSQL half of the suite",
                clawbridge_store::redact_url(&url)
            ),
        };
        let schema = format!("t_{}", random_hex());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut admin)
            .await
            .expect("create test schema");
        admin.close().await.ok();
        Some(Self::Postgres { url, schema })
    }

    /// Opens a store on this target (running migrations, as every start-up does).
    pub async fn open(&self) -> SharedStore {
        self.try_open().await.expect("open store")
    }

    /// As [`Target::open`], keeping the error.
    pub async fn try_open(&self) -> clawbridge_store::Result<SharedStore> {
        Ok(match self {
            Self::Sqlite { path, .. } => Arc::new(SqliteStore::open(path).await?),
            Self::Postgres { url, schema } => Arc::new(PgStore::connect_with(schema_options(url, schema)).await?),
            Self::Memory { store } => Arc::new(store.clone()),
        })
    }

    /// Drops the schema (PostgreSQL); the temp dir (SQLite) or the data (memory) goes with `self`.
    pub async fn cleanup(self) {
        if let Self::Postgres { url, schema } = self {
            match admin_connection(&url).await {
                Ok(mut admin) => {
                    if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                        .execute(&mut admin)
                        .await
                    {
                        eprintln!("could not drop test schema {schema}: {e}");
                    }
                    admin.close().await.ok();
                }
                Err(e) => eprintln!("could not drop test schema {schema}: {e}"),
            }
        }
    }
}

/// The URL of the test server.
pub fn pg_url() -> String {
    std::env::var("CLAWBRIDGE_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned())
}

/// Options that put every table of the store in `schema`.
pub fn schema_options(url: &str, schema: &str) -> PgConnectOptions {
    PgConnectOptions::from_str(url).expect("valid CLAWBRIDGE_TEST_DATABASE_URL").options([("search_path", schema)])
}

async fn admin_connection(url: &str) -> Result<PgConnection, String> {
    let options = PgConnectOptions::from_str(url).map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 10 s".to_owned()),
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("randomness");
    hex::encode(bytes)
}
