//! The one place launchwatch writes diagnostics: a `log` facade backend that prints one line
//! per record to stderr, where osqueryd's watcher (and a terminal) collect it.
//!
//! Levels: errors, warnings and info (what a command the user ran has done, where its output
//! went) always; `--verbose` (which osqueryd passes when it runs verbose) adds debug: calls,
//! registration, sampler hiccups. Trace is never printed: nothing is that chatty.

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLogger;

static LOGGER: StderrLogger = StderrLogger;

/// Installs the logger at the default level. Call once, first thing in `main`, so even a panic
/// during argument parsing goes through it.
pub fn init() {
    // Fails only if a logger is already installed, which is then the one in charge.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level_for(false));
}

/// `--verbose` widens the level to debug.
pub fn set_verbose(verbose: bool) {
    log::set_max_level(level_for(verbose));
}

fn level_for(verbose: bool) -> LevelFilter {
    if verbose {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    }
}

/// The line for one record, without the trailing newline. Warnings say so; errors and
/// informational lines carry only the program name, as they always have.
fn format_line(level: Level, message: &std::fmt::Arguments) -> String {
    match level {
        Level::Warn => format!("launchwatch: warning: {message}"),
        _ => format!("launchwatch: {message}"),
    }
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = format_line(record.level(), record.args());
        line.push('\n');
        // One write per line, so lines from concurrent threads do not interleave; a closed
        // stderr must not take the process down.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_widens_the_level_to_debug() {
        assert_eq!(level_for(false), LevelFilter::Info);
        assert_eq!(level_for(true), LevelFilter::Debug);
    }

    #[test]
    fn warnings_are_marked_and_errors_carry_the_program_name() {
        assert_eq!(
            format_line(Level::Warn, &format_args!("x {}", 1)),
            "launchwatch: warning: x 1"
        );
        assert_eq!(
            format_line(Level::Error, &format_args!("bad")),
            "launchwatch: bad"
        );
        assert_eq!(
            format_line(Level::Debug, &format_args!("t: 3 rows")),
            "launchwatch: t: 3 rows"
        );
    }
}
