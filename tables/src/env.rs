//! What tables run against: the store, the config, the filesystem root, "now", and the
//! running process's own figures for `launchwatch_status`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::store::Store;

pub struct TableEnv {
    pub store: Store,
    pub config: Config,
    /// Filesystem prefix for files tables read (plists, binaries); `/` on a live host.
    pub root: PathBuf,
    /// Fixed "now" (`--now`, or the newest replayed observation); `None` means the clock.
    pub fixed_now: Option<f64>,
    pub started: Instant,
    pub metrics: Metrics,
    pub sampler: SamplerFigures,
    /// First-payload capture: whether it runs, why not, and its counters.
    pub capture: std::sync::Arc<crate::capture::CaptureFigures>,
    /// Parsed executables, shared by the signing and crypto-import tables.
    pub binaries: crate::binary_cache::BinaryCache,
    /// Problems found at start-up that did not stop the extension (bad config, unwritable
    /// store): reported by `launchwatch_status` instead of a crash loop under osqueryd.
    pub startup_errors: Vec<String>,
    /// The on-disk history an in-memory store was loaded from (live `query`/`hunt`), so
    /// `launchwatch_status.store_path` names it.
    pub history_path: Option<PathBuf>,
}

/// Written by the sampler, read by `launchwatch_status`.
#[derive(Default)]
pub struct SamplerFigures {
    /// Cost of the last sample, microseconds.
    pub last_cost_us: AtomicU64,
    pub errors: AtomicU64,
    pub last_error: std::sync::Mutex<Option<String>>,
    /// Each collector's state after the last tick (`launchwatch_status.sources`).
    pub sources: std::sync::Mutex<Vec<crate::facts::SourceStatus>>,
    /// The kernel-event collector's 4-tuple → owner table while the sampler thread runs it
    /// (Linux as root): what packet capture asks to attribute a packet to a process.
    pub flow_table: std::sync::Mutex<Option<std::sync::Arc<crate::facts::FlowTable>>>,
}

impl SamplerFigures {
    pub fn record(&self, cost: std::time::Duration, ok: bool) {
        self.last_cost_us
            .store(cost.as_micros() as u64, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a failure outside a tick (the sampler thread died, say).
    pub fn set_error(&self, e: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    }
}

impl TableEnv {
    pub fn new(store: Store, config: Config, root: PathBuf, fixed_now: Option<f64>) -> TableEnv {
        TableEnv {
            store,
            config,
            root,
            fixed_now,
            started: Instant::now(),
            metrics: Metrics::default(),
            sampler: SamplerFigures::default(),
            capture: Default::default(),
            binaries: Default::default(),
            startup_errors: Vec::new(),
            history_path: None,
        }
    }

    pub fn now(&self) -> f64 {
        self.fixed_now.unwrap_or_else(wall_clock)
    }
}

pub fn wall_clock() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Per-table call figures, kept for `launchwatch_status` and `--verbose`.
#[derive(Debug, Default, Clone, Copy)]
pub struct CallStats {
    pub calls: u64,
    pub errors: u64,
    pub rows: u64,
    pub total: Duration,
}

/// Table-call counters shared by both hosts.
#[derive(Default)]
pub struct Metrics {
    pub table_errors: AtomicU64,
    pub per_table: Mutex<BTreeMap<&'static str, CallStats>>,
}
