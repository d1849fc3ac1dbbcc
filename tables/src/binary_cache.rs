//! A bounded cache of what executables' bytes say, keyed by file identity so a replaced binary
//! is noticed. It sits below the tables (and the table environment that holds it); the
//! signing and crypto-import tables and the analytics share one.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::binary::{inspect, Binary, MAX_BINARY_BYTES};
use crate::launchd::under_root;

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
