//! Linux collectors, one file per kernel source: `procfs` (processes), `sock_diag` (socket
//! dumps and destroy notifications, pure parsers plus the netlink I/O) and `tracepoint`
//! (`sock:inet_sock_set_state` and the sched fork/exec tracepoints through `perf_event_open`),
//! `fd_iter` (socket owners from a BPF descriptor iterator, with `btf` reading the offsets it
//! needs from the kernel's type information).
//! The parsers compile on every host so their fixtures are tested everywhere.

pub mod btf;
pub mod fd_iter;
#[cfg(target_os = "linux")]
pub mod procfs;
pub mod sock_diag;
pub mod tracepoint;

#[cfg(target_os = "linux")]
pub use procfs::{process_facts, process_identity, processes};
