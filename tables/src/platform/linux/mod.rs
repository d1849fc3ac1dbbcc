//! Linux collectors, one file per kernel source: `procfs` (processes), `sock_diag` (socket
//! dumps and destroy notifications, pure parsers plus the netlink I/O) and `tracepoint`
//! (`sock:inet_sock_set_state` and the sched fork/exec tracepoints through `perf_event_open`).
//! The parsers compile on every host so their fixtures are tested everywhere.

#[cfg(target_os = "linux")]
pub mod procfs;
pub mod sock_diag;
pub mod tracepoint;

#[cfg(target_os = "linux")]
pub use procfs::{process_facts, process_identity, processes};
