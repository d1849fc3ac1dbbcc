//! The capture thread: libpcap packets into the engine, observations into the store once a
//! second. Off unless `[capture] enabled = true` and running as root; `launchwatch_status`
//! says which.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Engine;
use crate::env::{wall_clock, TableEnv};
use crate::sampler::StopSignal;

const FLUSH_EVERY: Duration = Duration::from_secs(1);
const TICK_EVERY: Duration = Duration::from_millis(250);
/// The socket table is re-read at most this often for attribution.
const OWNER_REFRESH: Duration = Duration::from_millis(250);

/// Starts capture when the config and privileges allow; otherwise records why not.
pub fn start(env: Arc<TableEnv>, stop: Arc<StopSignal>, log: fn(&str)) -> Option<JoinHandle<()>> {
    let figures = env.capture.clone();
    if !env.config.capture.enabled {
        figures.not_running("disabled in the config ([capture] enabled = true turns it on)");
        return None;
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        let _ = (stop, log);
        figures.not_running(&format!("not implemented on {}", std::env::consts::OS));
        None
    }
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            figures.not_running("needs root (packet capture)");
            return None;
        }
        let source = match crate::platform::capture_pcap::open(&env.config.capture) {
            Ok(s) => s,
            Err(e) => {
                figures.not_running(&format!("cannot open the capture: {e}"));
                log(&format!("capture: {e}"));
                return None;
            }
        };
        *figures.device.lock().unwrap_or_else(|p| p.into_inner()) = Some(source.device.clone());
        figures.running.store(true, Ordering::Relaxed);
        *figures.reason.lock().unwrap_or_else(|p| p.into_inner()) = None;
        log(&format!(
            "capture: running on {} ({:?})",
            source.device, source.link
        ));
        std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || run(&env, &stop, source, log))
            .ok()
    }
}

#[cfg(any(target_os = "linux", target_os = "macos"))]
fn run(
    env: &TableEnv,
    stop: &StopSignal,
    mut source: crate::platform::capture_pcap::PcapSource,
    log: fn(&str),
) {
    use crate::platform::capture_pcap::{thread_cpu_seconds, SocketOwners};
    let figures = env.capture.clone();
    let owners = super::KernelFirst {
        table: None,
        fallback: SocketOwners::new(OWNER_REFRESH),
    };
    let mut engine = Engine::new(&env.config.capture, source.link, owners, figures.clone());
    let cpu_at_start = thread_cpu_seconds();
    let (mut last_tick, mut last_flush) = (Instant::now(), Instant::now());
    let mut failure = None;
    while !stop.is_stopped() {
        if let Err(e) = source.read(TICK_EVERY, &mut |ts, frame| engine.frame(ts, frame)) {
            failure = Some(e);
            break;
        }
        if last_tick.elapsed() >= TICK_EVERY {
            last_tick = Instant::now();
            // The sampler publishes its kernel-event flow table once its collector runs.
            if engine.owners.table.is_none() {
                engine.owners.table = env
                    .sampler
                    .flow_table
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
            }
            engine.tick(wall_clock());
        }
        if last_flush.elapsed() >= FLUSH_EVERY {
            last_flush = Instant::now();
            flush(env, &mut engine, &mut source, cpu_at_start, log);
        }
    }
    // What is pending is classified with what it has, so a stop loses nothing seen.
    engine.flows.limits.pending_seconds = 0.0;
    engine.tick(wall_clock());
    engine.tick(wall_clock() + 3600.0);
    flush(env, &mut engine, &mut source, cpu_at_start, log);
    figures.running.store(false, Ordering::Relaxed);
    match failure {
        Some(e) => {
            log(&format!("capture stopped: {e}"));
            figures.not_running(&format!("stopped: {e}"));
        }
        None => figures.not_running("stopped"),
    }
}

#[cfg(any(target_os = "linux", target_os = "macos"))]
fn flush<O: super::FlowOwners>(
    env: &TableEnv,
    engine: &mut Engine<O>,
    source: &mut crate::platform::capture_pcap::PcapSource,
    cpu_at_start: f64,
    log: fn(&str),
) {
    let figures = &env.capture;
    figures
        .kernel_drops
        .store(source.drops(), Ordering::Relaxed);
    let cpu = crate::platform::capture_pcap::thread_cpu_seconds() - cpu_at_start;
    figures
        .cpu_seconds_milli
        .store((cpu * 1000.0) as u64, Ordering::Relaxed);
    let obs = engine.drain();
    if obs.is_empty() {
        return;
    }
    if let Err(e) = env.store.write_batch(&obs, 0) {
        env.sampler.set_error(&format!("capture: {e}"));
        log(&format!("capture: {e}"));
    }
}
