//! Campaigns, the pure part: everything a bulk send decides before and after the store and the
//! senders are involved, with no I/O but the reading of a recipient file the caller opened.
//!
//! A campaign fans one message (an AlimTalk template, a Brand Message, a WhatsApp template) out
//! to the recipients of a CSV file, one durable send row per recipient (the binary maps them onto
//! the business-message and outbox queues), and reads back delivery results and clicks.
//!
//! # Layout
//! - [`recipients`]: the CSV file — header, `phone`/`to` column, one column per template
//!   variable; UTF-8 (with or without BOM), UTF-16 with BOM and CP949/EUC-KR — read as a stream,
//!   each row valid or invalid with its line number and reason; duplicates found by fingerprint.
//! - [`address`]: recipient numbers per channel and the key a suppression list matches them by.
//! - [`ab`]: the split between variants and the deterministic assignment of a recipient.
//! - [`schedule`]: sending rates, the 20:50–08:00 KST quiet hours of ads, and the estimate of
//!   how long a campaign takes.
//! - [`links`]: tracked links: finding URLs in a message, unguessable tokens bound to a campaign
//!   and a recipient.
//! - [`stats`]: proportions with 95 % intervals and the two-proportion test.
//! - [`report`]: the campaign report as data and its table, JSON, CSV and HTML (inline SVG)
//!   renderings.

#![warn(missing_docs, missing_debug_implementations)]

pub mod ab;
pub mod address;
pub mod links;
pub mod recipients;
pub mod report;
pub mod schedule;
pub mod stats;

pub use ab::Split;
pub use recipients::{Encoding, FileError, RecipientReader, Row};
pub use schedule::{QuietHours, Rate};
