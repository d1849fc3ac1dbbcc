//! macOS collectors, one file per kernel source: `pcblist` (the `net.inet.*.pcblist_n` sysctl:
//! parser plus poller), `ntstat` (the `com.apple.network.statistics` kernel control), `proc`
//! (libproc), `launchctl` and `signing` (Security.framework). Parsers compile on every host so
//! their byte fixtures are tested everywhere; the I/O compiles only on macOS (type-checked here
//! by macos-check).

#[cfg(target_os = "macos")]
pub mod launchctl;
#[cfg(unix)]
pub mod ntstat;
pub mod ntstat_wire;
pub mod pcblist;
#[cfg(target_os = "macos")]
pub mod proc;
#[cfg(target_os = "macos")]
pub mod signing;

#[cfg(target_os = "macos")]
pub use launchctl::launchd_live;
#[cfg(target_os = "macos")]
pub use proc::{process_identity, processes};
