//! The atomic writer: what it replaces, what it refuses, the permissions it leaves, and
//! that a failure leaves nothing behind.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use lantern_io::{write_atomic, AtomicFile, Error, FileKind};

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[test]
fn writes_a_new_file_and_replaces_a_regular_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.bin");
    write_atomic(&path, b"first").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"first");
    write_atomic(&path, b"second, longer").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"second, longer");
    assert_eq!(names(dir.path()), ["out.bin"]);
}

#[test]
fn streamed_writes_seek_back_and_appear_only_on_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.bin");
    fs::write(&path, b"old").unwrap();
    let mut file = AtomicFile::create(&path).unwrap();
    assert_eq!(file.path(), path);
    file.write_all(b"xxxx, then the body").unwrap();
    file.seek(SeekFrom::Start(0)).unwrap();
    file.write_all(b"head").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"old");
    assert_eq!(names(dir.path()).len(), 2, "the temporary file sits beside the target");
    file.commit().unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"head, then the body");
    assert_eq!(names(dir.path()), ["out.bin"]);
}

#[test]
fn a_dropped_or_failed_write_leaves_the_old_file_and_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.bin");
    fs::write(&path, b"old contents").unwrap();
    let mut file = AtomicFile::create(&path).unwrap();
    file.write_all(&[7; 100_000]).unwrap();
    drop(file);
    assert_eq!(fs::read(&path).unwrap(), b"old contents");
    assert_eq!(names(dir.path()), ["out.bin"]);

    // A directory that takes the target's place mid-write fails the commit, which
    // removes the temporary file.
    let late = dir.path().join("late");
    let mut file = AtomicFile::create(&late).unwrap();
    file.write_all(b"bytes").unwrap();
    fs::create_dir(&late).unwrap();
    let err = file.commit().unwrap_err();
    assert!(matches!(err, Error::NotRegularFile { kind: FileKind::Directory, .. }), "{err}");
    assert!(late.is_dir());
    assert_eq!(names(dir.path()), ["late", "out.bin"]);

    // No directory to put the temporary file in: an I/O error naming that directory.
    let missing = dir.path().join("no/such/out.bin");
    let err = write_atomic(&missing, b"x").unwrap_err();
    assert!(matches!(&err, Error::Io { path, .. } if path == &dir.path().join("no/such")), "{err}");
}

#[test]
fn refuses_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    let err = AtomicFile::create(&sub).unwrap_err();
    assert!(
        matches!(&err, Error::NotRegularFile { path, target, kind: FileKind::Directory }
            if path == &sub && target == &sub),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!("refusing to write {}: it is a directory, not a regular file", sub.display())
    );
    assert!(sub.is_dir());
    assert_eq!(names(dir.path()), ["sub"]);
}

#[cfg(unix)]
mod unix {
    use std::ffi::CString;
    use std::fs::{self, File};
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::fs::{symlink, FileTypeExt as _, PermissionsExt as _};
    use std::path::Path;

    use lantern_io::{write_atomic, AtomicFile, Error, FileKind, GgufWriter};

    use super::names;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_file_gets_the_mode_file_create_gives() {
        let dir = tempfile::tempdir().unwrap();
        let reference = dir.path().join("reference");
        File::create(&reference).unwrap();
        let path = dir.path().join("out.bin");
        write_atomic(&path, b"x").unwrap();
        assert_eq!(mode(&path), mode(&reference), "0o666 less the umask, not tempfile's 0o600");
    }

    #[test]
    fn a_replaced_file_keeps_its_permission_bits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        // Read-only last: the file is replaced, not written in place, so that works too.
        for before in [0o640, 0o604, 0o755, 0o600, 0o444] {
            fs::write(&path, b"old").unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(before)).unwrap();
            write_atomic(&path, b"new").unwrap();
            assert_eq!(fs::read(&path).unwrap(), b"new");
            assert_eq!(mode(&path), before, "{before:o}");
        }
        // Set-ID bits are not carried over to a file that has a new owner.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o4755)).unwrap();
        write_atomic(&path, b"newer").unwrap();
        assert_eq!(mode(&path), 0o755);
    }

    #[test]
    fn refuses_dev_null_without_touching_it() {
        // Refused before any temporary file is made, so this means the same for root and
        // for anyone else (who could not create a file in /dev anyway).
        let dev_null = Path::new("/dev/null");
        let err = AtomicFile::create(dev_null).unwrap_err();
        assert!(matches!(err, Error::NotRegularFile { kind: FileKind::CharDevice, .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "refusing to write /dev/null: it is a character device, not a regular file"
        );
        let err = GgufWriter::new().write_file(dev_null).unwrap_err();
        assert!(matches!(err, Error::NotRegularFile { kind: FileKind::CharDevice, .. }), "{err}");
        assert!(fs::symlink_metadata(dev_null).unwrap().file_type().is_char_device());
    }

    #[test]
    fn refuses_a_fifo_and_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c_path = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
        let err = write_atomic(&fifo, b"x").unwrap_err();
        assert!(matches!(err, Error::NotRegularFile { kind: FileKind::Fifo, .. }), "{err}");
        assert!(err.to_string().contains("is a FIFO"), "{err}");
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());

        let socket = dir.path().join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let err = write_atomic(&socket, b"x").unwrap_err();
        assert!(matches!(err, Error::NotRegularFile { kind: FileKind::Socket, .. }), "{err}");
        assert!(fs::symlink_metadata(&socket).unwrap().file_type().is_socket());
        assert_eq!(names(dir.path()), ["fifo", "socket"]);
    }

    #[test]
    fn writes_through_a_symlink_and_keeps_the_link() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("real")).unwrap();
        let file = dir.path().join("real/model.bin");
        fs::write(&file, b"old").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
        // A relative link, resolved against the link's own directory, then a link to it.
        let link = dir.path().join("link");
        symlink("real/model.bin", &link).unwrap();
        let link2 = dir.path().join("link2");
        symlink(&link, &link2).unwrap();

        let mut out = AtomicFile::create(&link2).unwrap();
        assert_eq!(out.path(), dir.path().join("real/model.bin"));
        std::io::Write::write_all(&mut out, b"new").unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"new");
        assert_eq!(mode(&file), 0o640);
        for l in [&link, &link2] {
            assert!(fs::symlink_metadata(l).unwrap().file_type().is_symlink());
        }
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("real/model.bin"));
        assert_eq!(names(&dir.path().join("real")), ["model.bin"]);

        // A link to nothing creates the file it names.
        let dangling = dir.path().join("dangling");
        symlink("real/new.bin", &dangling).unwrap();
        write_atomic(&dangling, b"created").unwrap();
        assert!(fs::symlink_metadata(&dangling).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(dir.path().join("real/new.bin")).unwrap(), b"created");
    }

    #[test]
    fn refuses_a_symlink_to_a_device_a_directory_or_itself() {
        let dir = tempfile::tempdir().unwrap();
        let to_null = dir.path().join("to_null");
        symlink("/dev/null", &to_null).unwrap();
        let err = write_atomic(&to_null, b"x").unwrap_err();
        assert!(
            matches!(&err, Error::NotRegularFile { target, kind: FileKind::CharDevice, .. }
                if target == Path::new("/dev/null")),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "refusing to write {} (a symbolic link to /dev/null): it is a character device, \
                 not a regular file",
                to_null.display()
            )
        );
        assert!(fs::symlink_metadata("/dev/null").unwrap().file_type().is_char_device());

        let to_dir = dir.path().join("to_dir");
        symlink(dir.path(), &to_dir).unwrap();
        let err = write_atomic(&to_dir, b"x").unwrap_err();
        assert!(matches!(err, Error::NotRegularFile { kind: FileKind::Directory, .. }), "{err}");

        // A link whose target's directory is missing: nothing to create the file in.
        let nowhere = dir.path().join("nowhere");
        symlink("missing/dir/file", &nowhere).unwrap();
        let err = write_atomic(&nowhere, b"x").unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");

        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        symlink(&b, &a).unwrap();
        symlink(&a, &b).unwrap();
        let err = write_atomic(&a, b"x").unwrap_err();
        assert!(matches!(&err, Error::SymlinkLoop { path } if path == &a), "{err}");

        for l in [&to_null, &to_dir, &nowhere, &a, &b] {
            assert!(fs::symlink_metadata(l).unwrap().file_type().is_symlink());
        }
        assert_eq!(names(dir.path()), ["a", "b", "nowhere", "to_dir", "to_null"]);
    }
}
