//! Which executables the signing and crypto-import tables describe, and a bounded cache of
//! what their bytes say, keyed by file identity so a replaced binary is noticed.

use std::collections::BTreeSet;

pub use crate::binary_cache::{inside_root, BinaryCache};
use crate::env::TableEnv;
use crate::framework::QueryContext;
use crate::launchd::{job::resolve_program, parsed_jobs, under_root};

/// The paths to describe: `WHERE path = …` values, else every executable of a recently seen
/// process, every launchd job program and every path a signing observation names.
pub fn executables(env: &TableEnv, ctx: &QueryContext) -> Vec<String> {
    let wanted = ctx.equals("path");
    if !wanted.is_empty() {
        return wanted.into_iter().map(String::from).collect();
    }
    let mut paths = BTreeSet::new();
    let since = env.now() - env.config.cpu.recent_seconds;
    let _ = env.store.read(|c| {
        let mut stmt = c.prepare("SELECT DISTINCT path FROM process_samples WHERE ts >= ?1 AND path IS NOT NULL AND path != ''")?;
        for p in stmt.query_map([since], |r| r.get::<_, String>(0))? {
            paths.insert(p?);
        }
        let mut stmt = c.prepare("SELECT path FROM signing")?;
        for p in stmt.query_map([], |r| r.get::<_, String>(0))? {
            paths.insert(p?);
        }
        Ok(())
    });
    let root = env.root.as_path();
    for (plist, job) in parsed_jobs(root) {
        let exists = |p: &str| p.starts_with('/') && under_root(root, p).exists();
        if let Some(p) = resolve_program(&job, &plist, &exists).filter(|p| p.starts_with('/')) {
            paths.insert(p);
        }
    }
    paths.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::Arc;

    #[test]
    fn a_replaced_binary_is_noticed() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/macho");
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("agent");
        let cache = BinaryCache::default();
        std::fs::copy(fixtures.join("plain_arm64"), &target).unwrap();
        let first = cache.get(dir.path(), "/agent");
        assert!(crate::binary::crypto_apis(first.as_ref().as_ref().unwrap()).is_empty());
        assert!(
            Arc::ptr_eq(&first, &cache.get(dir.path(), "/agent")),
            "unchanged file: served from the cache"
        );
        // Replace it (new inode via rename, as an installer would).
        let tmp = dir.path().join("agent.new");
        std::fs::copy(fixtures.join("crypto_arm64"), &tmp).unwrap();
        std::fs::rename(&tmp, &target).unwrap();
        let second = cache.get(dir.path(), "/agent");
        assert_eq!(
            crate::binary::crypto_apis(second.as_ref().as_ref().unwrap()),
            ["CommonCrypto:CCCrypt"]
        );
        assert_eq!(cache.len(), 1);
        assert_eq!(
            cache
                .get(dir.path(), "/gone")
                .as_ref()
                .as_ref()
                .unwrap_err(),
            "not found"
        );
        // Nothing outside the root is read: `..`, relative paths, symlinks pointing out.
        std::os::unix::fs::symlink(fixtures.join("plain_arm64"), dir.path().join("out")).unwrap();
        for p in ["/../etc/hostname", "agent", "/out"] {
            let r = cache.get(dir.path(), p);
            assert!(
                r.as_ref().as_ref().unwrap_err().contains("root"),
                "{p}: {:?}",
                r.as_ref().as_ref().err()
            );
        }
    }
}
