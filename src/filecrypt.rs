//! `encrypt-file` and `decrypt-file`: the vendor's Encrypt-File / Decrypt-File on our formats.
//!
//! Two phases, so that an error changes nothing: every output is first written beside its
//! destination under a staging name and fsynced (in parallel; encryption outputs are also
//! verified by decrypting them back), then, only when all succeeded, each is renamed into
//! place (atomic rename, folder fsynced). A failure removes the staging files.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::crypto::{
    is_legacy, is_new_format, verify_new, Certificate, CryptoError, LegacyReader, NewFormatReader,
    NewFormatWriter,
};
use crate::durable_fs;
use crate::{Error, Result};

const IO_BUF: usize = 256 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Encrypt,
    Decrypt,
}

pub fn encrypt_files(
    cert: &Certificate,
    files: &[PathBuf],
    output: Option<&Path>,
    quiet: bool,
) -> Result<()> {
    process(cert, files, output, Direction::Encrypt, quiet)
}

pub fn decrypt_files(
    cert: &Certificate,
    files: &[PathBuf],
    output: Option<&Path>,
    quiet: bool,
) -> Result<()> {
    process(cert, files, output, Direction::Decrypt, quiet)
}

fn refused(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Refused(format!("{}: {e}", path.display()))
}

fn process(
    cert: &Certificate,
    files: &[PathBuf],
    output: Option<&Path>,
    dir: Direction,
    quiet: bool,
) -> Result<()> {
    if let Some(out) = output {
        if !out.is_dir() {
            return Err(Error::Usage(format!(
                "--output-path {}: not a folder",
                out.display()
            )));
        }
    }
    let mut pairs = Vec::with_capacity(files.len());
    for f in files {
        if !f.is_file() {
            return Err(Error::Usage(format!("{}: not a file", f.display())));
        }
        let dest = match output {
            Some(out) => out.join(f.file_name().expect("a file has a name")),
            None => f.clone(),
        };
        if pairs.iter().any(|(_, d)| d == &dest) {
            return Err(Error::Usage(format!(
                "{} would be written twice",
                dest.display()
            )));
        }
        pairs.push((f.clone(), dest));
    }
    let staged: Vec<Result<()>> = pairs
        .par_iter()
        .map(|(src, dest)| stage(cert, src, dest, dir))
        .collect();
    if let Some(pos) = staged.iter().position(|r| r.is_err()) {
        for (_, dest) in &pairs {
            let _ = durable_fs::remove_path(&durable_fs::staging_path(dest));
        }
        let mut staged = staged;
        let e = staged.swap_remove(pos).unwrap_err();
        return Err(match e {
            Error::Refused(m) => Error::Refused(format!("{m}; nothing was changed")),
            other => other,
        });
    }
    for (_, dest) in &pairs {
        let s = durable_fs::staging_path(dest);
        durable_fs::replace(&s, dest).map_err(|source| Error::Io {
            what: "renaming into place",
            path: s.clone(),
            source,
        })?;
    }
    if !quiet {
        let verb = match dir {
            Direction::Encrypt => "encrypted",
            Direction::Decrypt => "decrypted",
        };
        crate::out::line(format_args!(
            "{verb} {} file(s) with certificate {}",
            pairs.len(),
            cert.thumbprint()
        ));
    }
    Ok(())
}

fn stage(cert: &Certificate, src: &Path, dest: &Path, dir: Direction) -> Result<()> {
    let io_error = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source: io::Error| Error::Io { what, path, source }
    };
    let mut head = [0u8; 5];
    let n = {
        let mut f = File::open(src).map_err(io_error("opening", src))?;
        crate::stream::read_full(&mut f, &mut head).map_err(io_error("reading", src))?
    };
    let head = &head[..n];
    let mode = crate::platform::mode_of(&src.metadata().map_err(io_error("reading", src))?);
    let staged = durable_fs::staging_path(dest);
    durable_fs::remove_path(&staged).map_err(io_error("removing", &staged))?;
    // Decrypted plaintext is owner-only from the file's creation: a run killed mid-way
    // leaves no readable plaintext behind. The source's mode and owner (on Windows its ACL)
    // are given to it only once it is complete, just before it is renamed into place.
    let plaintext = dir == Direction::Decrypt;
    let out = if plaintext {
        crate::platform::create_private_file(&staged)
    } else {
        crate::platform::create_with_mode(OpenOptions::new().write(true).create_new(true), mode)
            .open(&staged)
    }
    .map_err(io_error("creating", &staged))?;
    let input = File::open(src).map_err(io_error("opening", src))?;
    if !plaintext {
        durable_fs::keep_owner(&input, &out).map_err(io_error("setting the owner of", &staged))?;
    }
    let input = BufReader::with_capacity(IO_BUF, input);
    let mut w = BufWriter::with_capacity(IO_BUF, &out);
    let crypto = |e: CryptoError| refused(src, e);
    let digest = match dir {
        Direction::Encrypt => {
            if is_new_format(head) || is_legacy(head) {
                return Err(refused(src, "already encrypted"));
            }
            let mut writer = NewFormatWriter::new(cert, &mut w).map_err(crypto)?;
            let d = copy_hashing(input, &mut writer).map_err(|e| crypto(e.into()))?;
            writer.finish().map_err(crypto)?;
            Some(d)
        }
        Direction::Decrypt if is_new_format(head) => {
            let r = NewFormatReader::new(cert, input).map_err(crypto)?;
            copy_hashing(r, &mut w).map_err(|e| crypto(e.into()))?;
            None
        }
        Direction::Decrypt if is_legacy(head) => {
            let r = LegacyReader::new(cert, input).map_err(crypto)?;
            copy_hashing(r, &mut w).map_err(|e| crypto(e.into()))?;
            None
        }
        Direction::Decrypt => {
            return Err(refused(src, "not an encrypted file (no known magic bytes)"))
        }
    };
    w.flush().map_err(io_error("writing", &staged))?;
    drop(w);
    if plaintext {
        let original = File::open(src).map_err(io_error("opening", src))?;
        durable_fs::keep_owner(&original, &out)
            .map_err(io_error("setting the owner of", &staged))?;
    }
    crate::platform::set_file_mode(&out, mode).map_err(io_error("setting the mode of", &staged))?;
    durable_fs::sync_open_file(&out).map_err(io_error("syncing", &staged))?;
    drop(out);
    if let Some(d) = digest {
        let f = File::open(&staged).map_err(io_error("opening", &staged))?;
        let back = verify_new(cert, BufReader::with_capacity(IO_BUF, f))
            .map_err(|e| refused(&staged, format!("the encrypted file does not verify: {e}")))?;
        if back != d {
            return Err(refused(
                &staged,
                "the encrypted file does not decrypt to the input",
            ));
        }
    }
    Ok(())
}

/// Copies `r` to `w`; returns the SHA-256 of the bytes copied.
fn copy_hashing<R: Read, W: Write>(r: R, w: &mut W) -> io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; crate::crypto::CHUNK_SIZE];
    crate::stream::for_each_piece(
        r,
        &mut buf,
        |e| e,
        |piece| {
            h.update(piece);
            w.write_all(piece)
        },
    )?;
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a `decrypt-file` killed mid-way leaves: a staging file holding part of the
    /// plaintext. Here the decryption stops at a damaged chunk near the end, after most of
    /// the plaintext was written; the staging file must be owner-only although the source
    /// is readable by everyone.
    #[test]
    fn plaintext_staging_is_owner_only_from_its_creation() {
        let cert = &crate::runbook::demo::demo_certificate();
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("export.csv");
        let plain: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
        let mut enc = Vec::new();
        let mut w = NewFormatWriter::new(cert, &mut enc).unwrap();
        w.write_all(&plain).unwrap();
        w.finish().unwrap();
        let at = enc.len() - 100;
        enc[at] ^= 0x55;
        std::fs::write(&src, &enc).unwrap();
        crate::platform::set_mode(&src, 0o644).unwrap();
        assert!(!crate::platform::is_private(&src).unwrap());

        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let dest = out.join("export.csv");
        let e = stage(cert, &src, &dest, Direction::Decrypt).unwrap_err();
        assert!(e.to_string().contains("export.csv"), "{e}");
        let staged = durable_fs::staging_path(&dest);
        let left = std::fs::read(&staged).unwrap();
        assert!(
            left.len() >= 256 * 1024 && plain.starts_with(&left),
            "the staging file holds {} bytes of plaintext",
            left.len()
        );
        assert!(crate::platform::is_private(&staged).unwrap());
        assert!(!dest.exists());

        // Complete, it takes the source's mode only as it is renamed into place.
        std::fs::write(&src, {
            let mut ok = Vec::new();
            let mut w = NewFormatWriter::new(cert, &mut ok).unwrap();
            w.write_all(&plain).unwrap();
            w.finish().unwrap();
            ok
        })
        .unwrap();
        durable_fs::remove_path(&staged).unwrap();
        decrypt_files(cert, std::slice::from_ref(&src), Some(&out), true).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), plain);
        let mode = crate::platform::mode_of(&std::fs::metadata(&src).unwrap());
        assert_eq!(
            crate::platform::mode_of(&std::fs::metadata(&dest).unwrap()),
            mode
        );
    }
}
