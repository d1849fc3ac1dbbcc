//! The sampler: takes live observations from the platform collectors and writes them to the
//! store, one transaction per tick. The extension runs it on its own thread; `query` takes two
//! ticks a short window apart so rates are real.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::env::{wall_clock, TableEnv};
use crate::observation::Observation;
use crate::platform;

/// Prune at most this often: deleting is cheap but not free.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// What one tick saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct TickReport {
    pub processes: usize,
    pub cost: Duration,
}

/// Takes one sample and stores it. A collector error is counted and reported, and the tick
/// still counts what the other collectors saw.
pub fn tick(env: &TableEnv) -> Result<TickReport, String> {
    let started = Instant::now();
    let now = wall_clock();
    let mut observations = Vec::new();
    let mut errors = Vec::new();
    match platform::processes(now) {
        Ok(procs) => observations.extend(procs.into_iter().map(Observation::Process)),
        Err(e) => errors.push(format!("processes: {e}")),
    }
    let processes = observations.len();
    if let Err(e) = env.store.write_batch(&observations, 1) {
        errors.push(e.to_string());
    }
    let cost = started.elapsed();
    env.sampler.record(cost, errors.is_empty());
    if errors.is_empty() {
        Ok(TickReport { processes, cost })
    } else {
        Err(errors.join("; "))
    }
}

/// A stop signal the sampler thread waits on between ticks, so shutdown never waits a full
/// interval.
#[derive(Default)]
pub struct StopSignal {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl StopSignal {
    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits up to `d`; true when stopped.
    pub fn wait(&self, d: Duration) -> bool {
        let guard = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = self
            .cv
            .wait_timeout_while(guard, d, |stopped| !*stopped)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }
}

/// Samples every `process_interval` until stopped. `on_error` hears each failed tick.
pub fn run(env: &TableEnv, stop: &StopSignal, on_error: &dyn Fn(&str)) {
    let interval = Duration::from_secs_f64(env.config.sampler.process_interval);
    let mut last_prune = Instant::now();
    loop {
        let started = Instant::now();
        if let Err(e) = tick(env) {
            on_error(&e);
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            if let Err(e) = env.store.prune(wall_clock()) {
                on_error(&e.to_string());
            }
        }
        if stop.wait(interval.saturating_sub(started.elapsed())) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, StoreConfig};
    use crate::store::Store;

    #[test]
    fn ticks_count_and_store_processes() {
        let env = TableEnv::new(
            Store::in_memory(StoreConfig::default()).unwrap(),
            Config::default(),
            "/".into(),
            None,
        );
        let report = tick(&env).unwrap();
        tick(&env).unwrap();
        assert!(report.processes >= 1);
        assert_eq!(env.store.samples().unwrap(), 2);
        assert!(env.store.observations_stored().unwrap() as usize >= 2 * report.processes.min(1));
        assert!(
            env.sampler
                .last_cost_us
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        );
    }

    #[test]
    fn stop_wakes_a_waiting_sampler_at_once() {
        let stop = std::sync::Arc::new(StopSignal::default());
        let s2 = stop.clone();
        let t = std::thread::spawn(move || s2.wait(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(50));
        stop.stop();
        assert!(t.join().unwrap());
        assert!(stop.is_stopped());
    }
}
