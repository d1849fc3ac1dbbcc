//! Trust boundaries for the files that decide what launchwatch reports: the config (its
//! `[allowlist]` silences detections) and the state directory (its history decides novelty and
//! baselines). Running as root, launchwatch uses them only when no other user can change them:
//! the file and every directory on the way to it are owned by root and writable by neither group
//! nor others. osquery asks as much of extension binaries, but only of the file and its own
//! directory (osquery 5.23.1, `safePermissions` in osquery/filesystem/filesystem.cpp).
//!
//! Unlike osquery, a root-owned directory with the sticky bit (`/tmp`) may be world-writable on
//! the way, because the sticky bit stops other users from renaming or removing the root-owned
//! entry beneath it, which is then checked in turn. Symlinks on the way are followed as the kernel
//! would, and each must itself be owned by root.
//!
//! Not examined: ACLs (macOS `chmod +a`, POSIX ACLs) and mount options.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// True when the checks apply: launchwatch runs as root, so a file another user can write would
/// let that user change what root reports. A non-root run only ever blinds its own user.
pub fn enforced() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Links followed before giving up, as the kernel's own limit (Linux MAXSYMLINKS is 40).
const MAX_LINKS: usize = 40;

/// Where a path leads, once every directory and symlink on the way has passed the checks.
#[derive(Debug)]
pub struct Resolved {
    /// The final component with all symlinks resolved; not itself checked.
    pub path: PathBuf,
    /// `None` when the final component (or a directory above it) does not exist yet.
    pub meta: Option<std::fs::Metadata>,
}

/// Walks `path` component by component as the kernel would, checking each directory it passes
/// through and each symlink it follows. The final component is returned unchecked: a file and a
/// directory have different rules (see [`check_owned_by_root`]).
pub fn resolve(path: &Path) -> Result<Resolved, String> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("current directory: {e}"))?
            .join(path)
    };
    let mut pending: VecDeque<OsString> = components(&absolute);
    let mut current = PathBuf::from("/");
    check_directory(
        &current,
        &std::fs::metadata(&current).map_err(|e| format!("/: {e}"))?,
    )?;
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            // `current` is fully resolved, so its parent is a directory already checked.
            current.pop();
            continue;
        }
        let next = current.join(&name);
        let meta = match std::fs::symlink_metadata(&next) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut rest = next;
                rest.extend(pending);
                return Ok(Resolved {
                    path: rest,
                    meta: None,
                });
            }
            Err(e) => return Err(format!("{}: {e}", next.display())),
        };
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(format!("{}: too many symbolic links", path.display()));
            }
            // The link's own mode means nothing; who owns it decides who may replace it.
            owner_is_root(&next, &meta, "symbolic link")?;
            let target =
                std::fs::read_link(&next).map_err(|e| format!("{}: {e}", next.display()))?;
            if target.is_absolute() {
                current = PathBuf::from("/");
            }
            for c in components(&target).into_iter().rev() {
                pending.push_front(c);
            }
            continue;
        }
        if pending.is_empty() {
            return Ok(Resolved {
                path: next,
                meta: Some(meta),
            });
        }
        if !meta.is_dir() {
            return Err(format!("{}: not a directory", next.display()));
        }
        check_directory(&next, &meta)?;
        current = next;
    }
    // The path named `/` itself (or ended in `..`).
    let meta = std::fs::metadata(&current).map_err(|e| format!("{}: {e}", current.display()))?;
    Ok(Resolved {
        path: current,
        meta: Some(meta),
    })
}

fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

fn owner_is_root(path: &Path, meta: &std::fs::Metadata, what: &str) -> Result<(), String> {
    if meta.uid() != 0 {
        return Err(format!(
            "{what} {} is owned by uid {}, not root",
            path.display(),
            meta.uid()
        ));
    }
    Ok(())
}

/// A directory on the way: root's, and writable by nobody else unless sticky.
fn check_directory(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    owner_is_root(path, meta, "directory")?;
    if meta.mode() & 0o1000 != 0 {
        return Ok(());
    }
    not_writable_by_others(path, meta, "directory")
}

fn not_writable_by_others(path: &Path, meta: &std::fs::Metadata, what: &str) -> Result<(), String> {
    let mode = meta.mode();
    let by = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (_, true) => "others",
        (true, false) => "its group",
        (false, false) => return Ok(()),
    };
    Err(format!(
        "{what} {} is writable by {by} (mode {:04o})",
        path.display(),
        mode & 0o7777
    ))
}

/// The final file or directory itself: owned by root and writable by nobody else. No sticky
/// exception here: in a sticky world-writable state directory anyone could plant the store's
/// files before launchwatch creates them.
pub fn check_owned_by_root(
    path: &Path,
    meta: &std::fs::Metadata,
    what: &str,
) -> Result<(), String> {
    owner_is_root(path, meta, what)?;
    not_writable_by_others(path, meta, what)
}

/// The outcome of checking a state directory.
#[derive(Debug, PartialEq)]
pub enum StateDir {
    /// Safe to use (or absent, and its parents safe for creating it 0700).
    Trusted,
    /// The directory or a file in it can be changed by another user; the reason.
    Tampered(String),
}

/// Checks `dir` and the store files in it (`file_prefix*`: the database, its WAL and
/// shared-memory files). `Err` when a directory above it is unsafe, so that no store beside it
/// can be trusted either, or when root's own file stands where the directory should be.
pub fn check_state_dir(dir: &Path, file_prefix: &str) -> Result<StateDir, String> {
    let resolved = resolve(dir)?;
    let Some(meta) = resolved.meta else {
        return Ok(StateDir::Trusted);
    };
    if let Err(reason) = check_owned_by_root(&resolved.path, &meta, "state directory") {
        return Ok(StateDir::Tampered(reason));
    }
    if !meta.is_dir() {
        // Root's own mistake, not tampering: left alone, and unusable.
        return Err(format!("{} is not a directory", resolved.path.display()));
    }
    let entries = std::fs::read_dir(&resolved.path)
        .map_err(|e| format!("{}: {e}", resolved.path.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", resolved.path.display()))?;
        if !entry.file_name().to_string_lossy().starts_with(file_prefix) {
            continue;
        }
        let path = entry.path();
        let meta =
            std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_file() {
            return Ok(StateDir::Tampered(format!(
                "store file {} is not a regular file",
                path.display()
            )));
        }
        if let Err(reason) = check_owned_by_root(&path, &meta, "store file") {
            return Ok(StateDir::Tampered(reason));
        }
    }
    Ok(StateDir::Trusted)
}

/// Before a root process opens its store: a tampered state directory is renamed aside (kept for
/// whoever investigates) so that a fresh one is created in its place. Returns the event to
/// report, if any; `Err` when no store there can be trusted (the caller keeps history in memory).
pub fn prepare_state_dir(
    dir: &Path,
    file_prefix: &str,
    now: u64,
) -> Result<Option<String>, String> {
    let reason = match check_state_dir(dir, file_prefix)? {
        StateDir::Trusted => return Ok(None),
        StateDir::Tampered(reason) => reason,
    };
    let name = dir
        .file_name()
        .ok_or_else(|| format!("state directory {} refused: {reason}", dir.display()))?;
    let mut aside_name = name.to_os_string();
    aside_name.push(format!(".rejected-{now}"));
    let aside = dir.with_file_name(aside_name);
    std::fs::rename(dir, &aside).map_err(|e| {
        format!(
            "state directory {} refused ({reason}) and cannot be moved aside: {e}",
            dir.display()
        )
    })?;
    Ok(Some(format!(
        "state directory {} refused ({reason}); moved to {}, history starts afresh",
        dir.display(),
        aside.display()
    )))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The checks only apply to root, and these tests chown files to another user. CI runs as
    /// root, so there a missing root is a failure, not a skip.
    pub(crate) fn as_root() -> bool {
        if enforced() {
            return true;
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "this test needs root, and CI=true: refusing to skip"
        );
        println!("skipped: needs root");
        false
    }

    /// A user id that is not root (nobody on Linux and macOS alike).
    pub(crate) const OTHER_UID: u32 = 65534;

    pub(crate) fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    pub(crate) fn chown(path: &Path, uid: u32) {
        std::os::unix::fs::lchown(path, Some(uid), None).unwrap();
    }

    fn file_verdict(path: &Path) -> Result<(), String> {
        let r = resolve(path)?;
        check_owned_by_root(&r.path, r.meta.as_ref().unwrap(), "file")
    }

    #[test]
    fn every_directory_on_the_way_is_checked() {
        if !as_root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let deep = t.path().join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        let file = deep.join("f");
        std::fs::write(&file, "x").unwrap();
        chmod(&file, 0o644);
        for d in [t.path().join("a"), deep.clone()] {
            chmod(&d, 0o755);
        }
        // tempdir's parent is /tmp: world-writable but sticky, so allowed.
        assert_eq!(file_verdict(&file), Ok(()));

        chmod(&t.path().join("a"), 0o775);
        let e = file_verdict(&file).unwrap_err();
        assert!(e.contains("/a is writable by its group (mode 0775)"), "{e}");
        chmod(&t.path().join("a"), 0o777);
        assert!(file_verdict(&file)
            .unwrap_err()
            .contains("writable by others"));
        // Sticky only helps root's own directories.
        chmod(&t.path().join("a"), 0o1777);
        assert_eq!(file_verdict(&file), Ok(()));
        chown(&t.path().join("a"), OTHER_UID);
        let e = file_verdict(&file).unwrap_err();
        assert!(e.contains("/a is owned by uid 65534, not root"), "{e}");
        chown(&t.path().join("a"), 0);
        chmod(&t.path().join("a"), 0o755);

        chmod(&file, 0o664);
        assert!(file_verdict(&file).unwrap_err().contains("file "));
        chmod(&file, 0o644);
        chown(&file, OTHER_UID);
        assert!(file_verdict(&file)
            .unwrap_err()
            .contains("owned by uid 65534"));
    }

    #[test]
    fn symlinks_are_followed_and_must_be_roots() {
        if !as_root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let safe = t.path().join("safe");
        let open = t.path().join("open");
        std::fs::create_dir(&safe).unwrap();
        std::fs::create_dir(&open).unwrap();
        chmod(&safe, 0o755);
        chmod(&open, 0o777);
        std::fs::write(open.join("f"), "x").unwrap();
        chmod(&open.join("f"), 0o644);
        std::fs::write(safe.join("f"), "x").unwrap();
        chmod(&safe.join("f"), 0o644);

        // A root-owned link in a safe directory to a file in a writable one: the target's
        // directory decides.
        std::os::unix::fs::symlink("../open/f", safe.join("to_open")).unwrap();
        let e = file_verdict(&safe.join("to_open")).unwrap_err();
        assert!(e.contains("/open is writable by others"), "{e}");
        // A link another user owns can be pointed anywhere by them.
        std::os::unix::fs::symlink(safe.join("f"), safe.join("theirs")).unwrap();
        chown(&safe.join("theirs"), OTHER_UID);
        let e = file_verdict(&safe.join("theirs")).unwrap_err();
        assert!(
            e.contains("symbolic link") && e.contains("uid 65534"),
            "{e}"
        );
        std::os::unix::fs::symlink(safe.join("f"), safe.join("ours")).unwrap();
        let r = resolve(&safe.join("ours")).unwrap();
        assert_eq!(r.path, safe.join("f"));
        // `..` after a link climbs from where the link led, as the kernel does.
        std::fs::create_dir(safe.join("sub")).unwrap();
        chmod(&safe.join("sub"), 0o755);
        std::os::unix::fs::symlink(safe.join("sub"), open.join("link_to_sub")).unwrap();
        assert!(resolve(&open.join("link_to_sub/../f"))
            .unwrap_err()
            .contains("/open is writable"));
        let r = resolve(&safe.join("sub/../f")).unwrap();
        assert_eq!(r.path, safe.join("f"));
        std::os::unix::fs::symlink("loop", safe.join("loop")).unwrap();
        assert!(resolve(&safe.join("loop"))
            .unwrap_err()
            .contains("too many symbolic links"));
    }

    #[test]
    fn a_tampered_state_directory_is_moved_aside() {
        if !as_root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("state");
        // Absent: trusted, to be created.
        assert_eq!(prepare_state_dir(&dir, "store.db", 7), Ok(None));
        std::fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o700);
        std::fs::write(dir.join("store.db"), "history").unwrap();
        chmod(&dir.join("store.db"), 0o600);
        std::fs::write(dir.join("unrelated"), "x").unwrap();
        chmod(&dir.join("unrelated"), 0o666);
        assert_eq!(check_state_dir(&dir, "store.db"), Ok(StateDir::Trusted));

        // Another user's WAL file beside root's database.
        std::fs::write(dir.join("store.db-wal"), "planted").unwrap();
        chown(&dir.join("store.db-wal"), OTHER_UID);
        let event = prepare_state_dir(&dir, "store.db", 1234).unwrap().unwrap();
        assert!(
            event.contains("store file")
                && event.contains("uid 65534")
                && event.contains("state.rejected-1234"),
            "{event}"
        );
        assert!(!dir.exists());
        let aside = t.path().join("state.rejected-1234");
        assert_eq!(std::fs::read(aside.join("store.db")).unwrap(), b"history");

        std::fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o770);
        match check_state_dir(&dir, "store.db") {
            Ok(StateDir::Tampered(e)) => assert!(e.contains("writable by its group"), "{e}"),
            other => panic!("{other:?}"),
        }
        chmod(&dir, 0o1777);
        assert!(matches!(
            check_state_dir(&dir, "store.db"),
            Ok(StateDir::Tampered(_))
        ));
        chmod(&dir, 0o700);
        std::os::unix::fs::symlink("/dev/null", dir.join("store.db")).unwrap();
        match check_state_dir(&dir, "store.db") {
            Ok(StateDir::Tampered(e)) => assert!(e.contains("not a regular file"), "{e}"),
            other => panic!("{other:?}"),
        }

        // Root's own file in its place: a mistake to report, not tampering to move aside.
        let file = t.path().join("file");
        std::fs::write(&file, "x").unwrap();
        chmod(&file, 0o600);
        assert!(prepare_state_dir(&file, "store.db", 1)
            .unwrap_err()
            .contains("not a directory"));
        assert!(file.is_file());

        // Above it unsafe: no store there can be trusted, nothing is moved.
        chmod(t.path(), 0o777);
        let e = prepare_state_dir(&dir, "store.db", 1).unwrap_err();
        assert!(e.contains("writable by others"), "{e}");
        assert!(dir.exists());
        chmod(t.path(), 0o700);
    }
}
