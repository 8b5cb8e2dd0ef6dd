//! The IDX format of MNIST and Fashion-MNIST: a 4-byte magic (two zero
//! bytes, a type code, the number of dimensions), one big-endian u32 per
//! dimension, then the data. Only unsigned bytes (type 0x08) occur in these
//! datasets, and only those are accepted.

use std::io::Read;

use crate::Error;

/// A parsed IDX file of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    /// The dimensions, outermost first.
    pub dims: Vec<usize>,
    /// The data, row-major; its length is the product of `dims`.
    pub data: Vec<u8>,
}

/// The largest file that decompressing is allowed to produce. MNIST's
/// largest file is 47 MB; this leaves room for bigger IDX datasets while
/// refusing a gzip bomb before it fills memory.
pub const MAX_DECOMPRESSED: u64 = 1 << 31;

/// Returns the bytes of a possibly gzipped file: gzip is recognised by its
/// magic bytes `1f 8b`, not by the file name. `file` names the source in
/// errors; more than [`MAX_DECOMPRESSED`] bytes out is an error.
///
/// ```
/// use std::io::Write;
/// let raw = vec![0u8, 0, 8, 1, 0, 0, 0, 1, 7];
/// let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
/// gz.write_all(&raw).unwrap();
/// let gz = gz.finish().unwrap();
/// assert_eq!(datasets::maybe_gunzip(gz.clone(), "labels.gz")?, raw);
/// assert_eq!(datasets::maybe_gunzip(raw.clone(), "labels")?, raw); // not gzip: as is
/// assert!(datasets::maybe_gunzip(gz[..gz.len() - 8].to_vec(), "cut.gz").is_err());
/// # Ok::<(), datasets::Error>(())
/// ```
pub fn maybe_gunzip(bytes: Vec<u8>, file: &str) -> Result<Vec<u8>, Error> {
    if bytes.len() < 2 || bytes[..2] != [0x1f, 0x8b] {
        return Ok(bytes);
    }
    // The gzip trailer's last four bytes claim the uncompressed size (mod
    // 2^32); reserving it avoids a growing Vec's transient copies. A hostile
    // file can claim anything, so trust the claim only as far as deflate
    // can expand (at most 1032:1) what is actually there.
    let n = bytes.len();
    let claimed = if n >= 4 {
        u32::from_le_bytes([bytes[n - 4], bytes[n - 3], bytes[n - 2], bytes[n - 1]])
    } else {
        0
    };
    let reserve = (claimed as u64).min(1032 * n as u64).min(MAX_DECOMPRESSED);
    let mut out = Vec::with_capacity(reserve as usize);
    let decoder = flate2::read::MultiGzDecoder::new(&bytes[..]);
    decoder
        .take(MAX_DECOMPRESSED + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::format(file, format!("gzip stream is damaged or truncated: {e}")))?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(Error::format(
            file,
            format!("decompresses to more than {MAX_DECOMPRESSED} bytes; refusing it"),
        ));
    }
    Ok(out)
}

/// Parses IDX bytes (already decompressed). `file` names the source in errors.
///
/// ```
/// // A 1-D IDX of three labels.
/// let bytes = [0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1];
/// let idx = datasets::parse_idx(&bytes, "labels").unwrap();
/// assert_eq!((idx.dims, idx.data), (vec![3], vec![7, 2, 1]));
/// let err = datasets::parse_idx(&bytes[..10], "labels").unwrap_err();
/// assert_eq!(err.to_string(), "labels: truncated: the header declares 3 data bytes after offset 8, the file has 2");
/// ```
pub fn parse_idx(bytes: &[u8], file: &str) -> Result<Idx, Error> {
    let dims = parse_header(bytes, file)?;
    let header = 4 + 4 * dims.len();
    Ok(Idx {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// [`parse_idx`] taking the bytes by value: the header is removed in place,
/// so a 47 MB file is not copied.
///
/// ```
/// // One 2x2 image.
/// let bytes = vec![0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 10, 20, 30, 40];
/// let idx = datasets::parse_idx_owned(bytes, "image")?;
/// assert_eq!((idx.dims, idx.data), (vec![1, 2, 2], vec![10, 20, 30, 40]));
/// // Only unsigned bytes (type 0x08) occur in MNIST-format files.
/// let floats = vec![0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0];
/// assert!(datasets::parse_idx_owned(floats, "floats").is_err());
/// # Ok::<(), datasets::Error>(())
/// ```
pub fn parse_idx_owned(mut bytes: Vec<u8>, file: &str) -> Result<Idx, Error> {
    let dims = parse_header(&bytes, file)?;
    bytes.drain(..4 + 4 * dims.len());
    Ok(Idx { dims, data: bytes })
}

/// Checks the header and the data length against it; returns the dimensions.
fn parse_header(bytes: &[u8], file: &str) -> Result<Vec<usize>, Error> {
    if bytes.len() < 4 {
        return Err(Error::format(
            file,
            format!(
                "too short for an IDX header: {} bytes, need at least 4",
                bytes.len()
            ),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::format(
            file,
            format!(
                "bad magic at offset 0: expected 00 00, found {:02x} {:02x} (not an IDX file)",
                bytes[0], bytes[1]
            ),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(Error::format(
            file,
            format!(
                "unsupported data type 0x{:02x} at offset 2: expected 0x08 (unsigned byte)",
                bytes[2]
            ),
        ));
    }
    let ndims = bytes[3] as usize;
    if ndims == 0 {
        return Err(Error::format(file, "the header declares 0 dimensions (offset 3)"));
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(Error::format(
            file,
            format!(
                "truncated header: {ndims} dimensions need {header} bytes, the file has {}",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    // Check the declared size against the file before allocating anything.
    let declared = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            Error::format(
                file,
                format!("dimensions {dims:?} overflow: their product does not fit in memory"),
            )
        })?;
    let available = bytes.len() - header;
    if declared > available {
        return Err(Error::format(
            file,
            format!(
                "truncated: the header declares {declared} data bytes after offset {header}, the file has {available}"
            ),
        ));
    }
    if declared < available {
        return Err(Error::format(
            file,
            format!(
                "{} unexpected bytes after the data (the header declares {declared} bytes after offset {header})",
                available - declared
            ),
        ));
    }
    Ok(dims)
}
