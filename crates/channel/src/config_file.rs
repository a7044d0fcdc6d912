//! The operator's configuration file as a channel's `setup` changes it: settings set in place
//! with `toml_edit`, so the operator's comments, order and other settings stay as they were;
//! the change shown as lines before it is written; written whole or not at all (a temporary
//! file renamed over the old one, its permissions kept; a new file is 0600, it may come to
//! hold credentials).

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The first lines of a file that `setup` creates.
const NEW_FILE_HEADER: &str = "# clawbridge configuration, written by `clawbridge setup`.\n\
# `clawbridge init --out other.toml` writes every setting with its default and its variable;\n\
# environment variables win over this file. Secrets are not kept here: setup stores them\n\
# encrypted in the bridge's store.\n";

/// A configuration file and the changes made to it so far.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    /// The text as read (`None`: the file does not exist yet).
    original: Option<String>,
    doc: toml_edit::DocumentMut,
}

/// A value for [`ConfigFile::set`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Setting<'a> {
    /// A string.
    Str(&'a str),
    /// A boolean.
    Bool(bool),
}

impl ConfigFile {
    /// Reads `path`; a missing file is an empty one that [`write`](Self::write) creates.
    ///
    /// # Errors
    /// The file cannot be read, or is not TOML (the message names it).
    pub fn read(path: &Path) -> Result<Self, String> {
        let original = match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("cannot read the config file {}: {e}", path.display())),
        };
        let doc = original
            .as_deref()
            .unwrap_or("")
            .parse::<toml_edit::DocumentMut>()
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        Ok(Self { path: path.to_owned(), original, doc })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file exists on disk.
    pub fn exists(&self) -> bool {
        self.original.is_some()
    }

    /// Table `[table]` as plain TOML, for a channel's settings loader (`None`: no such table).
    ///
    /// # Errors
    /// `table` is not a table.
    pub fn table(&self, table: &str) -> Result<Option<toml::Table>, String> {
        let Some(item) = self.doc.get(table) else { return Ok(None) };
        if !item.is_table_like() {
            return Err(format!("config file {}: [{table}] must be a table", self.path.display()));
        }
        let text = self.doc.to_string();
        let mut parsed: toml::Table =
            toml::from_str(&text).map_err(|e| format!("config file {}: {e}", self.path.display()))?;
        match parsed.remove(table) {
            Some(toml::Value::Table(t)) => Ok(Some(t)),
            _ => Ok(None),
        }
    }

    /// The string `[table] key`, if set.
    pub fn get_str(&self, table: &str, key: &str) -> Option<&str> {
        self.doc.get(table)?.get(key)?.as_str()
    }

    /// Sets `[table] key = value`, creating the table when missing; `true` when that changed
    /// anything. A value already there keeps its comments and place.
    ///
    /// # Errors
    /// `[table]` exists but is not a table.
    pub fn set(&mut self, table: &str, key: &str, value: Setting<'_>) -> Result<bool, String> {
        let current = self.doc.get(table).and_then(|t| t.get(key));
        let same = match (&value, current) {
            (Setting::Str(v), Some(item)) => item.as_str() == Some(v),
            (Setting::Bool(v), Some(item)) => item.as_bool() == Some(*v),
            (_, None) => false,
        };
        if same {
            return Ok(false);
        }
        if self.doc.get(table).is_none() {
            self.doc.insert(table, toml_edit::Item::Table(toml_edit::Table::new()));
        }
        let section = self.doc[table]
            .as_table_like_mut()
            .ok_or_else(|| format!("config file {}: [{table}] must be a table", self.path.display()))?;
        let new = match value {
            Setting::Str(v) => toml_edit::Value::from(v),
            Setting::Bool(v) => toml_edit::Value::from(v),
        };
        match section.get_mut(key).and_then(toml_edit::Item::as_value_mut) {
            // Keep the comment after the value (`mode = "polling"  # KAPSO_MODE`) and before the key.
            Some(old) => {
                let decor = old.decor().clone();
                *old = new;
                *old.decor_mut() = decor;
            }
            None => {
                section.insert(key, toml_edit::Item::Value(new));
            }
        }
        Ok(true)
    }

    /// The text as it would be written.
    pub fn text(&self) -> String {
        match &self.original {
            Some(_) => self.doc.to_string(),
            None => format!("{NEW_FILE_HEADER}\n{}", self.doc),
        }
    }

    /// Whether the text differs from the file on disk.
    pub fn changed(&self) -> bool {
        self.original.as_deref() != Some(self.text().as_str())
    }

    /// The change as lines: `  ` unchanged, `- ` removed, `+ ` added, with up to two unchanged
    /// lines around each change. Empty when nothing changes.
    pub fn diff(&self) -> Vec<String> {
        line_diff(self.original.as_deref().unwrap_or(""), &self.text())
    }

    /// Writes the file when it changed; `false` when there was nothing to write.
    ///
    /// # Errors
    /// The file cannot be written (the message names it).
    pub fn write(&mut self) -> Result<bool, String> {
        if !self.changed() {
            return Ok(false);
        }
        let text = self.text();
        let fail = |e: std::io::Error| format!("cannot write the config file {}: {e}", self.path.display());
        let mode = match std::fs::metadata(&self.path) {
            Ok(meta) => meta.permissions().mode() & 0o7777,
            Err(_) => 0o600,
        };
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut unique = [0u8; 6];
        getrandom::fill(&mut unique).map_err(|e| format!("no randomness for a temporary file name: {e}"))?;
        let suffix: String = unique.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = dir.join(format!(".{name}.{suffix}.tmp"));
        let written = (|| {
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(fail(e));
        }
        self.original = Some(text);
        Ok(true)
    }
}

/// A line diff (longest common subsequence; configuration files are small): each change with
/// up to two unchanged lines around it, `…` between distant changes.
fn line_diff(old: &str, new: &str) -> Vec<String> {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    const CONTEXT: usize = 2;
    let changed: Vec<usize> = ops.iter().enumerate().filter(|(_, (op, _))| *op != ' ').map(|(k, _)| k).collect();
    let near = |k: usize| changed.iter().any(|&c| k + CONTEXT >= c && k <= c + CONTEXT);
    let mut lines = Vec::new();
    let mut last_shown: Option<usize> = None;
    for (k, (op, line)) in ops.iter().enumerate() {
        if !near(k) {
            continue;
        }
        if last_shown.is_some_and(|last| k > last + 1) {
            lines.push("…".to_owned());
        }
        lines.push(format!("{op} {line}"));
        last_shown = Some(k);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPERATORS: &str = "# my bridge\n[gateway]\nurl = \"ws://10.0.0.5:18789\" # the gateway box\n\n\
                             [whatsapp]\n# polling until the proxy is up\nmode = \"polling\"  # KAPSO_MODE\n\
                             typing_indicator = false\n";

    #[test]
    fn settings_change_in_place_and_comments_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clawbridge.toml");
        std::fs::write(&path, OPERATORS).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let mut file = ConfigFile::read(&path).unwrap();
        assert!(file.set("whatsapp", "mode", Setting::Str("domain")).unwrap());
        assert!(file.set("whatsapp", "phone_number_id", Setting::Str("123")).unwrap());
        assert!(!file.set("whatsapp", "typing_indicator", Setting::Bool(false)).unwrap(), "already so");
        let diff = file.diff();
        assert_eq!(
            diff,
            [
                "  [whatsapp]",
                "  # polling until the proxy is up",
                "- mode = \"polling\"  # KAPSO_MODE",
                "+ mode = \"domain\"  # KAPSO_MODE",
                "  typing_indicator = false",
                "+ phone_number_id = \"123\"",
            ]
        );
        assert!(file.write().unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        for kept in ["# my bridge", "# the gateway box", "# polling until the proxy is up", "# KAPSO_MODE"] {
            assert!(text.contains(kept), "{kept} kept: {text}");
        }
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640, "permissions kept");
        let again = ConfigFile::read(&path).unwrap();
        assert_eq!(again.get_str("whatsapp", "phone_number_id"), Some("123"));
        assert_eq!(again.table("whatsapp").unwrap().unwrap()["mode"].as_str(), Some("domain"));
        let mut again = again;
        assert!(!again.set("whatsapp", "mode", Setting::Str("domain")).unwrap());
        assert!(!again.changed() && again.diff().is_empty() && !again.write().unwrap());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left");
    }

    #[test]
    fn a_missing_file_is_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.toml");
        let mut file = ConfigFile::read(&path).unwrap();
        assert!(!file.exists() && file.table("whatsapp").unwrap().is_none());
        file.set("whatsapp", "phone_number_id", Setting::Str("9")).unwrap();
        assert!(file.diff().iter().any(|l| l == "+ phone_number_id = \"9\""), "{:?}", file.diff());
        assert!(!path.exists(), "nothing written before write()");
        file.write().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# clawbridge configuration") && text.contains("[whatsapp]"), "{text}");
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(parsed["whatsapp"]["phone_number_id"].as_str(), Some("9"));
    }

    #[test]
    fn a_broken_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[whatsapp\n").unwrap();
        assert!(ConfigFile::read(&path).unwrap_err().contains("bad.toml"));
        std::fs::write(&path, "whatsapp = 1\n").unwrap();
        let mut file = ConfigFile::read(&path).unwrap();
        assert!(file.set("whatsapp", "mode", Setting::Str("domain")).unwrap_err().contains("[whatsapp]"));
    }
}
