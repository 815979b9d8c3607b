//! `renkei backup FILE`: a consistent copy of the SQLite database while the service runs.
//!
//! It uses SQLite's online backup API (`sqlite3_backup_init/step/finish`) through
//! `libsqlite3-sys`, the same bundled SQLite that diesel links. diesel's `SqliteConnection` does
//! not hand out its raw handle, so the backup opens two raw connections of its own: the database
//! read-only and the copy. Unlike copying the file (which can catch a half-written page, and
//! misses what is still in the `-wal` file), the backup API copies one consistent snapshot, and
//! in WAL mode the service keeps writing meanwhile. `VACUUM INTO` would also work but rewrites
//! the whole database through SQL; the backup API copies pages as they are.
//!
//! PostgreSQL is refused with a pointer to `pg_dump`: a city's database is backed up by its own
//! tools (base backups, WAL archiving).

use std::ffi::{CStr, CString};
use std::os::raw::c_int;
use std::path::{Path, PathBuf};
use std::ptr;
use std::time::Duration;

use libsqlite3_sys as ffi;

use crate::db::Backend;

/// How long the backup waits for a lock held by the service before trying again.
const BUSY_TIMEOUT_MS: c_int = 5_000;
/// Attempts at a step that finds the database locked, before giving up.
const LOCKED_RETRIES: u32 = 100;

/// Copies the database of `database_url` to `destination`, which must not exist yet. The copy is
/// written beside the destination and renamed into place, so a failed backup leaves no partial
/// file under the destination's name. Returns the number of pages copied.
pub fn run(database_url: &str, destination: &Path) -> Result<i32, String> {
    let source = match Backend::from_url(database_url)? {
        Backend::Postgres => {
            return Err("renkei backup copies the SQLite database only; for PostgreSQL use pg_dump \
                 (e.g. pg_dump --format=custom --file=renkei.dump \"$DATABASE_URL\") and WAL archiving, \
                 see docs/operations.md"
                .into())
        }
        Backend::Sqlite => PathBuf::from(database_url.trim_start_matches("sqlite://")),
    };
    if !source.is_file() {
        return Err(format!("no SQLite database at {}", source.display()));
    }
    if destination.exists() {
        return Err(format!("{} exists already; choose a new file name", destination.display()));
    }
    let name = destination.file_name().ok_or_else(|| format!("{} names no file", destination.display()))?;
    let partial = destination.with_file_name(format!(".{}.partial", name.to_string_lossy()));
    let _ = std::fs::remove_file(&partial);
    let pages = copy(&source, &partial).inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    std::fs::rename(&partial, destination)
        .map_err(|e| format!("cannot move the copy to {}: {e}", destination.display()))?;
    Ok(pages)
}

/// An open raw connection, closed when dropped.
struct Handle(*mut ffi::sqlite3);

impl Handle {
    fn open(path: &Path, flags: c_int) -> Result<Handle, String> {
        let c_path = CString::new(path.to_string_lossy().as_bytes())
            .map_err(|_| format!("{} is not a usable file name", path.display()))?;
        let mut db = ptr::null_mut();
        // SAFETY: c_path is a valid NUL-terminated string; db receives a handle (possibly to an
        // error state) that Handle closes once.
        let rc = unsafe { ffi::sqlite3_open_v2(c_path.as_ptr(), &mut db, flags, ptr::null()) };
        let handle = Handle(db);
        if rc != ffi::SQLITE_OK {
            return Err(format!("cannot open {}: {}", path.display(), handle.message()));
        }
        // SAFETY: db is an open connection.
        unsafe { ffi::sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS) };
        Ok(handle)
    }

    fn message(&self) -> String {
        if self.0.is_null() {
            return "out of memory".into();
        }
        // SAFETY: the handle is valid; sqlite3_errmsg returns a NUL-terminated UTF-8 string
        // owned by SQLite, copied here before any other call on the handle.
        unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.0)).to_string_lossy().into_owned() }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: closes the handle opened in `open` exactly once; null is a harmless no-op.
        unsafe { ffi::sqlite3_close(self.0) };
    }
}

fn copy(source: &Path, destination: &Path) -> Result<i32, String> {
    let from = Handle::open(source, ffi::SQLITE_OPEN_READONLY)?;
    let to = Handle::open(destination, ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE)?;
    let main = c"main";
    // SAFETY: both handles are open connections and outlive the backup object, which is
    // finished below on every path.
    let backup = unsafe { ffi::sqlite3_backup_init(to.0, main.as_ptr(), from.0, main.as_ptr()) };
    if backup.is_null() {
        return Err(format!("cannot start the backup: {}", to.message()));
    }
    let mut retries = 0;
    let step = loop {
        // -1: every page in one step, inside one read transaction, so the copy is one snapshot
        // (in WAL mode the service's writers are not held up by it).
        // SAFETY: backup is a live backup object.
        let rc = unsafe { ffi::sqlite3_backup_step(backup, -1) };
        match rc {
            ffi::SQLITE_DONE => break Ok(()),
            ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED if retries < LOCKED_RETRIES => {
                retries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => break Err(format!("the backup failed (SQLite error {rc})")),
        }
    };
    // SAFETY: backup is live; it is finished once, and not used afterwards.
    let pages = unsafe { ffi::sqlite3_backup_pagecount(backup) };
    let finished = unsafe { ffi::sqlite3_backup_finish(backup) };
    step?;
    if finished != ffi::SQLITE_OK {
        return Err(format!("the backup failed: {}", to.message()));
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_is_refused_with_a_pointer_to_pg_dump() {
        let dir = tempfile::tempdir().unwrap();
        let err = run("postgres://renkei@127.0.0.1/renkei", &dir.path().join("copy.db")).unwrap_err();
        assert!(err.contains("pg_dump"), "{err}");
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("renkei.db");
        std::fs::write(&db, b"").unwrap();
        let target = dir.path().join("copy.db");
        std::fs::write(&target, b"keep").unwrap();
        let err = run(&format!("sqlite://{}", db.display()), &target).unwrap_err();
        assert!(err.contains("exists already"), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }
}
