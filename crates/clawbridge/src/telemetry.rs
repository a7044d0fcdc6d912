//! Logs (`tracing`, `RUST_LOG`, pretty or JSON) and the Prometheus recorder behind `/metrics`.

use crate::config::LogFormat;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;

/// How much is logged when `RUST_LOG` does not say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbosity {
    /// The daemon tells what it does (`info`).
    Daemon,
    /// A one-shot command prints its report on stdout and logs only what went wrong (`warn`).
    Command,
}

/// Installs the global log subscriber once; later calls do nothing (tests start several daemons).
/// Colour only on a terminal and without `NO_COLOR`, so journald, CI logs and pipes get plain text.
pub fn init_logging(format: LogFormat, verbosity: Verbosity) {
    let default = match verbosity {
        Verbosity::Daemon => "info",
        Verbosity::Command => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = colour_wanted(std::io::IsTerminal::is_terminal(&std::io::stderr()), std::env::var_os("NO_COLOR"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("clawbridge_agent_latency_seconds".to_owned()),
                    &[0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("clawbridge_send_latency_seconds".to_owned()),
                        &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(clawbridge_http::REQUEST_SECONDS.to_owned()),
                        &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(crate::http::SERVED_SECONDS.to_owned()),
                        &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(crate::pipeline::QUEUE_WAIT_SECONDS.to_owned()),
                        &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0],
                    )
                })
                .expect("bucket lists are non-empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding application); then our
            // handle still renders what we record through it only, which is acceptable.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// <https://no-color.org>: any non-empty `NO_COLOR` turns colour off.
fn colour_wanted(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::colour_wanted;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_wanted(true, None));
        assert!(colour_wanted(true, Some("".into())));
        assert!(!colour_wanted(true, Some("1".into())));
        assert!(!colour_wanted(false, None));
    }
}
