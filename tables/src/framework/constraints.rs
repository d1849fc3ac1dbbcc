//! Query constraints as osqueryd sends them (the `context` JSON of a `generate` call) and as the
//! standalone host builds them from SQLite's xBestIndex.
//!
//! Everything here is advisory: neither host sets `omit`, so SQLite re-checks every constraint
//! and a table that ignores one is still correct, only slower. Unknown operators are kept as
//! [`Op::Other`] and ignored by the helpers, never an error (osqueryd forwards SQLite's raw codes,
//! so new ones can appear with any SQLite upgrade).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

/// Operator codes: osquery `tables.h` for 1–67, SQLite's `SQLITE_INDEX_CONSTRAINT_*` for 68–74
/// (osqueryd forwards SQLite's own code for those).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Unique,
    Equals,
    GreaterThan,
    LessThanOrEquals,
    LessThan,
    GreaterThanOrEquals,
    Match,
    Like,
    Glob,
    Regexp,
    NotEquals,
    IsNot,
    IsNotNull,
    IsNull,
    Is,
    Limit,
    Offset,
    Other(i64),
}

impl Op {
    pub fn from_code(code: i64) -> Op {
        match code {
            1 => Op::Unique,
            // 3 is osquery's internal IN; it is sent as 2, but accept it anyway.
            2 | 3 => Op::Equals,
            4 => Op::GreaterThan,
            8 => Op::LessThanOrEquals,
            16 => Op::LessThan,
            32 => Op::GreaterThanOrEquals,
            64 => Op::Match,
            65 => Op::Like,
            66 => Op::Glob,
            67 => Op::Regexp,
            68 => Op::NotEquals,
            69 => Op::IsNot,
            70 => Op::IsNotNull,
            71 => Op::IsNull,
            72 => Op::Is,
            73 => Op::Limit,
            74 => Op::Offset,
            other => Op::Other(other),
        }
    }

    pub fn code(self) -> i64 {
        match self {
            Op::Unique => 1,
            Op::Equals => 2,
            Op::GreaterThan => 4,
            Op::LessThanOrEquals => 8,
            Op::LessThan => 16,
            Op::GreaterThanOrEquals => 32,
            Op::Match => 64,
            Op::Like => 65,
            Op::Glob => 66,
            Op::Regexp => 67,
            Op::NotEquals => 68,
            Op::IsNot => 69,
            Op::IsNotNull => 70,
            Op::IsNull => 71,
            Op::Is => 72,
            Op::Limit => 73,
            Op::Offset => 74,
            Op::Other(c) => c,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    pub op: Op,
    /// The bound value as text (osqueryd sends `sqlite3_value_text` of it).
    pub expr: String,
}

/// Parsed constraints of one scan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryContext {
    constraints: BTreeMap<String, Vec<Constraint>>,
    /// `None` when the caller did not say (osquery-internal `selectAllFrom`): every column is used.
    cols_used: Option<BTreeSet<String>>,
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextError(pub String);

impl std::fmt::Display for ContextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid query context: {}", self.0)
    }
}
impl std::error::Error for ContextError {}

impl QueryContext {
    /// No constraints, every column used: a full scan.
    pub fn all() -> QueryContext {
        QueryContext::default()
    }

    /// Adds one constraint. LIMIT and OFFSET are lifted out of the per-column lists: SQLite
    /// attributes them to column 0, which says nothing about that column.
    pub fn push(&mut self, column: &str, op: Op, expr: impl Into<String>) {
        let expr = expr.into();
        match op {
            Op::Limit => self.limit = expr.trim().parse().ok(),
            Op::Offset => self.offset = expr.trim().parse().ok(),
            _ => self
                .constraints
                .entry(column.to_string())
                .or_default()
                .push(Constraint { op, expr }),
        }
    }

    pub fn set_cols_used<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, cols: I) {
        self.cols_used = Some(cols.into_iter().map(Into::into).collect());
    }

    /// Parses osqueryd's context JSON. Garbage (not JSON, not an object, wrong shapes) is an
    /// error with a short reason; an absent or empty context is a full scan.
    pub fn parse_json(text: &str) -> Result<QueryContext, ContextError> {
        let mut ctx = QueryContext::default();
        if text.trim().is_empty() {
            return Ok(ctx);
        }
        let json: Json =
            serde_json::from_str(text).map_err(|e| ContextError(format!("not JSON ({e})")))?;
        let obj = json
            .as_object()
            .ok_or_else(|| ContextError("context is not a JSON object".into()))?;
        match obj.get("constraints") {
            None | Some(Json::Null) => {}
            Some(Json::Array(entries)) => {
                for (i, entry) in entries.iter().enumerate() {
                    let entry = entry.as_object().ok_or_else(|| {
                        ContextError(format!("constraints[{i}] is not an object"))
                    })?;
                    let name = entry.get("name").and_then(Json::as_str).ok_or_else(|| {
                        ContextError(format!("constraints[{i}] has no string \"name\""))
                    })?;
                    let list = match entry.get("list") {
                        None | Some(Json::Null) => continue,
                        Some(Json::Array(list)) => list,
                        Some(_) => {
                            return Err(ContextError(format!(
                                "constraints[{i}].list is not an array"
                            )))
                        }
                    };
                    for (j, c) in list.iter().enumerate() {
                        let op = c.get("op").and_then(json_i64).ok_or_else(|| {
                            ContextError(format!(
                                "constraints[{i}].list[{j}] has no integer \"op\""
                            ))
                        })?;
                        let expr = match c.get("expr") {
                            Some(Json::String(s)) => s.clone(),
                            Some(Json::Number(n)) => n.to_string(),
                            // A NULL value never reaches an extension; nothing to constrain on.
                            _ => continue,
                        };
                        ctx.push(name, Op::from_code(op), expr);
                    }
                }
            }
            Some(_) => return Err(ContextError("\"constraints\" is not an array".into())),
        }
        match obj.get("colsUsed") {
            None | Some(Json::Null) => {}
            Some(Json::Array(cols)) => {
                let names: Option<BTreeSet<String>> =
                    cols.iter().map(|c| c.as_str().map(String::from)).collect();
                ctx.cols_used = Some(
                    names.ok_or_else(|| ContextError("\"colsUsed\" holds a non-string".into()))?,
                );
            }
            Some(_) => return Err(ContextError("\"colsUsed\" is not an array".into())),
        }
        Ok(ctx)
    }

    /// Serialises in osqueryd's shape (used by tests and the peer).
    pub fn to_json(&self, columns: &[&str]) -> String {
        let mut entries = Vec::new();
        for (i, name) in columns.iter().enumerate() {
            let mut list: Vec<Json> = self
                .constraints
                .get(*name)
                .map(|l| {
                    l.iter()
                        .map(|c| serde_json::json!({"op": c.op.code(), "expr": c.expr}))
                        .collect()
                })
                .unwrap_or_default();
            if i == 0 {
                if let Some(o) = self.offset {
                    list.push(serde_json::json!({"op": 74, "expr": o.to_string()}));
                }
                if let Some(l) = self.limit {
                    list.push(serde_json::json!({"op": 73, "expr": l.to_string()}));
                }
            }
            entries.push(serde_json::json!({"name": name, "list": list, "affinity": "TEXT"}));
        }
        let mut obj = serde_json::json!({ "constraints": entries });
        if let Some(cols) = &self.cols_used {
            obj["colsUsed"] = serde_json::json!(cols);
        }
        obj.to_string()
    }

    /// Every constraint on `column`, in arrival order.
    pub fn constraints(&self, column: &str) -> &[Constraint] {
        self.constraints
            .get(column)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Values of `column = x` constraints (an `IN` arrives as several). Empty when none: the
    /// table must then produce every row.
    pub fn equals(&self, column: &str) -> Vec<&str> {
        self.constraints(column)
            .iter()
            .filter(|c| c.op == Op::Equals)
            .map(|c| c.expr.as_str())
            .collect()
    }

    /// True when the column is asked for (or the caller did not say which were).
    pub fn is_used(&self, column: &str) -> bool {
        self.cols_used.as_ref().is_none_or(|c| c.contains(column))
    }

    pub fn cols_used(&self) -> Option<&BTreeSet<String>> {
        self.cols_used.as_ref()
    }

    pub fn limit(&self) -> Option<i64> {
        self.limit
    }

    pub fn offset(&self) -> Option<i64> {
        self.offset
    }

    /// Values of `column = x` constraints on an integer column, coerced as SQLite's re-check
    /// compares them (see [`integer_value`]). `None`: no equality constraint, every row is
    /// wanted. `Some(empty)`: there were some, but no integer can equal any of them.
    pub fn equals_integer(&self, column: &str) -> Option<Vec<i64>> {
        let mut any = false;
        let mut values: Vec<i64> = self
            .constraints(column)
            .iter()
            .filter(|c| c.op == Op::Equals)
            .inspect(|_| any = true)
            .filter_map(|c| integer_value(&c.expr))
            .collect();
        values.sort_unstable();
        values.dedup();
        any.then_some(values)
    }

    pub fn has_constraints(&self) -> bool {
        self.constraints.values().any(|l| !l.is_empty())
    }
}

/// The integer a constraint value equals, as SQLite decides when it re-checks `col = value` on
/// an INTEGER/BIGINT column: the value arrives as text (`sqlite3_value_text`), and SQLite
/// compares a text operand against a numeric column by numeric affinity, so `"443.0"` (what
/// `remote_port = 443.0` or a join against a DOUBLE column sends), `" 443 "` and `"4.43e2"` all
/// equal 443. Returns `None` when no integer can equal the value: non-numeric text (hex such as
/// `"0x1F"` included, which SQLite keeps as text), a fraction, or out of range.
///
/// Leading zeros are decimal (`"010"` is 10, as SQLite compares it), unlike the base-0 parse
/// osqueryd applies to the *rows* an extension returns: a pushed-down filter must keep every
/// row SQLite's re-check would keep, and SQLite never reads octal.
pub fn integer_value(expr: &str) -> Option<i64> {
    let t = expr.trim_matches(|c: char| c.is_ascii_whitespace());
    // Only what SQLite's number syntax allows: Rust's float parser would also take "inf"/"nan".
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    if let Ok(i) = t.parse::<i64>() {
        return Some(i);
    }
    let f: f64 = t.parse().ok()?;
    // 2^63 as f64 is the first value past i64::MAX.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (f.is_finite() && f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f)).then_some(f as i64)
}

fn json_i64(v: &Json) -> Option<i64> {
    match v {
        Json::Number(n) => n.as_i64(),
        // Tolerate a stringified op; other peers than osqueryd do this.
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_osqueryd_shaped_context() {
        let text = r#"{"constraints":[
            {"name":"label","list":[{"op":2,"expr":"com.a"},{"op":2,"expr":"com.b"}],"affinity":"TEXT"},
            {"name":"pid","list":[{"op":68,"expr":"0"},{"op":4,"expr":"10"}],"affinity":"BIGINT"},
            {"name":"path","list":[],"affinity":"TEXT"}],
            "colsUsed":["label","pid"],"colsUsedBitset":18446744073709551615}"#;
        let ctx = QueryContext::parse_json(text).unwrap();
        assert_eq!(ctx.equals("label"), vec!["com.a", "com.b"]);
        assert!(ctx.equals("pid").is_empty(), "!= and > are not equality");
        assert_eq!(ctx.constraints("pid")[0].op, Op::NotEquals);
        assert_eq!(ctx.constraints("pid")[1].op, Op::GreaterThan);
        assert!(ctx.is_used("pid") && !ctx.is_used("path"));
    }

    #[test]
    fn limit_and_offset_on_column_zero_are_lifted_out() {
        let text = r#"{"constraints":[{"name":"label","list":[{"op":74,"expr":"2"},{"op":73,"expr":"1"}]}]}"#;
        let ctx = QueryContext::parse_json(text).unwrap();
        assert_eq!((ctx.limit(), ctx.offset()), (Some(1), Some(2)));
        assert!(ctx.constraints("label").is_empty());
        assert!(!ctx.has_constraints());
    }

    #[test]
    fn unknown_ops_are_kept_but_never_equality() {
        let text = r#"{"constraints":[{"name":"a","list":[{"op":150,"expr":"x"},{"op":"2","expr":"y"},{"op":72,"expr":"z"}]}]}"#;
        let ctx = QueryContext::parse_json(text).unwrap();
        assert_eq!(ctx.equals("a"), vec!["y"]);
        assert_eq!(ctx.constraints("a")[0].op, Op::Other(150));
        assert_eq!(ctx.constraints("a")[2].op, Op::Is);
    }

    #[test]
    fn absent_context_and_cols_used_mean_full_scan() {
        for text in ["", "{}", r#"{"constraints":null}"#] {
            let ctx = QueryContext::parse_json(text).unwrap();
            assert!(!ctx.has_constraints());
            assert!(ctx.is_used("anything"));
        }
        let ctx = QueryContext::parse_json(r#"{"colsUsed":[]}"#).unwrap();
        assert!(!ctx.is_used("anything"), "count(*) asks for no column");
    }

    #[test]
    fn garbage_is_a_clear_error() {
        for (text, needle) in [
            ("{not json", "not JSON"),
            ("[1,2]", "not a JSON object"),
            (r#"{"constraints":{}}"#, "not an array"),
            (r#"{"constraints":[7]}"#, "constraints[0] is not an object"),
            (r#"{"constraints":[{"list":[]}]}"#, "no string \"name\""),
            (
                r#"{"constraints":[{"name":"a","list":[{"expr":"1"}]}]}"#,
                "no integer \"op\"",
            ),
            (r#"{"colsUsed":[1]}"#, "non-string"),
        ] {
            let err = QueryContext::parse_json(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text} -> {err}");
        }
    }

    #[test]
    fn integer_values_coerce_as_sqlite_compares_them() {
        for (expr, want) in [
            ("443", Some(443)),
            ("443.0", Some(443)),
            (" 443 ", Some(443)),
            ("+443", Some(443)),
            ("4.43e2", Some(443)),
            ("-7", Some(-7)),
            ("010", Some(10)),
            ("9223372036854775807", Some(i64::MAX)),
            ("443.5", None),
            ("0x1F", None),
            ("12abc", None),
            ("", None),
            ("inf", None),
            ("nan", None),
            ("1e300", None),
            ("\u{fffd}", None),
        ] {
            assert_eq!(integer_value(expr), want, "{expr:?}");
        }
    }

    #[test]
    fn equals_integer_tells_no_constraint_from_an_unmatchable_one() {
        let mut ctx = QueryContext::all();
        assert_eq!(ctx.equals_integer("remote_port"), None);
        ctx.push("remote_port", Op::GreaterThan, "10");
        assert_eq!(
            ctx.equals_integer("remote_port"),
            None,
            "only equality counts"
        );
        ctx.push("remote_port", Op::Equals, "443.0");
        ctx.push("remote_port", Op::Equals, "443");
        ctx.push("remote_port", Op::Equals, "80");
        assert_eq!(ctx.equals_integer("remote_port"), Some(vec![80, 443]));
        let mut nothing = QueryContext::all();
        nothing.push("pid", Op::Equals, "1.5");
        assert_eq!(nothing.equals_integer("pid"), Some(vec![]));
    }

    #[test]
    fn round_trips_through_osqueryd_shape() {
        let mut ctx = QueryContext::all();
        ctx.push("label", Op::Equals, "x");
        ctx.push("label", Op::Limit, "5");
        ctx.set_cols_used(["label"]);
        let back = QueryContext::parse_json(&ctx.to_json(&["label", "path"])).unwrap();
        assert_eq!(back, ctx);
    }
}
