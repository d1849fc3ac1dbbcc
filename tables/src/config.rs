//! `--config FILE` (TOML). Every section and key is optional; defaults are the README's. Unknown
//! keys are an error, so a typo in a threshold never silently falls back to the default.
//!
//! Running as root, a config that another user could change is not used at all (see
//! [`crate::trust`]): its `[allowlist]` would let that user silence every detection.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub sampler: SamplerConfig,
    pub store: StoreConfig,
    pub networks: NetworksConfig,
    pub cpu: CpuConfig,
    pub analytics: AnalyticsConfig,
    pub beacons: crate::analytics::beacon::BeaconParams,
    pub signing: SigningConfig,
    pub redact: RedactConfig,
    pub allowlist: Allowlist,
    pub capture: crate::capture::CaptureConfig,
    /// Where this config came from (reported by `launchwatch_status`), not a config key.
    #[serde(skip)]
    pub origin: ConfigOrigin,
    /// What the operator should change although the file was accepted (an old key name), not
    /// a config key.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// A config key that was renamed or moved: the old dotted name keeps working, with a warning,
/// so an upgrade never drops an operator's thresholds or allowlist (a refused config runs on
/// defaults with no allowlist). Add a row whenever a key is renamed; never remove one before
/// 1.0.
#[derive(Debug, Clone, Copy)]
pub struct RenamedKey {
    /// `section.key` as older versions read it.
    pub old: &'static str,
    /// `section.key` as this version reads it.
    pub new: &'static str,
    /// The version that renamed it, for the warning.
    pub since: &'static str,
}

/// Every rename so far (none has shipped yet: 0.1.0's keys are all current).
pub const RENAMED_KEYS: &[RenamedKey] = &[];

/// Which file the config in effect came from, so that every change of what is being silenced
/// shows in `launchwatch_status`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigOrigin {
    /// The file read (or refused); `None` when there was none and defaults apply.
    pub path: Option<PathBuf>,
    /// SHA-256 of the bytes in effect; `None` when defaults apply.
    pub sha256: Option<String>,
    /// The file was refused (untrusted or invalid) and defaults apply instead.
    pub rejected: bool,
}

/// Why a config file was not used.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadError {
    /// Another user could have written it (root only); the reason names the file or directory.
    Untrusted(String),
    /// Unreadable, not a regular file, or not a valid config.
    Invalid(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Untrusted(e) => write!(f, "not trusted: {e}"),
            LoadError::Invalid(e) => f.write_str(e),
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Opens a regular file without blocking on a FIFO or device someone put in its place.
fn open_regular(path: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    if !file.metadata().map_err(|e| e.to_string())?.is_file() {
        return Err("not a regular file".into());
    }
    Ok(file)
}

/// Larger than any real config; stops a huge file from being read into memory.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// `[redact]`: credentials out of the command lines tables show (see [`crate::redact`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactConfig {
    /// Redact at all. Off ships command lines as they are, secrets included.
    pub enabled: bool,
    /// Keep the first 64 bits of each secret's SHA-256 in its marker, so the same secret or
    /// payload can be matched across hosts. A short password's hash can be guessed offline:
    /// turn this off where that matters more than matching.
    pub keep_hash: bool,
    /// Base64 or hex runs at least this long that look random are secrets.
    pub min_secret_length: usize,
    /// More flag or variable names whose value is a secret (`"pin"` covers `--pin`, `PIN=`).
    pub extra_names: Vec<String>,
}

impl Default for RedactConfig {
    fn default() -> RedactConfig {
        RedactConfig {
            enabled: true,
            keep_hash: true,
            min_secret_length: 32,
            extra_names: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    /// Check notarization for every row, not only when a query names the `notarized` column.
    /// Each check is an XPC round trip to syspolicyd that may go online (macOS only).
    pub notarization: bool,
}

/// Windows, baselines and multipliers of the analytic tables (docs/design.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsConfig {
    /// Score internal (private, link-local) destinations too; loopback never.
    pub include_internal: bool,
    /// Beacons and fallbacks look at this much flow history.
    pub window_hours: f64,
    /// A destination first seen within this many days is new (`launchwatch_destinations`).
    pub baseline_days: f64,
    /// Novelty multipliers: first seen within `new_days` ×`new_multiplier`, known longer than
    /// `old_days` ×`old_multiplier`.
    pub new_days: f64,
    pub new_multiplier: f64,
    pub old_days: f64,
    pub old_multiplier: f64,
    /// Applied when the job's launchd timer explains the period (not for ad-hoc or unsigned code).
    pub explained_multiplier: f64,
    /// A beacon is established (a fallback can be detected for it) from this raw score.
    pub established_score: f64,
    /// Silence: max(silence_periods × 95th-percentile gap, min_silence_seconds).
    pub silence_periods: f64,
    pub min_silence_seconds: f64,
    /// Fallback window after silence: max(window_periods × period, min_window_seconds).
    pub window_periods: f64,
    pub min_window_seconds: f64,
    /// Egress: history for the bytes-per-hour baseline, days.
    pub egress_baseline_days: f64,
}

impl Default for AnalyticsConfig {
    fn default() -> AnalyticsConfig {
        AnalyticsConfig {
            include_internal: false,
            window_hours: 24.0,
            baseline_days: 14.0,
            new_days: 7.0,
            new_multiplier: 1.15,
            old_days: 30.0,
            old_multiplier: 0.85,
            explained_multiplier: 0.6,
            established_score: 0.7,
            silence_periods: 3.0,
            min_silence_seconds: 300.0,
            window_periods: 2.0,
            min_window_seconds: 900.0,
            egress_baseline_days: 7.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpuConfig {
    /// Percent of one core above which a sampling interval counts towards `high_cpu_seconds`.
    pub high_pct: f64,
    /// `launchwatch_process_cpu` lists instances seen within this many seconds.
    pub recent_seconds: f64,
    /// Cores for `cpu_pct_1m_normalized`; default: this host's.
    pub cores: Option<f64>,
}

impl Default for CpuConfig {
    fn default() -> CpuConfig {
        CpuConfig {
            high_pct: 50.0,
            recent_seconds: 900.0,
            cores: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplerConfig {
    /// Seconds between process CPU samples.
    pub process_interval: f64,
    /// Seconds between socket samples.
    pub socket_interval: f64,
    /// Seconds between the two fresh samples `query` takes in live mode when its statement
    /// reads a rate (one sample otherwise).
    pub query_window: f64,
    /// An open flow whose counters moved is written at least this often (seconds): what a
    /// kill -9 can lose. Unchanged flows and idle processes are not rewritten.
    pub flow_write_age: f64,
    /// A counter jump of this many bytes writes the flow at the next socket sample whatever
    /// its age.
    pub flow_write_step: f64,
    /// Unchanged open flows and idle processes are rewritten this often (seconds), so windows
    /// and retention keep seeing them.
    pub idle_refresh: f64,
    /// Seconds between socket samples that read every socket (Linux, with the kernel events
    /// followed): the ticks between read only connections that are busy or new, and UDP.
    pub full_scan_interval: f64,
    /// A connection whose counters moved within this many seconds (or that opened within it)
    /// counts as busy: read on every socket tick, not only on full scans.
    pub busy_window: f64,
}

impl Default for SamplerConfig {
    fn default() -> SamplerConfig {
        SamplerConfig {
            process_interval: 10.0,
            socket_interval: 5.0,
            query_window: 1.0,
            flow_write_age: 5.0,
            flow_write_step: 1_048_576.0,
            idle_refresh: 300.0,
            full_scan_interval: 30.0,
            busy_window: 600.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Raw observations older than this are dropped.
    pub max_age_hours: f64,
    /// Raw observations are dropped oldest-first while the store's live pages exceed this.
    pub max_mib: f64,
    /// Summaries (first/last seen per destination, hourly bytes) are kept this long.
    pub summary_days: f64,
    /// A connection at least this many seconds old keeps its counter readings where they
    /// moved (check-ins inside one connection are timed from them); younger ones cost no rows.
    pub snapshot_min_age: f64,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            max_age_hours: 24.0,
            max_mib: 64.0,
            summary_days: 30.0,
            snapshot_min_age: 30.0,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworksConfig {
    /// Extra CIDRs counted as internal (`remote_scope = private`), beyond RFC 1918/4193.
    pub internal: Vec<String>,
}

/// What operators tune instead of editing pack SQL.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Allowlist {
    pub paths: Vec<String>,
    pub identities: Vec<String>,
    pub remotes: Vec<String>,
    pub launchd_labels: Vec<String>,
}

impl Allowlist {
    /// True when any field matches an entry: exact, or a prefix when the entry ends in `*`.
    pub fn matches(&self, path: &str, identity: &str, remote: &str, label: Option<&str>) -> bool {
        fn hit(list: &[String], value: &str) -> bool {
            list.iter().any(|e| match e.strip_suffix('*') {
                Some(prefix) => value.starts_with(prefix),
                None => e == value,
            })
        }
        hit(&self.paths, path)
            || hit(&self.identities, identity)
            || hit(&self.remotes, remote)
            || label.is_some_and(|l| hit(&self.launchd_labels, l))
    }
}

impl Allowlist {
    /// Entries over all four lists.
    pub fn entries(&self) -> usize {
        self.paths.len() + self.identities.len() + self.remotes.len() + self.launchd_labels.len()
    }
}

impl Config {
    /// Reads the config at `path`. With `require_root_owned` (launchwatch runs as root) the
    /// file and every directory on the way must be root's and writable by nobody else.
    /// `/dev/null` is an empty config: the way to say "no config" (the test command does).
    pub fn load(path: &Path, require_root_owned: bool) -> Result<Config, LoadError> {
        let shown = path.display();
        let invalid = |e: String| LoadError::Invalid(format!("{shown}: {e}"));
        let bytes = if std::fs::canonicalize(path).is_ok_and(|p| p == Path::new("/dev/null")) {
            Vec::new()
        } else {
            let target = if require_root_owned {
                let resolved = crate::trust::resolve(path).map_err(LoadError::Untrusted)?;
                if resolved.meta.is_none() {
                    return Err(invalid("no such file".into()));
                }
                resolved.path
            } else {
                path.to_path_buf()
            };
            let mut file = open_regular(&target).map_err(&invalid)?;
            let meta = file.metadata().map_err(|e| invalid(e.to_string()))?;
            if require_root_owned {
                // Checked on the open file: what is read is what was checked.
                crate::trust::check_owned_by_root(&target, &meta, "config file")
                    .map_err(LoadError::Untrusted)?;
            }
            if meta.len() > MAX_CONFIG_BYTES {
                return Err(invalid(format!("larger than {MAX_CONFIG_BYTES} bytes")));
            }
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)
                .map_err(|e| invalid(e.to_string()))?;
            bytes
        };
        let text = String::from_utf8(bytes).map_err(|_| invalid("not UTF-8 text".into()))?;
        let mut config = Config::parse(&text).map_err(&invalid)?;
        config.origin = ConfigOrigin {
            path: Some(path.to_path_buf()),
            sha256: Some(sha256_hex(text.as_bytes())),
            rejected: false,
        };
        Ok(config)
    }

    /// Defaults (no allowlist) standing in for the refused file at `path`.
    pub fn rejected(path: &Path) -> Config {
        Config {
            origin: ConfigOrigin {
                path: Some(path.to_path_buf()),
                sha256: None,
                rejected: true,
            },
            ..Config::default()
        }
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        Config::parse_with_renames(text, RENAMED_KEYS)
    }

    /// [`Config::parse`] with the given table of renamed keys: an old name is read as the new
    /// one and leaves a warning in [`Config::warnings`]; both names at once is an error, since
    /// which one the operator meant is unknowable.
    pub fn parse_with_renames(text: &str, renames: &[RenamedKey]) -> Result<Config, String> {
        // The key's dotted path goes with the reason: "sampler.process_interval: invalid type …".
        fn explain<E: serde::de::Error>(e: serde_path_to_error::Error<E>) -> String {
            let reason = crate::observation::plain_types(&e.inner().to_string());
            match e.path().to_string().as_str() {
                "." => reason,
                key => format!("{key}: {reason}"),
            }
        }
        let mut warnings = Vec::new();
        let mut config: Config = if renames.is_empty() {
            let de = toml::Deserializer::parse(text).map_err(|e| e.message().to_string())?;
            serde_path_to_error::deserialize(de).map_err(|e| {
                let reason = crate::observation::plain_types(e.inner().message());
                match e.path().to_string().as_str() {
                    "." => reason,
                    key => format!("{key}: {reason}"),
                }
            })?
        } else {
            let mut table: toml::Table = text
                .parse()
                .map_err(|e: toml::de::Error| e.message().to_string())?;
            warnings = apply_renames(&mut table, renames)?;
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(explain)?
        };
        config.warnings = warnings;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        crate::analytics::beacon::known_services(&self.beacons.known_services)?;
        let positive = [
            ("sampler.process_interval", self.sampler.process_interval),
            ("sampler.socket_interval", self.sampler.socket_interval),
            ("sampler.query_window", self.sampler.query_window),
            ("sampler.flow_write_age", self.sampler.flow_write_age),
            ("sampler.flow_write_step", self.sampler.flow_write_step),
            ("sampler.idle_refresh", self.sampler.idle_refresh),
            (
                "sampler.full_scan_interval",
                self.sampler.full_scan_interval,
            ),
            ("sampler.busy_window", self.sampler.busy_window),
            ("store.max_age_hours", self.store.max_age_hours),
            ("store.max_mib", self.store.max_mib),
            ("store.summary_days", self.store.summary_days),
            ("store.snapshot_min_age", self.store.snapshot_min_age),
            ("cpu.high_pct", self.cpu.high_pct),
            ("cpu.recent_seconds", self.cpu.recent_seconds),
            ("cpu.cores", self.cpu.cores.unwrap_or(1.0)),
            ("analytics.window_hours", self.analytics.window_hours),
            ("analytics.baseline_days", self.analytics.baseline_days),
            (
                "analytics.min_window_seconds",
                self.analytics.min_window_seconds,
            ),
            (
                "analytics.egress_baseline_days",
                self.analytics.egress_baseline_days,
            ),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{name} must be a positive number, not {v}"));
            }
        }
        for (name, v, max) in [
            (
                "sampler.process_interval",
                self.sampler.process_interval,
                86_400.0,
            ),
            (
                "sampler.socket_interval",
                self.sampler.socket_interval,
                86_400.0,
            ),
            ("sampler.query_window", self.sampler.query_window, 60.0),
            (
                "analytics.window_hours",
                self.analytics.window_hours,
                24.0 * 30.0,
            ),
        ] {
            if v > max {
                return Err(format!("{name} must be at most {max}, not {v}"));
            }
        }
        for c in &self.networks.internal {
            c.parse::<crate::net::Cidr>()
                .map_err(|e| format!("networks.internal: {e}"))?;
        }
        self.capture.validate()?;
        Ok(())
    }

    /// The configured internal networks (validated at load).
    pub fn internal_networks(&self) -> Vec<crate::net::Cidr> {
        self.networks
            .internal
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect()
    }
}

/// Moves every old key in `table` to its new name; returns one warning per key moved.
fn apply_renames(table: &mut toml::Table, renames: &[RenamedKey]) -> Result<Vec<String>, String> {
    let split = |dotted: &'static str| dotted.split_once('.').unwrap_or(("", dotted));
    let mut warnings = Vec::new();
    for r in renames {
        let (old_section, old_key) = split(r.old);
        let (new_section, new_key) = split(r.new);
        let old_value = if old_section.is_empty() {
            table.remove(old_key)
        } else {
            table
                .get_mut(old_section)
                .and_then(|v| v.as_table_mut())
                .and_then(|t| t.remove(old_key))
        };
        let Some(value) = old_value else { continue };
        let target = if new_section.is_empty() {
            &mut *table
        } else {
            table
                .entry(new_section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| format!("{new_section}: must be a table"))?
        };
        if target.contains_key(new_key) {
            return Err(format!(
                "{} and {} are the same setting ({} was renamed in {}); keep only {}",
                r.old, r.new, r.old, r.since, r.new
            ));
        }
        target.insert(new_key.to_string(), value);
        warnings.push(format!(
            "config: {} was renamed {} in {}; the old name still works, rename it in the file",
            r.old, r.new, r.since
        ));
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENAMES: &[RenamedKey] = &[
        RenamedKey {
            old: "beacons.min_interval",
            new: "beacons.min_median_interval_seconds",
            since: "0.2.0",
        },
        RenamedKey {
            old: "analytics.allow_paths",
            new: "allowlist.paths",
            since: "0.2.0",
        },
    ];

    #[test]
    fn renamed_keys_keep_working_with_a_warning() {
        let text = "[beacons]\nmin_interval = 4\n[analytics]\nallow_paths = [\"/opt/x\"]\nwindow_hours = 12\n";
        let c = Config::parse_with_renames(text, RENAMES).unwrap();
        assert_eq!(c.beacons.min_median_interval_seconds, 4.0);
        assert_eq!(
            c.allowlist.paths,
            ["/opt/x"],
            "moved into a section the file lacks"
        );
        assert_eq!(
            c.analytics.window_hours, 12.0,
            "the rest of the section is kept"
        );
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains(
                "beacons.min_interval was renamed beacons.min_median_interval_seconds in 0.2.0"
            ),
            "{:?}",
            c.warnings
        );
        // Without the table the old name is what it always was: an unknown key.
        assert!(Config::parse(text).unwrap_err().contains("unknown field"));
        // The new name gives no warning; both names at once is an error naming both.
        let c = Config::parse_with_renames("[beacons]\nmin_median_interval_seconds = 4\n", RENAMES)
            .unwrap();
        assert!(c.warnings.is_empty());
        let e = Config::parse_with_renames(
            "[beacons]\nmin_interval = 4\nmin_median_interval_seconds = 5\n",
            RENAMES,
        )
        .unwrap_err();
        assert!(
            e.contains("keep only beacons.min_median_interval_seconds"),
            "{e}"
        );
        // Errors still name the key, under its new name.
        let e = Config::parse_with_renames("[beacons]\nmin_interval = \"fast\"\n", RENAMES)
            .unwrap_err();
        assert!(
            e.starts_with("beacons.min_median_interval_seconds: "),
            "{e}"
        );
    }

    #[test]
    fn empty_config_is_spec_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(
            (c.store.max_age_hours, c.store.max_mib, c.store.summary_days),
            (24.0, 64.0, 30.0)
        );
        assert_eq!(
            (c.sampler.process_interval, c.sampler.socket_interval),
            (10.0, 5.0)
        );
    }

    #[test]
    fn partial_sections_override_only_their_keys() {
        let c = Config::parse(
            "[sampler]\nsocket_interval = 1.5\n[allowlist]\npaths = [\"/usr/bin/x\"]\n",
        )
        .unwrap();
        assert_eq!(
            (c.sampler.socket_interval, c.sampler.process_interval),
            (1.5, 10.0)
        );
        assert_eq!(c.allowlist.paths, ["/usr/bin/x"]);
    }

    #[test]
    fn allowlist_matches_exact_and_prefix() {
        let c = Config::parse("[allowlist]\npaths = [\"/Applications/Zoom.app/*\"]\nremotes = [\"zoom.us\"]\nlaunchd_labels = [\"com.corp.agent\"]\n").unwrap();
        let a = &c.allowlist;
        assert!(a.matches("/Applications/Zoom.app/Contents/MacOS/zoom", "x", "y", None));
        assert!(a.matches("/bin/x", "x", "zoom.us", None));
        assert!(!a.matches("/bin/x", "x", "notzoom.us", None));
        assert!(a.matches("/bin/x", "x", "y", Some("com.corp.agent")));
        assert!(!a.matches("/bin/x", "x", "y", Some("com.corp.agent2")));
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        assert!(Config::parse("[sampler]\nsocket_intervall = 1\n")
            .unwrap_err()
            .contains("unknown field"));
        assert!(Config::parse("[store]\nmax_mib = 0\n")
            .unwrap_err()
            .contains("store.max_mib must be a positive"));
        assert!(Config::parse("[store]\nmax_mib = \"big\"\n").is_err());
        assert!(Config::parse("[networks]\ninternal = [\"10.0.0.0/40\"]\n")
            .unwrap_err()
            .contains("networks.internal"));
    }

    #[test]
    fn dev_null_is_no_config_and_a_fifo_is_refused() {
        let c = Config::load(Path::new("/dev/null"), true).unwrap();
        assert_eq!(c.allowlist.entries(), 0);
        assert_eq!(c.origin.path.as_deref(), Some(Path::new("/dev/null")));
        assert!(!c.origin.rejected);
        let t = tempfile::tempdir().unwrap();
        let fifo = t.path().join("fifo");
        let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        // Returns at once (no writer would ever come) with a clear error.
        for root_owned in [false, true] {
            match Config::load(&fifo, root_owned) {
                Err(LoadError::Invalid(e)) => assert!(e.contains("not a regular file"), "{e}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_root_process_uses_only_a_config_nobody_else_can_write() {
        use crate::trust::tests::{as_root, chmod, chown, OTHER_UID};
        if !as_root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("launchwatch.toml");
        let text = "[allowlist]\npaths = [\"/Users/Shared/*\"]\nremotes = [\"a\", \"b\"]\n";
        std::fs::write(&path, text).unwrap();
        chmod(&path, 0o644);
        let c = Config::load(&path, true).unwrap();
        assert_eq!(c.allowlist.entries(), 3);
        assert_eq!(
            c.origin.sha256.as_deref(),
            Some(sha256_hex(text.as_bytes()).as_str())
        );
        for (mode, uid, why) in [
            (0o666, 0, "writable by others"),
            (0o664, 0, "writable by its group"),
            (0o644, OTHER_UID, "owned by uid 65534"),
        ] {
            chmod(&path, mode);
            chown(&path, uid);
            match Config::load(&path, true) {
                Err(LoadError::Untrusted(e)) => assert!(e.contains(why), "{e}"),
                other => panic!("{mode:o} {uid}: {other:?}"),
            }
            // A non-root process reads its user's file as before.
            assert_eq!(Config::load(&path, false).unwrap().allowlist.entries(), 3);
        }
    }
}
