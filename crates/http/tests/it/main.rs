//! clawbridge-http against local fakes: retry with `Retry-After`, limits, shared quotas, downloads.

mod download;
mod limit;
mod retry;
