//! What live capture costs, sized for a two-core machine: a loopback bulk transfer beside 200
//! new connections a second spread over many 127.x addresses, for 30 s (LW_BENCH_SECONDS).
//! Prints the capture thread's CPU in all and per packet, as a share of one core, and whether
//! every new connection's first payload was classified. Figures only; nothing is asserted.
//! Linux, root (packet capture). LW_BENCH_BULK_MBPS caps the bulk transfer (default 200 MB/s;
//! 0 = as fast as loopback goes).

fn main() {
    #[cfg(target_os = "linux")]
    linux::main();
    #[cfg(not(target_os = "linux"))]
    println!("capture_cost: Linux only (loopback capture with libpcap)");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::HashSet;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use launchwatch_tables::capture::{CaptureConfig, CaptureFigures, Engine};
    use launchwatch_tables::observation::Observation;
    use launchwatch_tables::platform::capture_pcap::{open, thread_cpu_seconds, SocketOwners};

    fn env_num(name: &str, default: f64) -> f64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    pub fn main() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("capture_cost: needs root (packet capture); skipped");
            return;
        }
        let seconds = env_num("LW_BENCH_SECONDS", 30.0);
        let bulk_mbps = env_num("LW_BENCH_BULK_MBPS", 200.0);
        let rate = env_num("LW_BENCH_CONNECTIONS_PER_S", 200.0);
        let config = CaptureConfig {
            enabled: true,
            device: Some("lo".into()),
            ..CaptureConfig::default()
        };
        let mut source = open(&config).expect("open lo");
        let stop = Arc::new(AtomicBool::new(false));
        let figures = Arc::new(CaptureFigures::default());

        // The capture thread: the same engine and attribution as the extension, no store.
        let capture = {
            let (stop, figures) = (stop.clone(), figures.clone());
            let link = source.link;
            std::thread::spawn(move || {
                let mut engine = Engine::new(
                    &config,
                    link,
                    SocketOwners::new(Duration::from_millis(250)),
                    figures,
                );
                let cpu0 = thread_cpu_seconds();
                let mut payloads = Vec::new();
                let mut last_tick = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    source
                        .read(Duration::from_millis(250), &mut |ts, f| engine.frame(ts, f))
                        .expect("read");
                    if last_tick.elapsed() >= Duration::from_millis(250) {
                        last_tick = Instant::now();
                        engine.tick(launchwatch_tables::env::wall_clock());
                        payloads.extend(engine.drain());
                    }
                }
                // Drain what is still in the kernel buffer, then classify what is pending.
                let _ = source.read(Duration::from_millis(500), &mut |ts, f| engine.frame(ts, f));
                engine.flows.limits.pending_seconds = 0.0;
                engine.tick(launchwatch_tables::env::wall_clock());
                engine.tick(launchwatch_tables::env::wall_clock() + 3600.0);
                payloads.extend(engine.drain());
                let cpu = thread_cpu_seconds() - cpu0;
                (
                    payloads,
                    cpu,
                    source.drops(),
                    (engine.owners.refreshes, engine.owners.refresh_seconds),
                )
            })
        };
        std::thread::sleep(Duration::from_millis(300));

        // Bulk transfer on 127.0.0.1.
        let bulk_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let bulk_addr = bulk_listener.local_addr().unwrap();
        let bulk_rx = std::thread::spawn(move || {
            let (mut c, _) = bulk_listener.accept().unwrap();
            let mut buf = vec![0u8; 1 << 16];
            let mut total = 0u64;
            while let Ok(n) = c.read(&mut buf) {
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            total
        });
        let bulk_tx = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut c = TcpStream::connect(bulk_addr).unwrap();
                let chunk = vec![0x5au8; 1 << 16];
                let started = Instant::now();
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if bulk_mbps > 0.0 {
                        let allowed = started.elapsed().as_secs_f64() * bulk_mbps * 1e6;
                        if sent as f64 > allowed {
                            std::thread::sleep(Duration::from_millis(2));
                            continue;
                        }
                    }
                    c.write_all(&chunk).unwrap();
                    sent += chunk.len() as u64;
                }
                sent
            })
        };

        // New connections to many 127.x addresses, each with a 300-byte random first payload
        // and a 100-byte answer.
        let listener = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server_stop = stop.clone();
        let server = std::thread::spawn(move || {
            listener.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 512];
            while !server_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                        let _ = c.read(&mut buf);
                        let _ = c.write_all(&[0x42; 100]);
                    }
                    Err(_) => std::thread::sleep(Duration::from_micros(200)),
                }
            }
        });
        let started = Instant::now();
        let mut made: HashSet<(SocketAddr, SocketAddr)> = HashSet::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut i = 0u64;
        while started.elapsed().as_secs_f64() < seconds {
            let due = Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            i += 1;
            let dst: SocketAddr = format!(
                "127.{}.{}.{}:{port}",
                1 + i % 200,
                (i / 200) % 250,
                1 + i % 250
            )
            .parse()
            .unwrap();
            let Ok(mut c) = TcpStream::connect_timeout(&dst, Duration::from_secs(1)) else {
                continue;
            };
            let payload: Vec<u8> = (0..300)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = c.write_all(&payload);
            let mut answer = [0u8; 100];
            let _ = c.read_exact(&mut answer);
            made.insert((c.local_addr().unwrap(), dst));
        }
        let wall = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let sent = bulk_tx.join().unwrap();
        let received = bulk_rx.join().unwrap();
        server.join().unwrap();
        let (observations, cpu, drops, refreshes) = capture.join().unwrap();

        let mut classified = 0usize;
        let mut random = 0usize;
        let mut attributed = 0usize;
        for o in &observations {
            if let Observation::Payload(p) = o {
                let (Some(la), Some(lp)) = (&p.local_address, p.local_port) else {
                    continue;
                };
                let Ok(local) = format!("{la}:{lp}").parse::<SocketAddr>() else {
                    continue;
                };
                let Ok(remote) =
                    format!("{}:{}", p.remote_address, p.remote_port).parse::<SocketAddr>()
                else {
                    continue;
                };
                // Both ends are local: the row names this host's end, which may be either.
                let ours = made.contains(&(local, remote)) || made.contains(&(remote, local));
                if ours && p.payload_class.is_some() {
                    classified += 1;
                    random += usize::from(p.payload_class.as_deref() == Some("random"));
                    attributed += usize::from(p.pid.is_some());
                }
            }
        }
        if std::env::var_os("LW_BENCH_DEBUG").is_some() {
            for o in observations.iter().take(5) {
                println!("{}", o.to_json_line());
            }
            for m in made.iter().take(3) {
                println!("made {m:?}");
            }
        }
        let s = figures.status();
        println!("capture_cost: {wall:.1} s of loopback traffic on two cores");
        println!(
            "  bulk transfer          {:.0} MB/s sent, {:.0} MB/s received",
            sent as f64 / wall / 1e6,
            received as f64 / wall / 1e6
        );
        println!(
            "  new connections        {} ({:.0}/s over {} destination addresses)",
            made.len(),
            made.len() as f64 / wall,
            made.iter().map(|m| m.1.ip()).collect::<HashSet<_>>().len()
        );
        println!(
            "  packets captured       {} ({:.0}/s), kernel drops {drops}",
            s.packets,
            s.packets as f64 / wall
        );
        println!(
            "  capture CPU            {cpu:.2} s in all = {:.2} % of one core (target ≤ 5 %)",
            100.0 * cpu / wall
        );
        println!(
            "  capture CPU per packet {:.2} µs",
            if s.packets > 0 {
                cpu * 1e6 / s.packets as f64
            } else {
                0.0
            }
        );
        println!(
            "  first payloads         {classified} of {} new connections classified ({:.1} %), {random} called random, {attributed} attributed to a pid",
            made.len(),
            100.0 * classified as f64 / made.len().max(1) as f64
        );
        println!(
            "  flows evicted early    {}, first payloads missed {}, socket-table reads {} ({:.2} s wall-clock of the capture thread)",
            s.evicted_flows, s.missed_payloads, refreshes.0, refreshes.1
        );
    }
}
