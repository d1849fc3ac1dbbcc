//! Table reference docs generated from the table definitions: `docs/tables.md` for people and
//! `docs/schema/<table>.yml` (in the shape of Fleet's `schema/tables/*.yml`) for tools.
//! A test fails when the committed files drift from the code; `launchwatch gen-docs DIR`
//! (or the test with `LAUNCHWATCH_UPDATE_DOCS=1`) rewrites them.

use std::fmt::Write;
use std::path::Path;

use crate::framework::{ColumnOptions, Table};

pub fn tables_md(tables: &[Box<dyn Table>]) -> String {
    let mut out = String::from(
        "# launchwatch tables\n\n\
         Generated from the table definitions by `launchwatch gen-docs docs`; do not edit by hand.\n\n",
    );
    for t in tables {
        let _ = writeln!(
            out,
            "- [`{}`](#{}) — {}",
            t.name(),
            t.name(),
            t.description()
        );
    }
    for t in tables {
        let _ = write!(
            out,
            "\n## {}\n\n{}\n\nPlatforms: {}.\n\n| column | type | options | description |\n|---|---|---|---|\n",
            t.name(),
            t.description(),
            t.platforms().join(", ")
        );
        for c in t.columns() {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                c.name,
                c.ty.sql_name(),
                c.options.names().join(", "),
                c.description.replace('|', "\\|")
            );
        }
    }
    out
}

/// YAML written by hand: every string double-quoted (JSON strings are valid YAML), so no
/// description can break the file.
pub fn table_yml(t: &dyn Table) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("strings serialise");
    let mut out = format!("name: {}\nplatforms:\n", t.name());
    for p in t.platforms() {
        let _ = writeln!(out, "  - {p}");
    }
    let _ = writeln!(out, "description: {}\ncolumns:", q(t.description()));
    for c in t.columns() {
        let _ = write!(
            out,
            "  - name: {}\n    type: {}\n    required: {}\n    index: {}\n    hidden: {}\n    description: {}\n",
            c.name,
            c.ty.sql_name().to_lowercase(),
            c.options.contains(ColumnOptions::REQUIRED),
            c.options.contains(ColumnOptions::INDEX),
            c.options.contains(ColumnOptions::HIDDEN),
            q(c.description)
        );
    }
    out
}

/// Every generated file, relative to the docs directory.
pub fn generated(tables: &[Box<dyn Table>]) -> Vec<(String, String)> {
    let mut files = vec![("tables.md".to_string(), tables_md(tables))];
    for t in tables {
        files.push((format!("schema/{}.yml", t.name()), table_yml(t.as_ref())));
    }
    files
}

pub fn write_all(dir: &Path, tables: &[Box<dyn Table>]) -> std::io::Result<()> {
    for (rel, text) in generated(tables) {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_docs_match_the_code() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        let tables = crate::tables::all();
        if std::env::var_os("LAUNCHWATCH_UPDATE_DOCS").is_some() {
            write_all(&dir, &tables).unwrap();
        }
        for (rel, text) in generated(&tables) {
            let committed = std::fs::read_to_string(dir.join(&rel)).unwrap_or_default();
            assert!(
                committed == text,
                "docs/{rel} is out of date: run `cargo run -p launchwatch -- gen-docs docs` \
                 (or this test with LAUNCHWATCH_UPDATE_DOCS=1) and commit the result"
            );
        }
        // No stale schema file for a table that no longer exists.
        for entry in std::fs::read_dir(dir.join("schema")).unwrap().flatten() {
            let name = entry
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".yml")
                .to_string();
            assert!(
                tables.iter().any(|t| t.name() == name),
                "docs/schema/{name}.yml has no table"
            );
        }
    }

    #[test]
    fn every_table_is_prefixed_and_columns_are_unique() {
        for t in crate::tables::all() {
            assert!(t.name().starts_with("launchwatch_"), "{}", t.name());
            let mut names: Vec<_> = t.columns().iter().map(|c| c.name).collect();
            names.sort_unstable();
            let before = names.len();
            names.dedup();
            assert_eq!(before, names.len(), "{} has a duplicate column", t.name());
            assert!(t.columns().iter().all(|c| !c.description.is_empty()));
        }
    }
}
