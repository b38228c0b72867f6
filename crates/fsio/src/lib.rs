//! Every file graphscale writes goes through [`write`]: the bytes go to a temporary file created
//! exclusively (`O_EXCL`, a random name, never a symlink followed) in the target's folder, which
//! is then renamed over the target. A reader sees the old file or the new one, never half of
//! one; `kill -9` during a write leaves at most a hidden `.NAME.*.tmp` beside it; and a symlink
//! planted at a predictable temporary name cannot redirect the write.
//!
//! An existing target is kept unless the caller says [`Existing::Replace`] (the CLI's
//! `--force`): [`Existing::Keep`] refuses with [`WriteError::Exists`], checked atomically by
//! the final link (no window between the check and the rename).

use std::io::Write;
use std::path::{Path, PathBuf};

/// What to do when the target exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Existing {
    /// Refuse: [`WriteError::Exists`] (the default).
    #[default]
    Keep,
    /// Replace it (atomically).
    Replace,
}

impl Existing {
    /// `Replace` when `force`, else `Keep`.
    pub fn replace_if(force: bool) -> Self {
        if force {
            Existing::Replace
        } else {
            Existing::Keep
        }
    }
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The target exists and replacing it was not asked for.
    #[error("{path} exists: pass --force to replace it, or write elsewhere")]
    Exists {
        /// The target.
        path: PathBuf,
    },
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl WriteError {
    /// The target the write was for.
    pub fn path(&self) -> &Path {
        match self {
            WriteError::Exists { path } | WriteError::Io { path, .. } => path,
        }
    }
}

/// With [`Existing::Keep`], [`WriteError::Exists`] for the first of `paths` that exists: a
/// write of several files checks them all before it writes any.
pub fn ensure_absent<'a>(
    paths: impl IntoIterator<Item = &'a Path>,
    existing: Existing,
) -> Result<(), WriteError> {
    if existing == Existing::Replace {
        return Ok(());
    }
    match paths.into_iter().find(|p| p.symlink_metadata().is_ok()) {
        Some(p) => Err(WriteError::Exists {
            path: p.to_path_buf(),
        }),
        None => Ok(()),
    }
}

/// Writes `bytes` to `path` (its folder created when missing) through an exclusive temporary
/// file and a rename; `existing` says whether a file already at `path` may be replaced.
pub fn write(path: &Path, bytes: &[u8], existing: Existing) -> Result<(), WriteError> {
    let io = |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(io)?;
            d.to_path_buf()
        }
        None => PathBuf::from("."),
    };
    if existing == Existing::Keep && path.symlink_metadata().is_ok() {
        return Err(WriteError::Exists {
            path: path.to_path_buf(),
        });
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    set_readable(tmp.path()).map_err(io)?;
    match existing {
        Existing::Replace => tmp.persist(path).map(drop).map_err(|e| io(e.error)),
        Existing::Keep => tmp.persist_noclobber(path).map(drop).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                WriteError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                io(e.error)
            }
        }),
    }
}

/// Most bytes a model checkpoint may have (graph models and forecasters are far smaller).
pub const MAX_CHECKPOINT_BYTES: u64 = 512 << 20;

/// The contents of `path`, refused (`InvalidData`, naming both sizes) when it holds more than
/// `limit` bytes: a file read whole is bounded before it is read.
pub fn read_at_most(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut data = Vec::new();
    f.take(limit.saturating_add(1)).read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("more than {limit} bytes, the most this file may hold"),
        ));
    }
    Ok(data)
}

/// A temporary file is created readable by its owner only; a written file is readable by all
/// (0644, as a plain `create` under the usual umask would leave it).
#[cfg(unix)]
fn set_readable(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn set_readable(_: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_keep_or_replace_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/results.json");
        write(&p, b"one", Existing::Keep).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        let e = write(&p, b"two", Existing::Keep).unwrap_err();
        assert!(matches!(e, WriteError::Exists { .. }), "{e}");
        assert!(e.to_string().contains("pass --force"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"one", "kept");
        write(&p, b"two", Existing::Replace).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("results.json")]);
    }

    #[test]
    fn reads_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m");
        std::fs::write(&p, vec![7u8; 100]).unwrap();
        assert_eq!(read_at_most(&p, 100).unwrap().len(), 100);
        let e = read_at_most(&p, 99).unwrap_err();
        assert!(e.to_string().contains("more than 99 bytes"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_at_the_old_temporary_name_or_the_target_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        // The fixed temporary names the old writers used.
        for name in ["results.json.tmp", "results.tmp", ".results.json.tmp"] {
            std::os::unix::fs::symlink(&victim, out.join(name)).unwrap();
        }
        let target = out.join("results.json");
        write(&target, b"report", Existing::Keep).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!target.symlink_metadata().unwrap().file_type().is_symlink());
        // A symlink at the target itself: kept unless replacing is asked, and then the link is
        // replaced, not the file it points to.
        let link = out.join("report.html");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(matches!(
            write(&link, b"x", Existing::Keep),
            Err(WriteError::Exists { .. })
        ));
        write(&link, b"x", Existing::Replace).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!link.symlink_metadata().unwrap().file_type().is_symlink());
    }
}
