//! Who started a program's process, for triage (issue 12 item 8): the parent's executable path
//! and name, from the sampled process tree. Stable across samples — a path and a name, never a
//! pid — so a differential pack query does not report a finding again when only the sample
//! changed; it changes when the program is started by something else.

use rusqlite::{params, Connection, OptionalExtension};

use crate::framework::Value;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parent {
    pub path: Option<String>,
    pub name: Option<String>,
}

impl Parent {
    /// The two column values, `parent_path` then `parent_name`.
    pub fn values(&self) -> [Value; 2] {
        [
            Value::from(self.path.clone()),
            Value::from(self.name.clone()),
        ]
    }
}

/// The parent of the process instance `pid` (started at `start_time` when known) as its latest
/// sample up to `at` names it: the instance of the parent pid alive when the child started (a
/// pid is reused). Unknown parts are `None`: a parent that was never sampled has no path.
pub fn of_instance(
    c: &Connection,
    pid: i64,
    start_time: Option<f64>,
    at: f64,
) -> rusqlite::Result<Parent> {
    let child: Option<(i64, f64)> = c
        .query_row(
            "SELECT ppid, start_time FROM process_samples
             WHERE pid = ?1 AND (?2 IS NULL OR start_time BETWEEN ?2 - 0.5 AND ?2 + 0.5)
               AND ts <= ?3 AND ppid IS NOT NULL
             ORDER BY ts DESC LIMIT 1",
            params![pid, start_time, at],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((ppid, started)) = child else {
        return Ok(Parent::default());
    };
    let parent: Option<(Option<String>, Option<String>)> = c
        .query_row(
            "SELECT path, name FROM process_samples WHERE pid = ?1 AND start_time <= ?2 + 0.5
             ORDER BY start_time DESC, ts DESC LIMIT 1",
            params![ppid, started],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (path, name) = parent.unwrap_or_default();
    let name = name.or_else(|| {
        path.as_deref()
            .and_then(|p| p.rsplit('/').next())
            .map(str::to_string)
    });
    Ok(Parent { path, name })
}

/// The parent of the program at `path` as of its latest connection that names its process
/// (a flow or first payload with a pid); unknown when none does (replays without pids).
pub fn of_program(c: &Connection, path: &str) -> rusqlite::Result<Parent> {
    let latest: Option<(i64, Option<f64>, f64)> = c
        .query_row(
            "SELECT pid, process_start, last_seen FROM flows WHERE path = ?1 AND pid IS NOT NULL
             ORDER BY last_seen DESC LIMIT 1",
            params![path],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let latest = match latest {
        Some(l) => Some(l),
        None => c
            .query_row(
                "SELECT pid, NULL, ts FROM payloads WHERE path = ?1 AND pid IS NOT NULL
                 ORDER BY ts DESC LIMIT 1",
                params![path],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?,
    };
    match latest {
        Some((pid, start, at)) => of_instance(c, pid, start, at),
        None => Ok(Parent::default()),
    }
}

/// [`of_program`] once per path, for tables with many rows per program.
#[derive(Default)]
pub struct ByProgram(std::collections::HashMap<String, Parent>);

impl ByProgram {
    pub fn get(
        &mut self,
        env: &crate::env::TableEnv,
        path: &str,
    ) -> Result<Parent, crate::store::StoreError> {
        if let Some(p) = self.0.get(path) {
            return Ok(p.clone());
        }
        let p = env.store.read(|c| of_program(c, path))?;
        self.0.insert(path.to_string(), p.clone());
        Ok(p)
    }
}
