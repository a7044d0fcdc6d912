//! `sqlx::migrate!` embeds the migration files at compile time, which cargo cannot see: without
//! this, editing or adding a migration would not rebuild the crate and the old set would run.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
