//! `clawbridge health`: asks the local daemon's `/healthz` (or `/readyz`), for container health
//! checks and scripts on images without curl.

use crate::config::Config;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

/// Exit 0 when the daemon on `CLAWBRIDGE_LISTEN` answers 200, else 1 with the reason.
///
/// # Errors
/// None: every failure is an exit code and a line on stderr.
pub async fn run(config: &Config, ready: bool) -> anyhow::Result<ExitCode> {
    let url = format!("http://{}/{}", local(config.bridge.listen), if ready { "readyz" } else { "healthz" });
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    match client.get(&url).send().await {
        Ok(answer) if answer.status().is_success() => {
            println!("ok    {url}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(answer) => {
            let status = answer.status();
            let body = answer.text().await.unwrap_or_default();
            eprintln!("{url}: HTTP {status} {}", body.trim());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("{url}: {e} (is `clawbridge serve` running with this CLAWBRIDGE_LISTEN?)");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The address to ask: a listener on every interface is asked on loopback.
fn local(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listen.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), listen.port()),
        _ => listen,
    }
}

#[cfg(test)]
mod tests {
    use super::local;

    #[test]
    fn a_wildcard_listener_is_asked_on_loopback() {
        assert_eq!(local("0.0.0.0:18790".parse().unwrap()).to_string(), "127.0.0.1:18790");
        assert_eq!(local("[::]:18790".parse().unwrap()).to_string(), "[::1]:18790");
        assert_eq!(local("10.0.0.5:80".parse().unwrap()).to_string(), "10.0.0.5:80");
    }
}
