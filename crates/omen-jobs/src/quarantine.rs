//! The one quarantine refresh, used by `omen quarantine`, `omen ci` and the flakiness evaluation.

use std::path::{Path, PathBuf};

use omen_core::flakiness::FlakinessConfig;
use omen_core::quarantine::{QuarantinePolicy, Regenerated, regenerate};
use omen_metadata::quarantine::{Mode, QUARANTINE_VERSION, QuarantineFile};
use omen_store::Store;

use crate::JobError;

/// What a refresh is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct Refresh<'a> {
    /// The current file, read successfully (a file Omen cannot read is never replaced, so the
    /// caller stops before a refresh).
    pub previous: &'a QuarantineFile,
    /// Thresholds.
    pub policy: &'a QuarantinePolicy,
    /// The flakiness model's settings.
    pub flakiness: &'a FlakinessConfig,
    /// Mode of newly added entries.
    pub mode: Mode,
    /// The time to decide at.
    pub now: i64,
    /// Write even when the guard refuses.
    pub force: bool,
}

/// What [`refresh`] did.
#[derive(Debug)]
pub enum Refreshed {
    /// The quarantine is now `.file` (the file was rewritten only if its text changed) and its
    /// releases are recorded.
    Written(Regenerated),
    /// The guard refused the new quarantine; nothing was written or recorded.
    Refused(String),
}

/// Regenerate the quarantine from `store`'s default-branch evidence, apply the guard unless
/// `force`, write it atomically to `path` (or keep it in memory when `path` is `None`), then record
/// the releases so a test that bounces back is not released automatically again. Every error is
/// returned, none dropped; when writing fails nothing is recorded.
pub fn refresh(store: &Store, path: Option<&Path>, r: &Refresh) -> Result<Refreshed, JobError> {
    let regenerated = regenerate_from(store, r)?;
    if let Some(refusal) = regenerated.refusal(r.policy) {
        if !r.force {
            return Ok(Refreshed::Refused(refusal));
        }
        tracing::warn!("{refusal}; writing it anyway because of --force");
    }
    if let Some(path) = path {
        let text = regenerated.file.render();
        if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
            write_atomically(path, text.as_bytes())?;
        }
    }
    for key in &regenerated.releases {
        store.record_release(*key, r.now)?;
    }
    Ok(Refreshed::Written(regenerated))
}

/// What `path` would hold after a refresh, without writing or recording anything (the staleness
/// check): the regenerated quarantine, or the guard's refusal.
pub fn preview(store: &Store, r: &Refresh) -> Result<Result<Regenerated, String>, JobError> {
    let regenerated = regenerate_from(store, r)?;
    Ok(match regenerated.refusal(r.policy) {
        Some(refusal) if !r.force => Err(refusal),
        _ => Ok(regenerated),
    })
}

/// The quarantine `store`'s history decides over `r.previous`.
fn regenerate_from(store: &Store, r: &Refresh) -> Result<Regenerated, JobError> {
    let inputs =
        store.quarantine_inputs(r.previous.tests.iter().map(|e| e.id.as_str()), r.flakiness)?;
    Ok(regenerate(r.previous, &inputs, r.policy, r.mode, r.now))
}

/// An empty quarantine file.
pub fn empty() -> QuarantineFile {
    QuarantineFile {
        version: QUARANTINE_VERSION,
        tests: vec![],
    }
}

/// Read the quarantine file at `path`; `None` when there is none.
pub fn read_file(path: &Path) -> Result<Option<QuarantineFile>, JobError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            QuarantineFile::parse(&text)
                .map(Some)
                .map_err(|message| JobError::QuarantineFile {
                    path: path.to_owned(),
                    message,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(JobError::io("read quarantine file", path)(e)),
    }
}

/// Replace `path` with `bytes` so that a reader sees the old file or the new one, never a part:
/// write a fresh temporary file beside it (a new name, so an existing `<out>.tmp` is never
/// touched), flush it to disk, rename it over. A symlink is followed and its target replaced, so
/// the link stays. On failure the temporary file is removed and `path` is as it was.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), JobError> {
    use std::io::Write;
    let is_link = path
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink());
    let target = if is_link {
        std::fs::canonicalize(path).map_err(JobError::io("follow the symlink", path))?
    } else {
        path.to_owned()
    };
    let dir = match target.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir.to_owned(),
        None => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(JobError::io("create", &dir))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(JobError::io("create a temporary file in", &dir))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(JobError::io("write", &target))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&target).map_or(0o644, |m| m.permissions().mode() & 0o7777);
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
            .map_err(JobError::io("set the permissions of", &target))?;
    }
    tmp.persist(&target)
        .map_err(|e| JobError::io("replace", &target)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_target_of_a_symlink_and_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        std::fs::write(&real, "old").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::os::unix::fs::symlink(&real, dir.path().join("link.json")).unwrap();
            write_atomically(&dir.path().join("link.json"), b"new").unwrap();
            assert!(
                dir.path()
                    .join("link.json")
                    .symlink_metadata()
                    .unwrap()
                    .file_type()
                    .is_symlink()
            );
            let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        #[cfg(not(unix))]
        write_atomically(&real, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn reading_tells_a_missing_file_from_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.json");
        assert!(read_file(&path).unwrap().is_none());
        std::fs::write(&path, "{").unwrap();
        let err = read_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("q.json") && err.contains("not valid JSON"),
            "{err}"
        );
        std::fs::write(&path, empty().render()).unwrap();
        assert_eq!(read_file(&path).unwrap().unwrap().tests.len(), 0);
    }
}
