//! The standalone host: every table as an eponymous SQLite virtual table in an in-process
//! SQLite, so `launchwatch query SQL` needs no osqueryd. It behaves as osqueryd's virtual
//! tables do (osquery `sql/virtual_table.cpp` xBestIndex/xFilter, `sql/dynamic_table_row.cpp`),
//! so a query gives the same rows in both hosts:
//!
//! * only constraints on INDEX/REQUIRED/ADDITIONAL columns are pushed down, and DEFAULT columns
//!   count as INDEX (osqueryd's `--extensions_default_index`, on by default); a HIDDEN-only
//!   column is never pushed;
//! * no `<`, `<=`, `>`, `>=` on TEXT columns;
//! * a value reaches the table as `sqlite3_value_text` gives it (`443.0` as `"443.0"`, text cut
//!   at its first NUL); NULL and empty-string values are dropped;
//! * none is omitted, so SQLite re-checks them all;
//! * every cell goes through its declared type as osqueryd coerces the strings an extension
//!   returns (an INTEGER is 32-bit, numbers in a TEXT column are text, ...).

use std::fmt::Write as _;
use std::os::raw::c_int;
use std::sync::Arc;

use launchwatch_tables::framework::{
    row_id, ColumnOptions, ColumnType, Op, QueryContext, Row, TableSet, Value,
};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::vtab::{
    eponymous_only_module, Context, Filters, IndexConstraintOp, IndexInfo, VTab, VTabConnection,
    VTabCursor,
};
use rusqlite::{ffi, Connection};

/// What each module instance needs: the table set, which table it is and where its plans
/// record the columns they read.
struct Aux {
    tables: Arc<TableSet>,
    name: &'static str,
    used: UsedColumns,
}

/// The columns every plan of a connection read, per table (SQLite's colUsed, unioned):
/// what a `query` learns from preparing its statement before it samples.
#[derive(Debug, Clone, Default)]
pub struct UsedColumns(Arc<std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>>);

impl UsedColumns {
    fn add(&self, table: &'static str, mask: u64) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(table).or_default() |= mask;
    }

    /// Each table a plan touched with the names of the columns it reads.
    pub fn snapshot(&self) -> launchwatch_tables::framework::ColumnsRead {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.iter().map(|(t, mask)| (*t, *mask)).collect()
    }
}

#[repr(C)]
struct Tab {
    /// Must be first: SQLite sees this struct as an `sqlite3_vtab`.
    base: ffi::sqlite3_vtab,
    tables: Arc<TableSet>,
    name: &'static str,
    used: UsedColumns,
}

fn op_code(op: IndexConstraintOp) -> Option<i64> {
    use IndexConstraintOp::*;
    Some(match op {
        SQLITE_INDEX_CONSTRAINT_EQ => 2,
        SQLITE_INDEX_CONSTRAINT_GT => 4,
        SQLITE_INDEX_CONSTRAINT_LE => 8,
        SQLITE_INDEX_CONSTRAINT_LT => 16,
        SQLITE_INDEX_CONSTRAINT_GE => 32,
        SQLITE_INDEX_CONSTRAINT_MATCH => 64,
        SQLITE_INDEX_CONSTRAINT_LIKE => 65,
        SQLITE_INDEX_CONSTRAINT_GLOB => 66,
        SQLITE_INDEX_CONSTRAINT_REGEXP => 67,
        SQLITE_INDEX_CONSTRAINT_NE => 68,
        SQLITE_INDEX_CONSTRAINT_ISNOT => 69,
        SQLITE_INDEX_CONSTRAINT_ISNOTNULL => 70,
        SQLITE_INDEX_CONSTRAINT_ISNULL => 71,
        SQLITE_INDEX_CONSTRAINT_IS => 72,
        SQLITE_INDEX_CONSTRAINT_LIMIT => 73,
        SQLITE_INDEX_CONSTRAINT_OFFSET => 74,
        _ => return None,
    })
}

unsafe impl<'vtab> VTab<'vtab> for Tab {
    type Aux = Aux;
    type Cursor = Cursor<'vtab>;

    fn connect(
        _db: &mut VTabConnection,
        aux: Option<&Aux>,
        _args: &[&[u8]],
    ) -> rusqlite::Result<(String, Self)> {
        let aux = aux.ok_or_else(|| rusqlite::Error::ModuleError("no table".into()))?;
        let table = aux
            .tables
            .get(aux.name)
            .ok_or_else(|| rusqlite::Error::ModuleError(format!("unknown table {}", aux.name)))?;
        let mut schema = String::from("CREATE TABLE x(");
        for (i, c) in table.columns().iter().enumerate() {
            let hidden = if c.options.contains(ColumnOptions::HIDDEN) {
                " HIDDEN"
            } else {
                ""
            };
            let _ = write!(
                schema,
                "{}\"{}\" {}{hidden}",
                if i > 0 { ", " } else { "" },
                c.name,
                c.ty.sql_name()
            );
        }
        schema.push(')');
        Ok((
            schema,
            Tab {
                base: ffi::sqlite3_vtab::default(),
                tables: aux.tables.clone(),
                name: aux.name,
                used: aux.used.clone(),
            },
        ))
    }

    fn best_index(&self, info: &mut IndexInfo) -> rusqlite::Result<()> {
        let columns = self
            .tables
            .get(self.name)
            .map(|t| t.columns())
            .unwrap_or(&[]);
        // Pushed constraints, recorded as "column:op" in idx_str in argv order.
        let mut plan = Vec::new();
        let mut cost = MAX_INDEX_COST;
        let usable: Vec<(usize, c_int, i64)> = info
            .constraints()
            .enumerate()
            .filter(|(_, c)| c.is_usable())
            .filter_map(|(i, c)| op_code(c.operator()).map(|op| (i, c.column(), op)))
            .collect();
        let mut argv = 0;
        for (i, column, op) in usable {
            // LIMIT and OFFSET come attributed to column 0 (SQLite >= 3.38), as in osqueryd.
            let column = if op == 73 || op == 74 { 0 } else { column };
            let Some(c) = usize::try_from(column).ok().and_then(|i| columns.get(i)) else {
                continue;
            };
            if c.ty == ColumnType::Text && matches!(op, 4 | 8 | 16 | 32) {
                cost += 10.0;
                continue;
            }
            if !pushable(c.options) {
                continue;
            }
            cost = 1.0;
            argv += 1;
            info.constraint_usage(i).set_argv_index(argv);
            plan.push(format!("{column}:{op}"));
        }
        let used = info.col_used();
        self.used.add(self.name, used);
        info.set_idx_str(&format!("{used:x};{}", plan.join(",")));
        info.set_estimated_cost(cost);
        Ok(())
    }

    fn open(&'vtab mut self) -> rusqlite::Result<Cursor<'vtab>> {
        Ok(Cursor {
            base: ffi::sqlite3_vtab_cursor::default(),
            tab: self,
            rows: Vec::new(),
            at: 0,
        })
    }
}

#[repr(C)]
struct Cursor<'vtab> {
    /// Must be first.
    base: ffi::sqlite3_vtab_cursor,
    tab: &'vtab Tab,
    rows: Vec<Row>,
    at: usize,
}

/// osqueryd's plan cost when nothing is pushed down (`kMaxIndexCost`).
const MAX_INDEX_COST: f64 = 1_000_000.0;

/// Whether osqueryd pushes constraints on a column with these options down to the extension.
fn pushable(options: ColumnOptions) -> bool {
    options == ColumnOptions::DEFAULT
        || options.contains(ColumnOptions::INDEX)
        || options.contains(ColumnOptions::REQUIRED)
        || options.contains(ColumnOptions::ADDITIONAL)
}

/// A constraint value as osqueryd passes it: `sqlite3_value_text`, read as a C string, with
/// NULL and empty text dropped.
fn value_text(v: ValueRef<'_>) -> Option<String> {
    let bytes: std::borrow::Cow<'_, [u8]> = match v {
        ValueRef::Null => return None,
        ValueRef::Integer(i) => i.to_string().into_bytes().into(),
        ValueRef::Real(f) => sqlite_real_text(f).into_bytes().into(),
        ValueRef::Text(t) | ValueRef::Blob(t) => t.into(),
    };
    let c_string = bytes.split(|b| *b == 0).next().unwrap_or(&[]);
    if c_string.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(c_string).into_owned())
}

/// SQLite's own text for a REAL (`"%!.15g"`, what `sqlite3_value_text` renders): `443.0`, not
/// Rust's `443`.
fn sqlite_real_text(f: f64) -> String {
    // SAFETY: a NUL-terminated format with one double argument; SQLite allocates the result,
    // which is copied and freed here.
    unsafe {
        let p = ffi::sqlite3_mprintf(c"%!.15g".as_ptr(), f);
        if p.is_null() {
            return f.to_string();
        }
        let text = std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned();
        ffi::sqlite3_free(p.cast());
        text
    }
}

/// A cell as osqueryd hands it to SQLite: the string the extension sends, parsed by the
/// column's declared type (osquery `dynamic_table_row.cpp`).
fn osquery_cell(ty: ColumnType, v: &Value) -> SqlValue {
    let Some(text) = v.to_wire() else {
        return SqlValue::Null;
    };
    match ty {
        ColumnType::Text | ColumnType::Blob => SqlValue::Text(text),
        _ if text.is_empty() => SqlValue::Null,
        // tryTo<long>(base 0), then sqlite3_result_int: truncated to 32 bits.
        ColumnType::Integer => {
            stol_base0(&text).map_or(SqlValue::Null, |i| SqlValue::Integer(i as i32 as i64))
        }
        ColumnType::BigInt | ColumnType::UnsignedBigInt => {
            stol_base0(&text).map_or(SqlValue::Null, SqlValue::Integer)
        }
        // strtod, which must consume the whole string.
        ColumnType::Double => strtod_whole(&text).map_or(SqlValue::Null, SqlValue::Real),
    }
}

/// `std::stoll(s, &pos, 0)` without the end check, as osquery's `tryTo` uses it: leading
/// whitespace, a sign, then `0x` hex, `0` octal or decimal digits, stopping at the first
/// other character; `None` when no digit was read or the value overflows.
fn stol_base0(s: &str) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if (t.starts_with("0x") || t.starts_with("0X"))
        && t[2..].starts_with(|c: char| c.is_ascii_hexdigit())
    {
        (16, &t[2..])
    } else if t.starts_with('0') {
        (8, t)
    } else {
        (10, t)
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    let magnitude = i128::from_str_radix(&digits[..end], radix).ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// `strtod` that must consume the whole string (osquery rejects trailing text for DOUBLE).
fn strtod_whole(s: &str) -> Option<f64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    // strtod also reads "inf"/"nan"; Rust's parser takes the same spellings.
    t.parse::<f64>().ok()
}

unsafe impl VTabCursor for Cursor<'_> {
    fn filter(
        &mut self,
        _idx_num: c_int,
        idx_str: Option<&str>,
        args: &Filters<'_>,
    ) -> rusqlite::Result<()> {
        let table = self
            .tab
            .tables
            .get(self.tab.name)
            .expect("table exists while its module does");
        let columns = table.columns();
        let mut ctx = QueryContext::all();
        let (used, plan) = idx_str.unwrap_or("").split_once(';').unwrap_or(("", ""));
        if let Ok(mask) = u64::from_str_radix(used, 16) {
            // Bit 63 stands for "column 63 or later" in SQLite's colUsed.
            ctx.set_cols_used(
                columns
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1u64 << (*i).min(63)) != 0)
                    .map(|(_, c)| c.name),
            );
        }
        for (argv, entry) in plan.split(',').filter(|s| !s.is_empty()).enumerate() {
            let Some((col, op)) = entry.split_once(':') else {
                continue;
            };
            let (Ok(col), Ok(op)) = (col.parse::<usize>(), op.parse::<i64>()) else {
                continue;
            };
            let op = Op::from_code(op);
            // LIMIT/OFFSET name no real column; keep them on column 0 as osqueryd does.
            let name = columns
                .get(col)
                .or(columns.first())
                .map(|c| c.name)
                .unwrap_or("");
            if let Some(text) = args
                .get::<SqlValue>(argv)
                .ok()
                .and_then(|v| value_text(ValueRef::from(&v)))
            {
                ctx.push(name, op, text);
            }
        }
        self.rows = self
            .tab
            .tables
            .generate(self.tab.name, &ctx)
            .map_err(rusqlite::Error::ModuleError)?;
        self.at = 0;
        Ok(())
    }

    fn next(&mut self) -> rusqlite::Result<()> {
        self.at += 1;
        Ok(())
    }

    fn eof(&self) -> bool {
        self.at >= self.rows.len()
    }

    fn column(&self, ctx: &mut Context, i: c_int) -> rusqlite::Result<()> {
        let ty = self
            .tab
            .tables
            .get(self.tab.name)
            .and_then(|t| t.columns().get(i as usize))
            .map(|c| c.ty);
        match (ty, self.rows.get(self.at).and_then(|r| r.get(i as usize))) {
            (Some(ty), Some(v)) => ctx.set_result(&osquery_cell(ty, v)),
            _ => ctx.set_result(&SqlValue::Null),
        }
    }

    /// Content-derived (see `row_id`): OR-term scans are merged by rowid.
    fn rowid(&self) -> rusqlite::Result<i64> {
        Ok(self.rows.get(self.at).map_or(0, |r| row_id(r)))
    }
}

/// An in-memory SQLite with every table registered.
pub fn connection(tables: &Arc<TableSet>) -> rusqlite::Result<Connection> {
    connection_recording(tables).map(|(conn, _)| conn)
}

/// The same, and where its plans record the columns each table is asked for.
pub fn connection_recording(tables: &Arc<TableSet>) -> rusqlite::Result<(Connection, UsedColumns)> {
    let conn = Connection::open_in_memory()?;
    let used = UsedColumns::default();
    for t in tables.tables() {
        conn.create_module(
            t.name(),
            eponymous_only_module::<Tab>(),
            Some(Aux {
                tables: tables.clone(),
                name: t.name(),
                used: used.clone(),
            }),
        )?;
    }
    Ok((conn, used))
}

/// A query's result: column names and rows of optional text (NULL is `None`).
pub struct ResultSet {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

pub fn run_sql(conn: &Connection, sql: &str) -> Result<ResultSet, String> {
    let mut stmt = conn.prepare(sql).map_err(|e| sql_error(&e))?;
    let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let n = columns.len();
    let mut rows = Vec::new();
    let mut cursor = stmt.query([]).map_err(|e| sql_error(&e))?;
    while let Some(row) = cursor.next().map_err(|e| sql_error(&e))? {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            out.push(cell(row.get_ref(i).map_err(|e| sql_error(&e))?));
        }
        rows.push(out);
    }
    Ok(ResultSet { columns, rows })
}

/// One value as osqueryi prints it: doubles with 15 significant digits (`0.16`, not
/// `0.16000000000000003`) and `.0` appended when that leaves no decimal point, as osquery's
/// row serialisation does (osquery `utils/conversions/castvariant.h`).
pub fn cell(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(v) => Some(v.to_string()),
        ValueRef::Real(v) => Some(real_text(v)),
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Some(String::from_utf8_lossy(b).into_owned()),
    }
}

/// C's `%.15g`, then `.0` when the result has no `.`: `2` → `2.0`, `1e+20` → `1e+20.0`.
pub fn real_text(v: f64) -> String {
    let g = if !v.is_finite() {
        return if v.is_nan() {
            "nan".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    } else if v == 0.0 {
        "0".to_string()
    } else {
        let sci = format!("{v:.14e}");
        let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
        let exp: i32 = exp.parse().expect("a decimal exponent");
        let trim = |s: &str| -> String {
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s.to_string()
            }
        };
        if !(-4..15).contains(&exp) {
            let sign = if exp < 0 { '-' } else { '+' };
            format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
        } else {
            trim(&format!("{v:.*}", (14 - exp).max(0) as usize))
        }
    };
    if g.contains('.') {
        g
    } else {
        format!("{g}.0")
    }
}

pub fn sql_error(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(_, Some(msg)) => msg.clone(),
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        other => other.to_string(),
    }
}

/// osqueryi's `--json` shape: one object per line inside the array, every value a string,
/// NULL as "".
pub fn to_json(rs: &ResultSet) -> String {
    let mut out = String::from("[\n");
    for (r, row) in rs.rows.iter().enumerate() {
        out.push_str("  {");
        for (i, (name, v)) in rs.columns.iter().zip(row).enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{}:{}",
                serde_json::to_string(name).expect("string"),
                serde_json::to_string(v.as_deref().unwrap_or("")).expect("string")
            );
        }
        out.push('}');
        if r + 1 < rs.rows.len() {
            out.push(',');
        }
        out.push('\n');
    }
    out.push_str("]\n");
    out
}

/// osqueryi's pretty table: `+---+` rules, `| a |` cells, widths by character count.
pub fn to_text(rs: &ResultSet) -> String {
    let cell = |v: &Option<String>| v.clone().unwrap_or_default().replace(['\n', '\r'], " ");
    let mut widths: Vec<usize> = rs.columns.iter().map(|c| c.chars().count()).collect();
    for row in &rs.rows {
        for (w, v) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell(v).chars().count());
        }
    }
    let rule = {
        let mut s = String::from("+");
        for w in &widths {
            s.push_str(&"-".repeat(w + 2));
            s.push('+');
        }
        s.push('\n');
        s
    };
    let line = |cells: Vec<String>| {
        let mut s = String::from("|");
        for (c, w) in cells.iter().zip(&widths) {
            let pad = w - c.chars().count();
            let _ = write!(s, " {c}{} |", " ".repeat(pad));
        }
        s.push('\n');
        s
    };
    let mut out = rule.clone();
    out.push_str(&line(rs.columns.clone()));
    out.push_str(&rule);
    for row in &rs.rows {
        out.push_str(&line(row.iter().map(cell).collect()));
    }
    if !rs.rows.is_empty() {
        out.push_str(&rule);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs() -> ResultSet {
        ResultSet {
            columns: vec!["a".into(), "bee".into()],
            rows: vec![
                vec![Some("1".into()), None],
                vec![Some("x\"y".into()), Some("çé".into())],
            ],
        }
    }

    #[test]
    fn json_is_osqueryi_shaped() {
        assert_eq!(
            to_json(&rs()),
            "[\n  {\"a\":\"1\",\"bee\":\"\"},\n  {\"a\":\"x\\\"y\",\"bee\":\"çé\"}\n]\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(&to_json(&rs())).unwrap();
        assert_eq!(parsed[1]["a"], "x\"y");
        let empty = ResultSet {
            columns: vec!["a".into()],
            rows: vec![],
        };
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&to_json(&empty)).unwrap(),
            serde_json::json!([])
        );
    }

    #[test]
    fn cells_are_coerced_by_declared_type_as_osqueryd_does() {
        use ColumnType::*;
        let t = |s: &str| Value::Text(s.into());
        for (ty, v, want) in [
            (
                Integer,
                Value::Int(3_000_000_000),
                SqlValue::Integer(-1_294_967_296),
            ),
            (
                BigInt,
                Value::Int(3_000_000_000),
                SqlValue::Integer(3_000_000_000),
            ),
            (Text, Value::Int(5), SqlValue::Text("5".into())),
            (BigInt, t("010"), SqlValue::Integer(8)),
            (BigInt, t("0x1F"), SqlValue::Integer(31)),
            (BigInt, t(" 12abc"), SqlValue::Integer(12)),
            (BigInt, Value::Double(3.7), SqlValue::Integer(3)),
            (BigInt, t("-0"), SqlValue::Integer(0)),
            (BigInt, t("abc"), SqlValue::Null),
            (BigInt, t(""), SqlValue::Null),
            (BigInt, t("9223372036854775808"), SqlValue::Null),
            (Double, t("2.5"), SqlValue::Real(2.5)),
            (Double, t("2.5 "), SqlValue::Null),
            (Double, Value::Int(7), SqlValue::Real(7.0)),
            (Text, t(""), SqlValue::Text(String::new())),
            (Text, Value::Null, SqlValue::Null),
        ] {
            assert_eq!(osquery_cell(ty, &v), want, "{ty:?} {v:?}");
        }
    }

    #[test]
    fn doubles_print_as_osqueryi_prints_them() {
        for (v, text) in [
            (0.1 + 0.06, "0.16"),
            (2.0, "2.0"),
            (-0.5, "-0.5"),
            (119.87654321012345, "119.876543210123"),
            (1e20, "1e+20.0"),
            (1.5e-7, "1.5e-07"),
            (0.0, "0.0"),
            (123456789012345.0, "123456789012345.0"),
        ] {
            assert_eq!(real_text(v), text, "{v}");
        }
    }

    #[test]
    fn constraint_values_are_sqlite_text_with_nul_and_empty_dropped() {
        assert_eq!(value_text(ValueRef::Real(443.0)).as_deref(), Some("443.0"));
        assert_eq!(value_text(ValueRef::Real(0.1)).as_deref(), Some("0.1"));
        assert_eq!(value_text(ValueRef::Integer(-3)).as_deref(), Some("-3"));
        assert_eq!(value_text(ValueRef::Text(b"a\0b")).as_deref(), Some("a"));
        assert_eq!(
            value_text(ValueRef::Text(b"/x/\xff")).as_deref(),
            Some("/x/\u{fffd}")
        );
        assert_eq!(value_text(ValueRef::Text(b"")), None);
        assert_eq!(value_text(ValueRef::Null), None);
    }

    #[test]
    fn text_table_aligns_by_characters() {
        let t = to_text(&rs());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "+-----+-----+");
        assert_eq!(lines[1], "| a   | bee |");
        assert_eq!(lines[4], "| x\"y | çé  |");
        assert!(lines.iter().all(|l| l.chars().count() == 13));
    }
}
