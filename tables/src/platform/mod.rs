//! The platform seam. Everything OS-specific lives below here; the rest of the crate sees only
//! observations. Each backend reads raw kernel data and hands it to pure parsers in
//! [`parse`], which are tested on byte and text fixtures on any host.

pub mod parse;

#[cfg(target_os = "linux")]
pub mod linux;
#[cfg(target_os = "macos")]
pub mod macos;

use std::collections::BTreeMap;

use crate::observation::ProcessObs;
pub use parse::LaunchctlJob;

/// What launchd itself says is loaded: the system domain and each asked-for user's domain.
#[derive(Debug, Default)]
pub struct LaunchdLive {
    pub system: Option<BTreeMap<String, LaunchctlJob>>,
    pub per_uid: BTreeMap<u32, BTreeMap<String, LaunchctlJob>>,
}

/// Live launchd state on macOS (`launchctl list`, per domain); `None` where there is no launchd.
pub fn launchd_live(uids: &[u32]) -> Option<LaunchdLive> {
    #[cfg(target_os = "macos")]
    {
        Some(macos::launchd_live(uids))
    }
    #[cfg(not(target_os = "macos"))]
    {
        let _ = uids;
        None
    }
}

/// Every process instance visible now with its cumulative CPU seconds. Processes that vanish
/// mid-walk or cannot be read (another user's, without privileges) are skipped, not errors.
pub fn processes(now: f64) -> Result<Vec<ProcessObs>, String> {
    #[cfg(target_os = "linux")]
    {
        linux::processes(now)
    }
    #[cfg(target_os = "macos")]
    {
        macos::processes(now)
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        let _ = now;
        Err(format!(
            "process sampling is not implemented on {}",
            std::env::consts::OS
        ))
    }
}
