//! A fault-injection table for the protocol peer tests, registered only when
//! `LAUNCHWATCH_TEST_TABLES=1`: it lets tests prove that a slow call does not starve ping, that
//! a panic fails only its own call, and that an error reaches osqueryd as `status.message`.
//! Mode `typed` returns values that only osqueryd's per-type coercion makes sense of (so both
//! hosts can be compared), `large` returns `large_mib` rows of 1 MiB each.
//! Never registered in normal runs, so it never shows up in osqueryd or the docs.

use std::time::Duration;

use launchwatch_tables::env::TableEnv;
use launchwatch_tables::framework::column::{bigint, double, integer, text};
use launchwatch_tables::framework::{
    Column, ColumnOptions, QueryContext, Row, Table, TableError, Value,
};

pub struct Fault;

const COLUMNS: &[Column] = &[
    text("mode", "ok, null, error, panic or sleep").with(ColumnOptions::INDEX),
    bigint("sleep_ms", "How long `sleep` waits").with(ColumnOptions::INDEX),
    text("constraints", "The constraints the table received, as JSON"),
    integer("int32", "`typed`: 3000000000 in a 32-bit INTEGER column"),
    text("number_text", "`typed`: the integer 5 in a TEXT column"),
    double(
        "double_text",
        "`typed`: \"2.5 \" (trailing space) in a DOUBLE column",
    ),
    // HIDDEN alone: osqueryd never pushes a constraint on it down.
    bigint("octal_text", "`typed`: \"010\" in a BIGINT column").hidden(),
    bigint("large_mib", "`large`: how many rows of 1 MiB each").with(ColumnOptions::INDEX),
    text("payload", "`large`: 1 MiB of text"),
];

impl Table for Fault {
    fn name(&self) -> &'static str {
        "launchwatch_test_fault"
    }
    fn description(&self) -> &'static str {
        "Test-only fault injection."
    }
    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }
    fn generate(&self, _env: &TableEnv, ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
        let mode = ctx
            .equals("mode")
            .first()
            .map(|s| s.to_string())
            .unwrap_or_else(|| "ok".into());
        let first_integer = |column| {
            ctx.equals_integer(column)
                .and_then(|v| v.first().copied())
                .unwrap_or(0)
        };
        let sleep_ms = first_integer("sleep_ms");
        let large_mib = first_integer("large_mib");
        let seen: Vec<String> = COLUMNS
            .iter()
            .flat_map(|c| {
                ctx.constraints(c.name)
                    .iter()
                    .map(move |k| format!("{}:{}:{}", c.name, k.op.code(), k.expr))
            })
            .chain(ctx.limit().map(|l| format!("limit:{l}")))
            .chain(ctx.offset().map(|o| format!("offset:{o}")))
            .collect();
        match mode.as_str() {
            "error" => return Err(TableError("injected failure".into())),
            "panic" => panic!("injected panic"),
            "sleep" => std::thread::sleep(Duration::from_millis(sleep_ms.clamp(0, 60_000) as u64)),
            _ => {}
        }
        let mut row = vec![Value::Null; COLUMNS.len()];
        row[0] = Value::from(mode.as_str());
        if mode != "null" {
            row[1] = Value::from(sleep_ms);
        }
        row[2] = Value::from(serde_json::to_string(&seen).expect("strings serialise"));
        if mode == "typed" {
            row[3] = Value::Int(3_000_000_000);
            row[4] = Value::Int(5);
            row[5] = Value::from("2.5 ");
            row[6] = Value::from("010");
        }
        if mode == "large" {
            let mib = "x".repeat(1 << 20);
            let n = large_mib.clamp(0, 512) as usize;
            return Ok((0..n)
                .map(|i| {
                    let mut r = row.clone();
                    r[1] = Value::from(i as i64);
                    r[7] = Value::from(large_mib);
                    r[8] = Value::from(mib.as_str());
                    r
                })
                .collect());
        }
        Ok(vec![row])
    }
}

pub fn tables_if_enabled() -> Vec<Box<dyn Table>> {
    if std::env::var("LAUNCHWATCH_TEST_TABLES").as_deref() == Ok("1") {
        vec![Box::new(Fault)]
    } else {
        vec![]
    }
}
