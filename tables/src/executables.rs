//! Which executables the signing and crypto-import tables describe, and a bounded cache of
//! what their bytes say, keyed by file identity so a replaced binary is noticed.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::binary::{inspect, Binary, MAX_BINARY_BYTES};
use crate::env::TableEnv;
use crate::framework::QueryContext;
use crate::launchd::{job::resolve_program, parsed_jobs, under_root};

/// (device, inode, size, mtime ns, ctime ns): a replaced or rewritten file changes at least one.
type FileId = (u64, u64, u64, i64, i64);

const CACHE_ENTRIES: usize = 2048;

#[derive(Default)]
pub struct BinaryCache {
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    map: HashMap<String, (FileId, Arc<Result<Binary, String>>)>,
    order: VecDeque<String>,
}

fn file_id(m: &std::fs::Metadata) -> FileId {
    (
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        m.ctime() * 1_000_000_000 + m.ctime_nsec(),
    )
}

impl BinaryCache {
    /// Static facts for `host_path` under `root`; an `Err` is the short reason for the row.
    pub fn get(&self, root: &Path, host_path: &str) -> Arc<Result<Binary, String>> {
        let path = match inside_root(root, host_path) {
            Ok(p) => p,
            Err(e) => return Arc::new(Err(e)),
        };
        let meta = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Arc::new(Err("not a regular file".into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Arc::new(Err("not found".into()))
            }
            Err(e) => return Arc::new(Err(format!("unreadable: {}", e.kind()))),
        };
        let id = file_id(&meta);
        if let Some((cached_id, facts)) = self.lock().map.get(host_path) {
            if *cached_id == id {
                return facts.clone();
            }
        }
        let facts = Arc::new(if meta.len() > MAX_BINARY_BYTES {
            Err(format!("larger than {MAX_BINARY_BYTES} bytes"))
        } else {
            match std::fs::read(&path) {
                Ok(bytes) => inspect(&bytes),
                Err(e) => Err(format!("unreadable: {}", e.kind())),
            }
        });
        let mut c = self.lock();
        if c.map
            .insert(host_path.to_string(), (id, facts.clone()))
            .is_none()
        {
            c.order.push_back(host_path.to_string());
        }
        while c.order.len() > CACHE_ENTRIES {
            if let Some(old) = c.order.pop_front() {
                c.map.remove(&old);
            }
        }
        facts
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `host_path` under `root`, refusing anything that resolves outside it (`..`, or a symlink
/// pointing out) so a query against a mounted image never reads the analyst's own files.
pub fn inside_root(root: &Path, host_path: &str) -> Result<std::path::PathBuf, String> {
    if !host_path.starts_with('/') || host_path.split('/').any(|c| c == "..") {
        return Err("not an absolute path inside --root".into());
    }
    let path = under_root(root, host_path);
    if root == Path::new("/") {
        return Ok(path);
    }
    match (std::fs::canonicalize(&path), std::fs::canonicalize(root)) {
        (Ok(real), Ok(real_root)) if !real.starts_with(&real_root) => {
            Err("resolves outside --root".into())
        }
        _ => Ok(path),
    }
}

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
