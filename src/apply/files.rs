//! Writing the user's files. An edit lands on the file the path names: through its symbolic
//! links (the links stay links), with its mode and owner, atomically (a temporary file beside
//! it, then a rename), and only if the file still holds what was read, so a change someone
//! made meanwhile is never overwritten. FIFOs, devices, directories and read-only files are
//! refused, never written. A change of several files is all or nothing.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {what}, not a regular file; nothing was written")]
    NotRegular { path: String, what: &'static str },
    #[error(
        "{path}: the file is read-only; nothing was written (make it writable to let this edit it)"
    )]
    ReadOnly { path: String },
    #[error(
        "{path}: the file changed while this command was working; nothing was written, run it again"
    )]
    ChangedMeanwhile { path: String },
    #[error("{path} exists already; nothing was written")]
    Exists { path: String },
    #[error(
        "{path}: cannot keep the file's owner (uid {uid}, gid {gid}): {source}; nothing was written"
    )]
    OwnerNotKept {
        path: String,
        uid: u32,
        gid: u32,
        source: std::io::Error,
    },
    #[error(
        "{lock} exists: another program (kubectl, or another sync) is changing {path}; waited {waited}s. If none is running, remove {lock}"
    )]
    Locked {
        path: String,
        lock: String,
        waited: u64,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn describe(file_type: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_block_device() || file_type.is_char_device() {
            return "a device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
}

/// The regular file behind `path`, through any symbolic links.
fn real_file(path: &Path) -> Result<(PathBuf, std::fs::Metadata), FileError> {
    let shown = || path.display().to_string();
    let target = std::fs::canonicalize(path).map_err(|source| {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
            && source.kind() == std::io::ErrorKind::NotFound
        {
            FileError::NotRegular {
                path: shown(),
                what: "a symbolic link to nothing",
            }
        } else {
            FileError::Io {
                path: shown(),
                source,
            }
        }
    })?;
    let meta = std::fs::metadata(&target).map_err(io(path))?;
    if !meta.is_file() {
        return Err(FileError::NotRegular {
            path: shown(),
            what: describe(meta.file_type()),
        });
    }
    Ok((target, meta))
}

/// A file read for editing: what it held, and the real file an edit replaces.
#[derive(Debug, Clone)]
pub struct Original {
    /// The path as the user named it.
    pub path: PathBuf,
    /// The regular file behind it.
    pub target: PathBuf,
    pub text: String,
}

/// Reads a file that is about to be edited, refusing what an edit must not touch.
pub fn read_for_edit(path: &Path) -> Result<Original, FileError> {
    let (target, meta) = real_file(path)?;
    let shown = || path.display().to_string();
    // Root may write any file; a file nobody may write is still not ours to change.
    if meta.permissions().readonly() {
        return Err(FileError::ReadOnly { path: shown() });
    }
    if let Err(e) = std::fs::OpenOptions::new().write(true).open(&target) {
        return Err(if e.kind() == std::io::ErrorKind::PermissionDenied {
            FileError::ReadOnly { path: shown() }
        } else {
            io(path)(e)
        });
    }
    let text = std::fs::read_to_string(&target).map_err(io(path))?;
    Ok(Original {
        path: path.to_path_buf(),
        target,
        text,
    })
}

/// Like [`read_for_edit`], but nothing at the path (not even a link) is `None`: a file that
/// the edit may create.
pub fn read_existing(path: &Path) -> Result<Option<Original>, FileError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
        Ok(_) => read_for_edit(path).map(Some),
    }
}

/// A temporary file beside `near`, created empty with `mode`, never over anything.
fn temporary(near: &Path, mode: u32) -> Result<(PathBuf, std::fs::File), FileError> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = near
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = near.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    loop {
        let temp = dir.join(format!(
            ".{name}.azflux-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        match options.open(&temp) {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(near)(e)),
        }
    }
}

fn sync_dir(file: &Path) {
    // A rename is durable once the directory is on disk; where directories cannot be opened
    // (Windows) the rename is as durable as the platform makes it.
    if let Some(dir) = file.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(handle) = std::fs::File::open(dir)
    {
        let _ = handle.sync_all();
    }
}

#[cfg(unix)]
fn keep_owner(temp: &Path, shown: &Path, meta: &std::fs::Metadata) -> Result<(), FileError> {
    use std::os::unix::fs::MetadataExt;
    let written = std::fs::metadata(temp).map_err(io(shown))?;
    if written.uid() == meta.uid() && written.gid() == meta.gid() {
        return Ok(());
    }
    std::os::unix::fs::chown(temp, Some(meta.uid()), Some(meta.gid())).map_err(|source| {
        FileError::OwnerNotKept {
            path: shown.display().to_string(),
            uid: meta.uid(),
            gid: meta.gid(),
            source,
        }
    })
}

#[cfg(not(unix))]
fn keep_owner(_: &Path, _: &Path, _: &std::fs::Metadata) -> Result<(), FileError> {
    Ok(())
}

/// Replaces the content of a file read with [`read_for_edit`], if it still holds what was
/// read. Mode and owner are kept; a symbolic link stays a link to the edited file.
pub fn replace(original: &Original, content: &str) -> Result<(), FileError> {
    let shown = &original.path;
    let (target, meta) = real_file(shown)?;
    if target != original.target {
        return Err(FileError::ChangedMeanwhile {
            path: shown.display().to_string(),
        });
    }
    let (temp, mut file) = temporary(&target, 0o600)?;
    let result = (|| {
        file.write_all(content.as_bytes()).map_err(io(shown))?;
        file.sync_all().map_err(io(shown))?;
        drop(file);
        std::fs::set_permissions(&temp, meta.permissions()).map_err(io(shown))?;
        keep_owner(&temp, shown, &meta)?;
        let now = std::fs::read(&target).map_err(io(shown))?;
        if now != original.text.as_bytes() {
            return Err(FileError::ChangedMeanwhile {
                path: shown.display().to_string(),
            });
        }
        std::fs::rename(&temp, &target).map_err(io(shown))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    } else {
        sync_dir(&target);
    }
    result
}

/// Creates a file that does not exist yet (nor as a dangling link), with `mode` before the
/// umask. Nothing is ever replaced.
pub fn create(path: &Path, content: &str, mode: u32) -> Result<(), FileError> {
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(FileError::Exists {
            path: path.display().to_string(),
        });
    }
    let (temp, mut file) = temporary(path, mode)?;
    let result = (|| {
        file.write_all(content.as_bytes()).map_err(io(path))?;
        file.sync_all().map_err(io(path))?;
        drop(file);
        // A hard link, unlike a rename, fails when the name was taken meanwhile.
        std::fs::hard_link(&temp, path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                FileError::Exists {
                    path: path.display().to_string(),
                }
            } else {
                io(path)(e)
            }
        })
    })();
    let _ = std::fs::remove_file(&temp);
    if result.is_ok() {
        sync_dir(path);
    }
    result
}

/// Writes a file the tool owns outright (a backup it keeps), replacing whatever was at that
/// name without writing through it: readable by the owner only.
pub fn write_own(path: &Path, content: &str) -> Result<(), FileError> {
    let (temp, mut file) = temporary(path, 0o600)?;
    let result = (|| {
        file.write_all(content.as_bytes()).map_err(io(path))?;
        file.sync_all().map_err(io(path))?;
        drop(file);
        std::fs::rename(&temp, path).map_err(io(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// A change of several files that is all or nothing: [`Change::undo`] removes the files it
/// created and puts back the ones it replaced.
#[derive(Debug, Default)]
pub struct Change {
    created: Vec<PathBuf>,
    replaced: Vec<(Original, String)>,
}

impl Change {
    pub fn create(&mut self, path: &Path, content: &str) -> Result<(), FileError> {
        create(path, content, 0o666)?;
        self.created.push(path.to_path_buf());
        Ok(())
    }

    pub fn replace(&mut self, original: &Original, content: &str) -> Result<(), FileError> {
        replace(original, content)?;
        self.replaced.push((original.clone(), content.to_string()));
        Ok(())
    }

    /// Undoes everything, newest first; what could not be undone is named in the errors.
    pub fn undo(self) -> Vec<FileError> {
        let mut failures = Vec::new();
        for (original, written) in self.replaced.into_iter().rev() {
            let now = Original {
                text: written,
                ..original.clone()
            };
            if let Err(e) = replace(&now, &original.text) {
                failures.push(e);
            }
        }
        for path in self.created.into_iter().rev() {
            if let Err(e) = std::fs::remove_file(&path) {
                failures.push(io(&path)(e));
            }
        }
        failures
    }
}

/// kubectl's lock on a kubeconfig file: `FILE.lock`, created exclusively while the file is
/// read, merged and written, removed after. kubectl fails when it finds one; this waits a
/// little, so that several syncs started at once all get their turn.
#[derive(Debug)]
pub struct KubeconfigLock {
    lock: PathBuf,
}

pub fn lock_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

impl KubeconfigLock {
    pub fn acquire(path: &Path, wait: Duration) -> Result<KubeconfigLock, FileError> {
        let lock = lock_name(path);
        if let Some(dir) = lock.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io(path))?;
        }
        let start = Instant::now();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock)
            {
                Ok(_) => return Ok(KubeconfigLock { lock }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if start.elapsed() >= wait {
                        return Err(FileError::Locked {
                            path: path.display().to_string(),
                            lock: lock.display().to_string(),
                            waited: wait.as_secs(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(io(&lock)(e)),
            }
        }
    }
}

impl Drop for KubeconfigLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    #[cfg(unix)]
    fn an_edit_keeps_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kustomization.yaml");
        std::fs::write(&path, "a: 1\n").unwrap();
        set_mode(&path, 0o640);
        let original = read_for_edit(&path).unwrap();
        replace(&original, "a: 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a: 2\n");
        assert_eq!(mode(&path), 0o640);
        assert_eq!(entries(dir.path()), ["kustomization.yaml"]);
    }

    #[test]
    #[cfg(unix)]
    fn a_symlink_is_followed_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.yaml");
        let link = dir.path().join("kustomization.yaml");
        std::fs::write(&real, "a: 1\n").unwrap();
        std::os::unix::fs::symlink("real.yaml", &link).unwrap();
        let original = read_for_edit(&link).unwrap();
        replace(&original, "a: 2\n").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "a: 2\n");
    }

    #[test]
    fn a_change_made_meanwhile_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kustomization.yaml");
        std::fs::write(&path, "a: 1\n").unwrap();
        let original = read_for_edit(&path).unwrap();
        std::fs::write(&path, "a: 1\nb: mine\n").unwrap();
        let err = replace(&original, "a: 2\n").unwrap_err();
        assert!(matches!(err, FileError::ChangedMeanwhile { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a: 1\nb: mine\n");
        assert_eq!(entries(dir.path()), ["kustomization.yaml"]);
    }

    #[test]
    #[cfg(unix)]
    fn read_only_and_special_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, "a: 1\n").unwrap();
        set_mode(&path, 0o444);
        let err = read_for_edit(&path).unwrap_err();
        assert!(matches!(err, FileError::ReadOnly { .. }), "{err}");
        assert_eq!(mode(&path), 0o444);

        let null = dir.path().join("null");
        std::os::unix::fs::symlink("/dev/null", &null).unwrap();
        let err = read_for_edit(&null).unwrap_err();
        assert!(err.to_string().contains("a device"), "{err}");

        let err = read_for_edit(dir.path()).unwrap_err();
        assert!(err.to_string().contains("a directory"), "{err}");

        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        assert!(read_for_edit(&a).is_err());

        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink("missing.yaml", &dangling).unwrap();
        let err = read_for_edit(&dangling).unwrap_err();
        assert!(err.to_string().contains("link to nothing"), "{err}");
    }

    #[test]
    #[cfg(unix)]
    fn create_never_replaces_not_even_a_dangling_link() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("new.yaml");
        std::os::unix::fs::symlink("elsewhere.yaml", &link).unwrap();
        let err = create(&link, "x\n", 0o600).unwrap_err();
        assert!(matches!(err, FileError::Exists { .. }), "{err}");
        assert!(!dir.path().join("elsewhere.yaml").exists());

        let fresh = dir.path().join("fresh");
        create(&fresh, "x\n", 0o600).unwrap();
        assert_eq!(mode(&fresh), 0o600);
        assert_eq!(entries(dir.path()), ["fresh", "new.yaml"]);
    }

    #[test]
    fn undo_puts_everything_back() {
        let dir = tempfile::tempdir().unwrap();
        let edited = dir.path().join("kustomization.yaml");
        std::fs::write(&edited, "a: 1\n").unwrap();
        let mut change = Change::default();
        change.create(&dir.path().join("new.yaml"), "x\n").unwrap();
        change
            .replace(&read_for_edit(&edited).unwrap(), "a: 2\n")
            .unwrap();
        assert!(change.undo().is_empty());
        assert_eq!(std::fs::read_to_string(&edited).unwrap(), "a: 1\n");
        assert_eq!(entries(dir.path()), ["kustomization.yaml"]);
    }

    #[test]
    fn the_lock_excludes_and_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        let held = KubeconfigLock::acquire(&path, Duration::ZERO).unwrap();
        assert!(dir.path().join("config.lock").exists());
        let err = KubeconfigLock::acquire(&path, Duration::ZERO).unwrap_err();
        assert!(err.to_string().contains("config.lock exists"), "{err}");
        drop(held);
        assert!(!dir.path().join("config.lock").exists());
        KubeconfigLock::acquire(&path, Duration::ZERO).unwrap();
    }
}
