//! A fault-injection table for the protocol peer tests, registered only when
//! `LAUNCHWATCH_TEST_TABLES=1`: it lets tests prove that a slow call does not starve ping, that
//! a panic fails only its own call, and that an error reaches osqueryd as `status.message`.
//! Never registered in normal runs, so it never shows up in osqueryd or the docs.

use std::time::Duration;

use launchwatch_tables::env::TableEnv;
use launchwatch_tables::framework::column::{bigint, text};
use launchwatch_tables::framework::{
    Column, ColumnOptions, QueryContext, Row, Table, TableError, Value,
};

pub struct Fault;

const COLUMNS: &[Column] = &[
    text("mode", "ok, null, error, panic or sleep").with(ColumnOptions::INDEX),
    bigint("sleep_ms", "How long `sleep` waits").with(ColumnOptions::INDEX),
    text("constraints", "The constraints the table received, as JSON"),
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
        let sleep_ms: i64 = ctx
            .equals("sleep_ms")
            .first()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
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
        Ok(vec![vec![
            Value::from(mode.as_str()),
            if mode == "null" {
                Value::Null
            } else {
                Value::from(sleep_ms)
            },
            Value::from(serde_json::to_string(&seen).expect("strings serialise")),
        ]])
    }
}

pub fn tables_if_enabled() -> Vec<Box<dyn Table>> {
    if std::env::var("LAUNCHWATCH_TEST_TABLES").as_deref() == Ok("1") {
        vec![Box::new(Fault)]
    } else {
        vec![]
    }
}
