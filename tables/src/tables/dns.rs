//! `launchwatch_dns`: name ↔ address answers seen (replayed `dns` observations; live DNS capture
//! is not built yet). The analytic tables use it to turn addresses back into destination keys.

use crate::env::TableEnv;
use crate::framework::column::{bigint, text};
use crate::framework::{Column, QueryContext, Row, Table, TableError, Value};

pub struct Dns;

const COLUMNS: &[Column] = &[
    text("name", "Queried name (lower case)").index(),
    text("address", "Answer address").index(),
    bigint("first_seen", "First answer, Unix epoch"),
    bigint("last_seen", "Latest answer, Unix epoch"),
    bigint("ttl", "Latest TTL, seconds"),
];

impl Table for Dns {
    fn name(&self) -> &'static str {
        "launchwatch_dns"
    }
    fn description(&self) -> &'static str {
        "DNS answers per (name, address) with first and last sighting."
    }
    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }
    fn generate(&self, env: &TableEnv, ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
        let names: Vec<String> = ctx
            .equals("name")
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        let addresses = ctx.equals("address");
        Ok(env.store.read(|c| {
            let mut stmt = c.prepare(
                "SELECT name, address, first_seen, last_seen, ttl FROM dns ORDER BY name, address",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, f64>(2)?,
                    r.get::<_, f64>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (name, address, first, last, ttl) = row?;
                if (!names.is_empty() && !names.contains(&name))
                    || (!addresses.is_empty() && !addresses.contains(&address.as_str()))
                {
                    continue;
                }
                out.push(vec![
                    Value::from(name),
                    Value::from(address),
                    Value::from(first.floor() as i64),
                    Value::from(last.floor() as i64),
                    Value::from(ttl),
                ]);
            }
            Ok(out)
        })?)
    }
}
