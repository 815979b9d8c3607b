//! What a photo must not carry, removed before it is stored: EXIF (GPS position first — a photo
//! taken at home gives away the patient's address —, camera, times), XMP, IPTC and comments.
//!
//! The image data is not touched (no re-encoding, no loss): JPEG segments and PNG chunks that
//! carry metadata are left out while the file is copied, in a stream, from the received
//! temporary file to a second one. Kept are what the picture needs to look right: JFIF, the ICC
//! colour profile, Adobe's colour-transform segment, and — as the one EXIF tag left, in a
//! minimal EXIF segment of its own — the orientation, so that viewers still turn the photo the
//! way it was taken (the thumbnail is turned by it too, see [`thumbnail`]).
//!
//! HEIC/HEIF photos are stored as they came: no permissively licensed pure-Rust HEIF decoder or
//! rewriter exists (libheif is LGPL C), so they get no thumbnail, and their metadata items are
//! blanked in place instead — see [`blank_heif_metadata`].

use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::vocab::AttachmentType;

/// A photo as it will be stored: its metadata removed, hashed and measured again.
pub struct Cleaned {
    pub file: tempfile::TempPath,
    pub byte_size: u64,
    pub sha256: String,
    /// SHA-1, hex (FHIR's Attachment.hash).
    pub sha1: String,
    /// The EXIF orientation the photo had (kept in the stored file), 1 when it had none.
    pub orientation: u8,
}

/// Counts and hashes what passes through to the inner writer.
struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
    sha1: sha1::Sha1,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.sha1.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the photo at `received` without its metadata to a new temporary file in `dir`
/// (blocking: run it off the async threads). A document (PDF) is not a photo: `None`.
pub fn clean(received: &Path, content_type: AttachmentType, dir: &Path) -> io::Result<Option<Cleaned>> {
    let temp = tempfile::Builder::new().prefix("clean-").tempfile_in(dir)?;
    let (file, path) = temp.into_parts();
    let mut out = Hashing { inner: BufWriter::new(file), hasher: Sha256::new(), sha1: sha1::Sha1::new(), size: 0 };
    let orientation = match content_type {
        AttachmentType::Jpeg => {
            let mut src = BufReader::new(std::fs::File::open(received)?);
            strip_jpeg(&mut src, &mut out)?.unwrap_or(1)
        }
        AttachmentType::Png => {
            let mut src = BufReader::new(std::fs::File::open(received)?);
            strip_png(&mut src, &mut out)?;
            1
        }
        AttachmentType::Heic | AttachmentType::Heif => {
            let mut original = std::fs::OpenOptions::new().read(true).write(true).open(received)?;
            blank_heif_metadata(&mut original)?;
            original.seek(SeekFrom::Start(0))?;
            io::copy(&mut BufReader::new(original), &mut out)?;
            1
        }
        AttachmentType::Pdf => return Ok(None),
    };
    out.flush()?;
    let Hashing { inner, hasher, sha1, size } = out;
    inner.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let (sha256, sha1) = (hex::encode(hasher.finalize()), hex::encode(sha1.finalize()));
    Ok(Some(Cleaned { file: path, byte_size: size, sha256, sha1, orientation }))
}

/// The longest side of a thumbnail, in pixels.
pub const THUMBNAIL_PX: u32 = 320;
/// Photos larger than this (in pixels) get no thumbnail: decoding one takes memory.
const THUMBNAIL_SOURCE_MAX_PIXELS: u64 = 64_000_000;

/// A JPEG thumbnail of a stored JPEG or PNG photo, turned upright by its orientation (blocking;
/// decoding takes memory, so callers run few at once). `None` for HEIC/HEIF, which no
/// permissively licensed pure-Rust decoder reads, and for a photo that cannot be decoded.
pub fn thumbnail(stored: &Path, content_type: AttachmentType, orientation: u8) -> Option<Vec<u8>> {
    let format = match content_type {
        AttachmentType::Jpeg => image::ImageFormat::Jpeg,
        AttachmentType::Png => image::ImageFormat::Png,
        _ => return None,
    };
    let file = BufReader::new(std::fs::File::open(stored).ok()?);
    let mut reader = image::ImageReader::with_format(file, format);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(THUMBNAIL_SOURCE_MAX_PIXELS * 4);
    reader.limits(limits);
    let mut picture = match reader.decode() {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(error = %e, "no thumbnail: the photo could not be decoded");
            return None;
        }
    };
    if let Some(o) = image::metadata::Orientation::from_exif(orientation) {
        picture.apply_orientation(o);
    }
    let small = picture.thumbnail(THUMBNAIL_PX, THUMBNAIL_PX).into_rgb8();
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80);
    small.write_with_encoder(encoder).ok()?;
    Some(out)
}

/// Copies a JPEG from `src` to `dst` without its metadata segments; returns the EXIF
/// orientation (1–8) it had, if any.
pub fn strip_jpeg(src: &mut impl Read, dst: &mut impl Write) -> io::Result<Option<u8>> {
    let mut soi = [0u8; 2];
    src.read_exact(&mut soi)?;
    if soi != [0xFF, 0xD8] {
        return Err(invalid("not a JPEG"));
    }
    dst.write_all(&soi)?;
    let mut orientation = None;
    loop {
        let marker = next_marker(src)?;
        match marker {
            // End of image, or a marker without a length.
            0xD9 => {
                dst.write_all(&[0xFF, marker])?;
                return Ok(orientation);
            }
            0x01 | 0xD0..=0xD7 => dst.write_all(&[0xFF, marker])?,
            _ => {
                let mut len = [0u8; 2];
                src.read_exact(&mut len)?;
                let len = usize::from(u16::from_be_bytes(len));
                if len < 2 {
                    return Err(invalid("JPEG segment length"));
                }
                let mut payload = vec![0u8; len - 2];
                src.read_exact(&mut payload)?;
                if marker == 0xDA {
                    // Start of scan: the compressed image (and any further scans) follows,
                    // copied as it is.
                    write_segment(dst, marker, &payload)?;
                    io::copy(src, dst)?;
                    return Ok(orientation);
                }
                if keeps(marker, &payload) {
                    write_segment(dst, marker, &payload)?;
                } else if marker == 0xE1 && payload.starts_with(b"Exif\0\0") && orientation.is_none() {
                    orientation = exif_orientation(&payload[6..]);
                    if let Some(o) = orientation.filter(|o| *o != 1) {
                        write_segment(dst, 0xE1, &orientation_only_exif(o))?;
                    }
                }
            }
        }
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// The next marker code, past any fill bytes.
fn next_marker(src: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    src.read_exact(&mut b)?;
    if b[0] != 0xFF {
        return Err(invalid("JPEG marker expected"));
    }
    loop {
        src.read_exact(&mut b)?;
        if b[0] != 0xFF {
            return Ok(b[0]);
        }
    }
}

fn write_segment(dst: &mut impl Write, marker: u8, payload: &[u8]) -> io::Result<()> {
    let len = u16::try_from(payload.len() + 2).map_err(|_| invalid("JPEG segment too long"))?;
    dst.write_all(&[0xFF, marker])?;
    dst.write_all(&len.to_be_bytes())?;
    dst.write_all(payload)
}

/// Whether a segment before the image data stays: everything but APPn metadata and comments;
/// of the APPn segments JFIF (APP0), the ICC profile (APP2) and Adobe (APP14).
fn keeps(marker: u8, payload: &[u8]) -> bool {
    match marker {
        0xE0 => payload.starts_with(b"JFIF\0") || payload.starts_with(b"JFXX\0"),
        0xE2 => payload.starts_with(b"ICC_PROFILE\0"),
        0xEE => payload.starts_with(b"Adobe"),
        0xE1..=0xEF | 0xFE => false,
        _ => true,
    }
}

/// The orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block.
pub fn exif_orientation(tiff: &[u8]) -> Option<u8> {
    let big = match tiff.get(0..2)? {
        b"MM" => true,
        b"II" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b = [*tiff.get(at)?, *tiff.get(at + 1)?];
        Some(if big { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b = [*tiff.get(at)?, *tiff.get(at + 1)?, *tiff.get(at + 2)?, *tiff.get(at + 3)?];
        Some(if big { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    };
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let count = usize::from(u16_at(ifd)?);
    (0..count)
        .find_map(|i| {
            let entry = ifd + 2 + i * 12;
            (u16_at(entry)? == 0x0112 && u16_at(entry + 2)? == 3).then(|| u16_at(entry + 8)).flatten()
        })
        .and_then(|o| u8::try_from(o).ok())
        .filter(|o| (1..=8).contains(o))
}

/// An EXIF APP1 payload holding the orientation and nothing else.
fn orientation_only_exif(orientation: u8) -> Vec<u8> {
    let mut p = b"Exif\0\0MM\0\x2A\0\0\0\x08".to_vec();
    p.extend_from_slice(&1u16.to_be_bytes()); // one entry
    p.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    p.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    p.extend_from_slice(&1u32.to_be_bytes()); // one value
    p.extend_from_slice(&[0, orientation, 0, 0]); // the value, left-justified
    p.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    p
}

/// PNG chunks that carry metadata: EXIF, text (where XMP lives too) and the modification time.
const PNG_METADATA: [&[u8; 4]; 5] = [b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"];

/// Copies a PNG from `src` to `dst` without its metadata chunks.
pub fn strip_png(src: &mut impl Read, dst: &mut impl Write) -> io::Result<()> {
    let mut signature = [0u8; 8];
    src.read_exact(&mut signature)?;
    if &signature != b"\x89PNG\r\n\x1a\n" {
        return Err(invalid("not a PNG"));
    }
    dst.write_all(&signature)?;
    loop {
        let mut header = [0u8; 8];
        src.read_exact(&mut header)?;
        let len = u64::from(u32::from_be_bytes([header[0], header[1], header[2], header[3]]));
        let kind = [header[4], header[5], header[6], header[7]];
        // Data and CRC.
        let mut chunk = src.by_ref().take(len + 4);
        if PNG_METADATA.contains(&&kind) {
            io::copy(&mut chunk, &mut io::sink())?;
        } else {
            dst.write_all(&header)?;
            let copied = io::copy(&mut chunk, dst)?;
            if copied != len + 4 {
                return Err(invalid("PNG chunk cut short"));
            }
        }
        if &kind == b"IEND" {
            return Ok(());
        }
    }
}

/// Overwrites, in place and with zeros, the EXIF and XMP items of a HEIF file (the items
/// `iinf` lists as `Exif`, or as `mime` items of type `application/rdf+xml`, at the offsets
/// `iloc` gives). Nothing moves, so every offset in the file stays right and the image items are
/// untouched. Returns how many items were blanked.
pub fn blank_heif_metadata(file: &mut (impl Read + Write + Seek)) -> io::Result<usize> {
    let size = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(0))?;
    // The `meta` box is small (item lists and locations); read it whole.
    let Some((meta_start, meta_len)) = find_box(file, 0, size, b"meta")? else { return Ok(0) };
    if meta_len > 4 * 1024 * 1024 {
        return Err(invalid("HEIF meta box too large"));
    }
    file.seek(SeekFrom::Start(meta_start))?;
    let mut meta = vec![0u8; usize::try_from(meta_len).map_err(|_| invalid("meta"))?];
    file.read_exact(&mut meta)?;
    // A full box: version and flags first.
    let children = meta.get(4..).unwrap_or_default();
    let metadata_items = heif_metadata_items(children);
    let extents = heif_extents(children, &metadata_items);
    for (offset, len) in &extents {
        if offset.saturating_add(*len) > size {
            return Err(invalid("HEIF item outside the file"));
        }
        file.seek(SeekFrom::Start(*offset))?;
        io::copy(&mut io::repeat(0).take(*len), file)?;
    }
    file.flush()?;
    Ok(extents.len())
}

/// Position and length of the payload of the first top-level box of type `kind`.
fn find_box(file: &mut (impl Read + Seek), mut at: u64, end: u64, kind: &[u8; 4]) -> io::Result<Option<(u64, u64)>> {
    while at + 8 <= end {
        file.seek(SeekFrom::Start(at))?;
        let mut header = [0u8; 16];
        file.read_exact(&mut header[..8])?;
        let mut size = u64::from(u32::from_be_bytes([header[0], header[1], header[2], header[3]]));
        let mut header_len = 8;
        if size == 1 {
            file.read_exact(&mut header[8..16])?;
            size = u64::from_be_bytes([
                header[8], header[9], header[10], header[11], header[12], header[13], header[14], header[15],
            ]);
            header_len = 16;
        } else if size == 0 {
            size = end - at;
        }
        if size < header_len {
            return Err(invalid("HEIF box size"));
        }
        if &header[4..8] == kind {
            return Ok(Some((at + header_len, size - header_len)));
        }
        at += size;
    }
    Ok(None)
}

/// The boxes inside `data`, as (type, payload).
fn boxes(mut data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 8 {
        let size = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let kind = [data[4], data[5], data[6], data[7]];
        let (start, size) = match size {
            0 => (8, data.len()),
            1 => match data.get(8..16) {
                Some(b) => (16, usize::try_from(u64::from_be_bytes(b.try_into().unwrap_or_default())).unwrap_or(0)),
                None => break,
            },
            s => (8, s),
        };
        if size < start || size > data.len() {
            break;
        }
        out.push((kind, &data[start..size]));
        data = &data[size..];
    }
    out
}

/// The ids of the EXIF and XMP items in `iinf`.
fn heif_metadata_items(meta: &[u8]) -> Vec<u32> {
    let Some((_, iinf)) = boxes(meta).into_iter().find(|(k, _)| k == b"iinf") else { return Vec::new() };
    let version = iinf.first().copied().unwrap_or(0);
    let entries_at = if version == 0 { 6 } else { 8 };
    let mut ids = Vec::new();
    for (kind, infe) in boxes(iinf.get(entries_at..).unwrap_or_default()) {
        if &kind != b"infe" || infe.first().copied().unwrap_or(0) < 2 {
            continue;
        }
        let v3 = infe[0] >= 3;
        let (id, rest) = if v3 {
            (infe.get(4..8).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])), infe.get(10..))
        } else {
            (infe.get(4..6).map(|b| u32::from(u16::from_be_bytes([b[0], b[1]]))), infe.get(8..))
        };
        let (Some(id), Some(rest)) = (id, rest) else { continue };
        let item_type = rest.get(0..4).unwrap_or_default();
        let after_name = rest.get(4..).unwrap_or_default();
        let content_type =
            after_name.split(|b| *b == 0).nth(1).map(|s| String::from_utf8_lossy(s).to_string()).unwrap_or_default();
        if item_type == b"Exif" || (item_type == b"mime" && content_type.contains("rdf+xml")) {
            ids.push(id);
        }
    }
    ids
}

/// The file extents (offset, length) of the given items, from `iloc` (construction method 0,
/// file offsets, only).
fn heif_extents(meta: &[u8], items: &[u32]) -> Vec<(u64, u64)> {
    let Some((_, iloc)) = boxes(meta).into_iter().find(|(k, _)| k == b"iloc") else { return Vec::new() };
    let mut r = Reader { data: iloc, at: 0 };
    let (Some(version), Some(_)) = (r.uint(1), r.uint(3)) else { return Vec::new() };
    let (Some(sizes1), Some(sizes2)) = (r.uint(1), r.uint(1)) else { return Vec::new() };
    let (offset_size, length_size, base_size) = (sizes1 >> 4, sizes1 & 15, sizes2 >> 4);
    let index_size = if version == 1 || version == 2 { sizes2 & 15 } else { 0 };
    let count = if version < 2 { r.uint(2) } else { r.uint(4) };
    let mut out = Vec::new();
    for _ in 0..count.unwrap_or(0) {
        let id = if version < 2 { r.uint(2) } else { r.uint(4) };
        let method = if version == 1 || version == 2 { r.uint(2).map(|m| m & 15) } else { Some(0) };
        let _reference = r.uint(2);
        let base = r.uint(base_size as usize);
        let extents = r.uint(2);
        let (Some(id), Some(method), Some(base), Some(extents)) = (id, method, base, extents) else { break };
        for _ in 0..extents {
            if index_size > 0 {
                r.uint(index_size as usize);
            }
            let (Some(offset), Some(len)) = (r.uint(offset_size as usize), r.uint(length_size as usize)) else {
                return out;
            };
            if method == 0 && items.contains(&(id as u32)) && len > 0 {
                out.push((base + offset, len));
            }
        }
    }
    out
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    /// A big-endian unsigned integer of `n` bytes (0 reads as 0).
    fn uint(&mut self, n: usize) -> Option<u64> {
        let bytes = self.data.get(self.at..self.at + n)?;
        self.at += n;
        Some(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orientation_survives_alone() {
        let exif = orientation_only_exif(6);
        assert_eq!(exif_orientation(&exif[6..]), Some(6));
    }

    #[test]
    fn jpeg_metadata_segments_are_left_out() {
        let mut jpeg = vec![0xFF, 0xD8];
        let seg = |m: u8, p: &[u8]| {
            let mut s = vec![0xFF, m];
            s.extend_from_slice(&((p.len() + 2) as u16).to_be_bytes());
            s.extend_from_slice(p);
            s
        };
        jpeg.extend(seg(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
        let mut exif = b"Exif\0\0".to_vec();
        let mut tiff = b"II\x2A\0\x08\0\0\0".to_vec();
        tiff.extend_from_slice(&2u16.to_le_bytes());
        tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 8, 0, 0, 0]); // orientation 8
        tiff.extend_from_slice(&[0x25, 0x88, 4, 0, 1, 0, 0, 0, 0x26, 0, 0, 0]); // GPS IFD pointer
        tiff.extend_from_slice(&[0, 0, 0, 0]);
        tiff.extend_from_slice(b"GPS 35.53N 139.70E");
        exif.extend(tiff);
        jpeg.extend(seg(0xE1, &exif));
        jpeg.extend(seg(0xE1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>GPS</x:xmpmeta>"));
        jpeg.extend(seg(0xFE, b"a comment"));
        jpeg.extend(seg(0xDB, &[0; 65]));
        jpeg.extend(seg(0xDA, &[1, 2, 3]));
        jpeg.extend_from_slice(&[9, 8, 7, 0xFF, 0x00, 6, 0xFF, 0xD9]);
        let mut out = Vec::new();
        let orientation = strip_jpeg(&mut jpeg.as_slice(), &mut out).unwrap();
        assert_eq!(orientation, Some(8));
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("GPS") && !text.contains("comment") && !text.contains("xmpmeta"), "{text}");
        assert!(out.ends_with(&[9, 8, 7, 0xFF, 0x00, 6, 0xFF, 0xD9]));
        assert!(out.windows(5).any(|w| w == b"JFIF\0"));
    }

    #[test]
    fn png_text_and_exif_chunks_are_left_out() {
        let chunk = |kind: &[u8; 4], data: &[u8]| {
            let mut c = (data.len() as u32).to_be_bytes().to_vec();
            c.extend_from_slice(kind);
            c.extend_from_slice(data);
            c.extend_from_slice(&[0, 0, 0, 0]);
            c
        };
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(b"IHDR", &[0; 13]));
        png.extend(chunk(b"eXIf", b"MM GPS"));
        png.extend(chunk(b"iTXt", b"XML:com.adobe.xmp GPS"));
        png.extend(chunk(b"IDAT", &[1, 2, 3]));
        png.extend(chunk(b"IEND", &[]));
        let mut out = Vec::new();
        strip_png(&mut png.as_slice(), &mut out).unwrap();
        assert!(!String::from_utf8_lossy(&out).contains("GPS"));
        assert!(out.windows(4).any(|w| w == b"IDAT"));
    }
}
