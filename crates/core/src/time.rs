//! Time as epoch milliseconds: the unit SQLite and PostgreSQL both store as a plain integer.

/// Milliseconds since the Unix epoch (UTC).
pub type EpochMs = i64;

/// One second in [`EpochMs`].
pub const SECOND_MS: EpochMs = 1_000;
/// One minute in [`EpochMs`].
pub const MINUTE_MS: EpochMs = 60 * SECOND_MS;
/// One hour in [`EpochMs`].
pub const HOUR_MS: EpochMs = 60 * MINUTE_MS;
