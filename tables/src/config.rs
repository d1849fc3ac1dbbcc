//! `--config FILE` (TOML). Every section and key is optional; defaults are spec.md's. Unknown
//! keys are an error, so a typo in a threshold never silently falls back to the default.

use std::path::Path;

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
    pub allowlist: Allowlist,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    /// Check notarization for every row, not only when a query names the `notarized` column.
    /// Each check is an XPC round trip to syspolicyd that may go online (macOS only).
    pub notarization: bool,
}

/// Windows, baselines and multipliers of the analytic tables (anchors-detection.md §7).
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
    /// Seconds between the two fresh samples `query` takes in live mode.
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
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            max_age_hours: 24.0,
            max_mib: 64.0,
            summary_days: 30.0,
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

impl Config {
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.message().to_string())?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let positive = [
            ("sampler.process_interval", self.sampler.process_interval),
            ("sampler.socket_interval", self.sampler.socket_interval),
            ("sampler.query_window", self.sampler.query_window),
            ("sampler.flow_write_age", self.sampler.flow_write_age),
            ("sampler.flow_write_step", self.sampler.flow_write_step),
            ("sampler.idle_refresh", self.sampler.idle_refresh),
            ("store.max_age_hours", self.store.max_age_hours),
            ("store.max_mib", self.store.max_mib),
            ("store.summary_days", self.store.summary_days),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
