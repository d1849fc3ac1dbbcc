//! What one full sample costs (processes + sockets, stored), with the process and socket
//! counts, next to `ss -tinp` and `ps -eo pid,time` timed in the same run on the same host.
//! Run: `cargo bench -p launchwatch-tables --bench sample_cost` (prints figures; asserts
//! nothing). On macOS the `ss` column is skipped.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use launchwatch_tables::config::{Config, StoreConfig};
use launchwatch_tables::env::TableEnv;
use launchwatch_tables::sampler::{Due, Sampler};
use launchwatch_tables::store::Store;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time_command(cmd: &str, args: &[&str], runs: usize) -> Option<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let ok = Command::new(cmd)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?
            .success();
        if !ok {
            return None;
        }
        times.push(t.elapsed());
    }
    Some(median(times))
}

fn main() {
    let runs = 30;
    // Give the socket path real work: 50 loopback connections (100 flows) held open.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let _held: Vec<_> = (0..50)
        .map(|_| {
            let c = std::net::TcpStream::connect(addr).unwrap();
            let (s, _) = listener.accept().unwrap();
            (c, s)
        })
        .collect();
    let env = TableEnv::new(
        Store::in_memory(StoreConfig::default()).unwrap(),
        Config::default(),
        "/".into(),
        None,
    );
    let mut sampler = Sampler::new();
    sampler.tick(&env, Due::ALL).unwrap(); // warm caches (inode → pid map)
    let mut full = Vec::new();
    let mut procs_only = Vec::new();
    let mut sockets_only = Vec::new();
    let mut last = Default::default();
    for _ in 0..runs {
        let r = sampler.tick(&env, Due::ALL).unwrap();
        full.push(r.cost);
        last = r;
        procs_only.push(
            sampler
                .tick(
                    &env,
                    Due {
                        processes: true,
                        sockets: false,
                    },
                )
                .unwrap()
                .cost,
        );
        sockets_only.push(
            sampler
                .tick(
                    &env,
                    Due {
                        processes: false,
                        sockets: true,
                    },
                )
                .unwrap()
                .cost,
        );
    }
    let report: launchwatch_tables::sampler::TickReport = last;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let full = median(full);
    println!(
        "launchwatch sample cost, median of {runs} runs, {} processes, {} open flows",
        report.processes, report.sockets
    );
    println!(
        "  full sample (processes + sockets, stored): {:8.2} ms",
        ms(full)
    );
    println!(
        "  processes only:                            {:8.2} ms",
        ms(median(procs_only))
    );
    println!(
        "  sockets only:                              {:8.2} ms",
        ms(median(sockets_only))
    );
    match time_command("ss", &["-tinp"], runs) {
        Some(d) => println!(
            "  ss -tinp (peer, same run):                 {:8.2} ms   ratio launchwatch/ss {:.2}",
            ms(d),
            ms(full) / ms(d)
        ),
        None => println!("  ss -tinp: not available here"),
    }
    match time_command("ps", &["-eo", "pid,time"], runs) {
        Some(d) => println!(
            "  ps -eo pid,time (peer, same run):          {:8.2} ms   ratio launchwatch/ps {:.2}",
            ms(d),
            ms(full) / ms(d)
        ),
        None => println!("  ps -eo pid,time: not available here"),
    }
}
