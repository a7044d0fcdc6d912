//! The outbound HTTP layer of clawbridge: one retry loop, one limiter, one downloader.
//!
//! A platform client is a thin request function (one attempt, its failure classified into
//! core's [`RetryClass`](clawbridge_core::retry::RetryClass)) wrapped in [`Layers`] that tests
//! can drop one by one.
//!
//! # Layout
//! - [`retry`]: the in-process retry loop on backon ([`retry()`]), the [`Classify`] trait that
//!   drives it, `Retry-After` parsing (seconds or HTTP date) and [`jitter`].
//! - [`limit`]: the per-key [`Limiter`] (governor, 429 pauses) and the [`SharedQuota`] that holds
//!   across replicas, with its in-memory twin [`MemoryQuota`].
//! - [`layers`]: [`Layers`], retry + rate limit + tracing around a request function.
//! - [`download`]: the SSRF-safe [`Downloader`] for inbound media.

#![warn(missing_docs)]

pub mod download;
pub mod layers;
pub mod limit;
pub mod retry;

pub use download::{DownloadError, DownloadPolicy, Downloaded, Downloader, PlatformKey, describe_error, redact_url};
pub use layers::{Layers, REQUEST_SECONDS, Request, Throttled};
pub use limit::{Limiter, MemoryQuota, QuotaError, SharedQuota};
pub use retry::{Classify, jitter, parse_retry_after, retry, retry_after, should_retry};
