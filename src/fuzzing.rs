//! Entry points for the fuzz targets (`fuzz/`), behind the cargo feature `testing` (reached
//! as `testing::fuzzing`): the zip checks as the plans run them, with their results reduced
//! to what a target compares. Nothing here is used by the tool itself.

use std::path::Path;

/// The zip checks the plans run before extracting: the sum of the entries' uncompressed sizes
/// as the extraction step's space check reads it (typed error naming `archive`).
pub fn zip_uncompressed_size(archive: &Path) -> crate::steps::Result<u64> {
    crate::steps::extract_zip::uncompressed_size(archive)
}

/// Opens `archive` as the extraction step does (central directory checked).
pub fn zip_open(archive: &Path) -> crate::steps::Result<usize> {
    crate::steps::extract_zip::open_archive(archive).map(|z| z.len())
}
