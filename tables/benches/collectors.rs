//! CPU of one walk of each kernel reader: the process walk and the socket sample (and on
//! Linux the raw TCP dumps each way), as this thread's CPU clock (user + system, exact where
//! getrusage counts in scheduler ticks), so the kernel's share of a walk counts and other
//! processes on the host do not.
//!
//! Run: `cargo bench -p launchwatch-tables --bench collectors`. With
//! `LAUNCHWATCH_BENCH_LOAD=2000,20000` (Linux, python3) the loader of `tests/bench/idle_host.py`
//! holds 2,000 idle processes and 20,000 loopback TCP sockets for the run, and is torn down
//! when the bench ends (it exits when its stdin closes). Prints figures; asserts nothing.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use launchwatch_tables::platform::{ProcessCollector, SocketCollector};

/// This thread's user + system CPU time.
fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime fills the zeroed struct it is given.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid clock id and pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU and wall time of `runs` calls after one warm-up call, as (median CPU, median wall).
fn measure(runs: usize, mut f: impl FnMut() -> usize) -> (Duration, Duration, usize) {
    let mut n = f();
    let (mut cpu, mut wall) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (c, t) = (thread_cpu(), Instant::now());
        n = f();
        wall.push(t.elapsed());
        cpu.push(thread_cpu() - c);
    }
    cpu.sort();
    wall.sort();
    (cpu[runs / 2], wall[runs / 2], n)
}

fn print(what: &str, (cpu, wall, n): (Duration, Duration, usize)) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {what:<44} {:7.2} ms CPU {:7.2} ms wall  ({n} rows)",
        ms(cpu),
        ms(wall)
    );
}

/// The loader, alive until dropped (closing its stdin ends it, and it tears itself down).
struct Loader(Child);

impl Loader {
    fn start(spec: &str) -> Loader {
        let (procs, sockets) = spec
            .split_once(',')
            .and_then(|(p, s)| Some((p.trim().parse::<u32>().ok()?, s.trim().parse::<u32>().ok()?)))
            .expect("LAUNCHWATCH_BENCH_LOAD=<procs>,<sockets>");
        let bench_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/bench");
        let script = format!(
            "import sys; sys.path.insert(0, {bench_dir:?}); from idle_host import LoadedHost\n\
             with LoadedHost({procs}, {sockets}) as h:\n    print(h.describe(), flush=True); sys.stdin.read()"
        );
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        println!("loader: {}", line.trim());
        Loader(child)
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

fn main() {
    let _loader = std::env::var("LAUNCHWATCH_BENCH_LOAD")
        .ok()
        .map(|spec| Loader::start(&spec));
    let runs = 15;
    println!("per-walk cost, median of {runs} (this thread's CPU clock: user + system)");
    // Scoped: on Linux the collector's kept files count against the process-wide budget the
    // walks below draw on, and are closed when it goes.
    {
        let mut procs = ProcessCollector::default();
        // As in `record` with kernel events followed: known instances are not described again.
        procs.events_followed(true);
        print(
            "process walk",
            measure(runs, || procs.sample(0.0).map(|p| p.len()).unwrap_or(0)),
        );
    }
    let mut socks = SocketCollector::default();
    print(
        "socket sample (TCP + UDP, both families)",
        measure(runs, || socks.sample().map(|s| s.len()).unwrap_or(0)),
    );
    #[cfg(target_os = "linux")]
    linux_dumps(runs);
}

#[cfg(target_os = "linux")]
fn linux_dumps(runs: usize) {
    use launchwatch_tables::platform::linux::procfs::{processes_cached, WalkCache};
    use launchwatch_tables::platform::linux::sock_diag::{
        collector, dump_request, tcp_compat_dump_request,
    };
    let (v4, v6) = (libc::AF_INET as u8, libc::AF_INET6 as u8);
    let tcp = libc::IPPROTO_TCP as u8;
    let every_state = |family| {
        // What the request asked for before: every state bit, bound-inactive included.
        let mut r = dump_request(family, tcp, 1);
        r[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
        r
    };
    let old = [every_state(v4), every_state(v6)];
    let per_family = [dump_request(v4, tcp, 1), dump_request(v6, tcp, 1)];
    let compat = [tcp_compat_dump_request(1)];
    for (what, reqs) in [
        ("TCP dump, per family, every state bit (before)", &old[..]),
        (
            "TCP dump, per family, bound-inactive left out",
            &per_family[..],
        ),
        ("TCP dump, one compat request, both families", &compat[..]),
    ] {
        print(
            what,
            measure(runs, || {
                reqs.iter()
                    .map(|r| collector::dump(r).map(|s| s.len()).unwrap_or(0))
                    .sum()
            }),
        );
    }
    print(
        "socket owner scan (/proc/*/fd), on a new inode",
        measure(runs.min(5), || collector::socket_owners().len()),
    );
    for (what, mut cache) in [
        (
            "process walk, a file kept open each, stat only if run",
            WalkCache::default(),
        ),
        (
            "process walk, stat files by path (open/read)",
            WalkCache::one_off(),
        ),
    ] {
        cache.trust_known = true;
        print(
            what,
            measure(runs, || {
                processes_cached(0.0, &mut cache)
                    .map(|p| p.len())
                    .unwrap_or(0)
            }),
        );
        let all = cache.stat_reads + cache.stat_unchanged;
        println!(
            "  stat lines read {} of {all} ({} taken unchanged: one thread, not run since)",
            cache.stat_reads, cache.stat_unchanged
        );
    }
}
