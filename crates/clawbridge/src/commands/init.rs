//! `clawbridge init`: writes a commented `clawbridge.toml` with every setting and its default.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::process::ExitCode;

/// The file `init` writes: the core settings with their defaults, each channel's section
/// commented out, every setting named with its environment variable.
pub const TEMPLATE: &str = include_str!("init.toml");

/// Writes [`TEMPLATE`] to `path` (0600: it will hold credentials), refusing to replace a file
/// unless `force`.
///
/// # Errors
/// The file exists (without `force`) or cannot be written.
pub fn run(path: &Path, force: bool) -> anyhow::Result<ExitCode> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            anyhow::anyhow!("{} exists: edit it, or pass --force to replace it with the defaults", path.display())
        }
        _ => anyhow::anyhow!("cannot write {}: {e}", path.display()),
    })?;
    file.write_all(TEMPLATE.as_bytes())?;
    println!("wrote {}", path.display());
    println!("next: set OPENCLAW_TOKEN, enable a channel's section, then");
    println!(
        "      clawbridge --config {} config check && clawbridge --config {} doctor",
        path.display(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::TEMPLATE;
    use crate::config::Config;
    use std::collections::HashMap;

    fn load(text: &str, vars: &[(&str, &str)]) -> Result<Config, crate::config::ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clawbridge.toml");
        std::fs::write(&path, text).unwrap();
        let env: HashMap<String, String> =
            vars.iter().chain(&[("HOME", "/h")]).map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::load_with(Some(&path), &|k| env.get(k).cloned())
    }

    #[test]
    fn the_template_as_written_is_the_defaults() {
        let written = load(TEMPLATE, &[]).unwrap();
        let defaults = load("", &[]).unwrap();
        assert_eq!(written.gateway.url, defaults.gateway.url);
        assert_eq!(written.gateway.agent_id, defaults.gateway.agent_id);
        assert_eq!(written.gateway.agent_timeout, defaults.gateway.agent_timeout);
        assert_eq!(written.bridge.listen, defaults.bridge.listen);
        assert_eq!(written.bridge.log_format, defaults.bridge.log_format);
        assert_eq!(written.bridge.retention, defaults.bridge.retention);
        let (w, d) = (&written.pipeline, &defaults.pipeline);
        assert_eq!(
            (w.concurrency, w.send_concurrency, w.drain_timeout, w.max_attempts, w.max_send_attempts),
            (d.concurrency, d.send_concurrency, d.drain_timeout, d.max_attempts, d.max_send_attempts)
        );
        assert_eq!(written.retry, defaults.retry);
        assert!(written.channels.is_empty(), "no channel is enabled until its section is");
    }

    /// Every commented setting is a real one with a value of the right type: the template with
    /// every `# key = value` and `# [section]` line uncommented loads (credentials from the
    /// environment, as the comments advise) and enables every channel.
    #[test]
    fn every_commented_setting_is_one_the_configuration_knows() {
        let uncommented: String = TEMPLATE
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if rest.starts_with('[')
                        || rest.split_once(" = ").is_some_and(|(key, _)| {
                            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        }) =>
                {
                    rest.to_owned()
                }
                _ => line.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(uncommented.contains("\n[whatsapp]\n") && uncommented.contains("\n[bizmsg.nhn]"), "{uncommented}");
        let config = load(
            &uncommented,
            &[
                ("OPENCLAW_TOKEN", "t"),
                ("KAPSO_API_KEY", "kapso-key"),
                ("KAPSO_PHONE_NUMBER_ID", "100000000000001"),
                ("KAKAO_SKILL_SECRET", "0123456789abcdef0123"),
                ("BIZMSG_SENDER_KEY", "0123456789abcdef0123456789abcdef01234567"),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        let mut ids: Vec<&str> = config.channels.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        assert!(ids.contains(&"whatsapp") && ids.contains(&"bizmsg"), "{ids:?}");
    }
}
