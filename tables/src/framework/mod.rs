//! The host-independent table framework.
//!
//! A table declares its columns and produces rows for parsed constraints. [`TableSet`] is the
//! only door between tables and the two hosts (osquery thrift, standalone SQLite): it times
//! every call, turns a panic into an error for that call only, and counts errors for
//! `launchwatch_status`.

pub mod column;
pub mod constraints;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

pub use column::{Column, ColumnOptions, ColumnType};
pub use constraints::{integer_value, Constraint, ContextError, Op, QueryContext};

use crate::env::TableEnv;

/// One cell. Hosts turn `Null` into an omitted key (thrift) or SQL NULL (SQLite).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Double(f64),
    Text(String),
}

impl Value {
    /// The string osqueryd expects, or `None` for NULL (osquery has no NULL on the wire).
    pub fn to_wire(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Int(i) => Some(i.to_string()),
            Value::Double(d) if d.is_finite() => Some(d.to_string()),
            // strtod would accept "inf"/"nan", but SQL has no use for them: report unknown.
            Value::Double(_) => None,
            Value::Text(s) => Some(s.clone()),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Value {
        i64::try_from(v).map(Value::Int).unwrap_or(Value::Null)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Value {
        Value::Int(v.into())
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Int(v.into())
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Int(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Double(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map(Into::into).unwrap_or(Value::Null)
    }
}

/// One row, cells in the table's column order.
pub type Row = Vec<Value>;

/// A rowid derived from a row's content, the same in every scan. SQLite answers
/// `a = x OR b = y` on a virtual table with one scan per OR term merged by rowid, so a scan
/// position as rowid makes row 0 of the second scan a "duplicate" of row 0 of the first.
pub fn row_id(row: &[Value]) -> i64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for v in row {
        match v {
            Value::Null => 0u8.hash(&mut h),
            Value::Int(i) => (1u8, i).hash(&mut h),
            Value::Double(d) => (2u8, d.to_bits()).hash(&mut h),
            Value::Text(t) => (3u8, t).hash(&mut h),
        }
    }
    h.finish() as i64
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError(pub String);

impl std::fmt::Display for TableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for TableError {}

impl From<rusqlite::Error> for TableError {
    fn from(e: rusqlite::Error) -> TableError {
        TableError(format!("store: {e}"))
    }
}
impl From<crate::store::StoreError> for TableError {
    fn from(e: crate::store::StoreError) -> TableError {
        TableError(e.to_string())
    }
}

/// A table: its schema next to its rows.
pub trait Table: Send + Sync {
    fn name(&self) -> &'static str;
    /// One line for docs and `--help`.
    fn description(&self) -> &'static str;
    fn platforms(&self) -> &'static [&'static str] {
        &["darwin", "linux"]
    }
    fn columns(&self) -> &'static [Column];
    fn generate(&self, env: &TableEnv, ctx: &QueryContext) -> Result<Vec<Row>, TableError>;
    /// Whether reading these columns (SQLite's colUsed bits: bit i is column i, bit 63 every
    /// column from 63 on) needs two samples a window apart, as a rate does. Yes unless the
    /// table knows better: a one-off `query` takes one sample only when no table says yes.
    fn needs_two_readings(&self, cols_used: u64) -> bool {
        let _ = cols_used;
        true
    }
    /// Whether rows come from the store's summaries (`destination_summary`, `hourly_bytes`).
    /// Yes unless the table knows better: a one-off `query` reading only tables that say no
    /// does not build them for its fresh samples.
    fn reads_summaries(&self) -> bool {
        true
    }
}

/// Per table a statement's plan touched, the colUsed mask of the columns it reads.
pub type ColumnsRead = Vec<(&'static str, u64)>;

/// Whether colUsed `mask` includes the column called `name` among `columns`.
pub fn column_read(columns: &[Column], mask: u64, name: &str) -> bool {
    columns
        .iter()
        .position(|c| c.name == name)
        .is_some_and(|i| mask & (1u64 << i.min(63)) != 0)
}

/// The registered tables and the environment they run in. Shared by both hosts.
pub struct TableSet {
    tables: Vec<Box<dyn Table>>,
    pub env: Arc<TableEnv>,
}

impl TableSet {
    pub fn new(tables: Vec<Box<dyn Table>>, env: Arc<TableEnv>) -> TableSet {
        TableSet { tables, env }
    }

    pub fn tables(&self) -> impl Iterator<Item = &dyn Table> {
        self.tables.iter().map(|t| t.as_ref())
    }

    /// Whether a statement reading `read` needs two samples (see `Table::needs_two_readings`).
    pub fn needs_two_readings(&self, read: &ColumnsRead) -> bool {
        read.iter()
            .any(|(name, mask)| self.get(name).is_none_or(|t| t.needs_two_readings(*mask)))
    }

    /// Whether a statement reading `read` reads the store's summaries.
    pub fn reads_summaries(&self, read: &ColumnsRead) -> bool {
        read.iter()
            .any(|(name, _)| self.get(name).is_none_or(|t| t.reads_summaries()))
    }

    pub fn get(&self, name: &str) -> Option<&dyn Table> {
        self.tables
            .iter()
            .find(|t| t.name() == name)
            .map(|t| t.as_ref())
    }

    /// The one door: run a table's generate with timing, panic capture and error counting.
    /// Errors come back as the text the user will read (osqueryd's `status.message`).
    pub fn generate(&self, name: &str, ctx: &QueryContext) -> Result<Vec<Row>, String> {
        let table = self
            .get(name)
            .ok_or_else(|| format!("unknown table {name}"))?;
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| table.generate(&self.env, ctx)));
        let result = match outcome {
            Ok(Ok(rows)) => check_width(table, rows),
            Ok(Err(e)) => Err(format!("{name}: {e}")),
            Err(panic) => Err(format!("{name}: internal error: {}", panic_text(&panic))),
        };
        let elapsed = started.elapsed();
        let metrics = &self.env.metrics;
        if result.is_err() {
            metrics.table_errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut per) = metrics.per_table.lock() {
            let s = per.entry(table.name()).or_default();
            s.calls += 1;
            s.total += elapsed;
            match &result {
                Ok(rows) => s.rows += rows.len() as u64,
                Err(_) => s.errors += 1,
            }
        }
        result
    }
}

fn check_width(table: &dyn Table, rows: Vec<Row>) -> Result<Vec<Row>, String> {
    let width = table.columns().len();
    match rows.iter().position(|r| r.len() != width) {
        None => Ok(rows),
        Some(i) => Err(format!(
            "{}: internal error: row {i} has {} cells for {width} columns",
            table.name(),
            rows[i].len()
        )),
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}
