//! The compression codecs of a RecordBatch's records section, and
//! decompression with a bound.
//!
//! How many bytes a compressed section holds is the producer's word only: a
//! 65 KB zstd batch of RLE blocks decompresses to 2 GB. So the broker never
//! decompresses without a bound. A [`Decompressor`] streams the codec's output
//! into one buffer it reuses from batch to batch, and stops with
//! [`CompressionError::TooLarge`] as soon as the output passes
//! [`RECORDS_SECTION_BYTES_MAX`]; it never holds more than that, whatever the
//! batch claims. Each shard keeps one for produce and ListOffsets, its cleaner
//! another.
//!
//! Memory, per decompression: the buffer (one byte more than
//! `RECORDS_SECTION_BYTES_MAX` at most, kept afterwards only up to
//! [`DECOMPRESSED_KEPT_BYTES`]), plus the codec's own state: zstd's window
//! (reserved up to 2^27 bytes, Kafka's own limit, but only touched as far as
//! the frame's output goes, so again at most the bound), lz4's frame buffers
//! (at most two 4 MiB blocks), gzip's 32 KiB window.
//!
//! The codecs: gzip (concatenated members accepted, as Java's GZIPInputStream
//! does), the LZ4 frame format, zstd (concatenated frames accepted), and snappy
//! read xerial-framed (snappy-java's stream format, which the Java client
//! writes) or raw. Compression goes through the kafka-protocol crate's codecs,
//! which write the same formats.

use std::io::Read;

use bytes::BytesMut;
use kafka_protocol::compression::{self as cmpr, Compressor};
use thiserror::Error;

use super::batch::{BatchHeader, Compression, HEADER_BYTES};

/// The most bytes a batch's records section may decompress to. Kafka's
/// producers bound a batch before compression (librdkafka's batch.size is
/// 1,000,000 bytes of records; the Java client's batch.size of 16 KiB is
/// counted after its estimated compression, which real data brings to 10:1 at
/// most), and Kafka's default message.max.bytes is 1 MiB: 32 MiB is 32 times
/// that, room for any real batch, while a zstd bomb (32,000:1) is stopped
/// after 32 MiB of output instead of gigabytes.
pub const RECORDS_SECTION_BYTES_MAX: usize = 32 << 20;

/// Decompressed bytes a [`Decompressor`] keeps allocated between batches.
/// Producer batches are 16 KiB to 1 MiB, so this is reuse without regrowth
/// on the produce path; a larger section (a bomb's 32 MiB) is freed at once.
pub const DECOMPRESSED_KEPT_BYTES: usize = 4 << 20;

/// The first allocation of the buffer; it doubles from there up to the bound.
const DECOMPRESSED_FIRST_BYTES: usize = 64 << 10;

const _: () = assert!(
    DECOMPRESSED_FIRST_BYTES <= DECOMPRESSED_KEPT_BYTES && DECOMPRESSED_KEPT_BYTES < RECORDS_SECTION_BYTES_MAX,
    "the buffer starts below what it keeps, and keeps less than the bound"
);

/// zstd's own default limit on a frame's window (2^27 = 128 MiB), which
/// Kafka's decoder also applies: zstd level 22 writes such frames. The window
/// is reserved, not touched: a frame touches only as much as it outputs.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// A snappy block states its uncompressed length up front; its best ratio is
/// 64 bytes from a 3-byte copy, so more than 32 times its size (plus a little
/// for tiny blocks) is a lie, refused before the buffer grows for it.
const SNAPPY_EXPANSION_MAX: usize = 32;
const SNAPPY_SLACK_BYTES: usize = 64;

/// The 16-byte header snappy-java's SnappyOutputStream writes (magic, version
/// 1, compatible version 1); blocks follow, each with a 4-byte length. A
/// payload without it is one raw snappy block.
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

/// A concrete compression codec (what a topic's `compression.type` may demand).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    pub const ALL: [Codec; 5] = [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd];

    /// The codec's id in the low three attribute bits.
    pub fn id(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }

    /// The codec named by attribute bits 0-2, if it is one Kafka defines.
    pub fn from_id(id: u8) -> Option<Codec> {
        Some(match id {
            0 => Codec::None,
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            4 => Codec::Zstd,
            _ => return None,
        })
    }

    /// The topic-config spelling (`compression.type`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "uncompressed",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl From<Codec> for Compression {
    fn from(codec: Codec) -> Compression {
        match codec {
            Codec::None => Compression::None,
            Codec::Gzip => Compression::Gzip,
            Codec::Snappy => Compression::Snappy,
            Codec::Lz4 => Compression::Lz4,
            Codec::Zstd => Compression::Zstd,
        }
    }
}

impl TryFrom<Compression> for Codec {
    type Error = CompressionError;
    fn try_from(compression: Compression) -> Result<Codec, CompressionError> {
        match compression {
            Compression::None => Ok(Codec::None),
            Compression::Gzip => Ok(Codec::Gzip),
            Compression::Snappy => Ok(Codec::Snappy),
            Compression::Lz4 => Ok(Codec::Lz4),
            Compression::Zstd => Ok(Codec::Zstd),
            Compression::Unknown(id) => Err(CompressionError::UnknownCodec(id)),
        }
    }
}

#[derive(Debug, Error)]
pub enum CompressionError {
    #[error("unknown compression codec id {0} in batch attributes")]
    UnknownCodec(u8),
    #[error("batch of {available} bytes is shorter than its header says ({needed})")]
    Truncated { available: usize, needed: usize },
    #[error("corrupt {codec} payload: {reason}")]
    Corrupt { codec: Codec, reason: String },
    #[error("{codec} records section decompresses to more than {RECORDS_SECTION_BYTES_MAX} bytes")]
    TooLarge { codec: Codec },
    #[error("{codec} compression failed: {reason}")]
    CompressFailed { codec: Codec, reason: String },
}

fn corrupt(codec: Codec, reason: impl std::fmt::Display) -> CompressionError {
    CompressionError::Corrupt { codec, reason: reason.to_string() }
}

/// Decompresses records sections into one reused, bounded buffer.
#[derive(Default)]
pub struct Decompressor {
    /// Output goes here. Its length is how much of it is initialised (the
    /// most any batch since the last trim filled), not the current section's.
    buf: Vec<u8>,
    /// Kept from batch to batch: creating one allocates its buffers anew.
    zstd: Option<zstd::zstd_safe::DCtx<'static>>,
}

impl Decompressor {
    pub fn new() -> Decompressor {
        Decompressor::default()
    }

    /// Calls `f` with the uncompressed records section of `batch` (which
    /// starts with `header`, already validated): the batch's own bytes when
    /// it is uncompressed, else its payload decompressed, at most
    /// [`RECORDS_SECTION_BYTES_MAX`] bytes of it.
    pub fn with_records<R>(
        &mut self,
        header: &BatchHeader,
        batch: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, CompressionError> {
        let payload = batch
            .get(HEADER_BYTES..header.total_bytes())
            .ok_or(CompressionError::Truncated { available: batch.len(), needed: header.total_bytes() })?;
        let filled = match Codec::try_from(header.compression())? {
            Codec::None => return Ok(f(payload)),
            Codec::Gzip => read_bounded(&mut self.buf, Codec::Gzip, &mut flate2::bufread::MultiGzDecoder::new(payload)),
            Codec::Snappy => snappy(&mut self.buf, payload),
            Codec::Lz4 => lz4(&mut self.buf, payload),
            Codec::Zstd => match zstd_context(&mut self.zstd) {
                Ok(context) => {
                    let decoder = zstd::stream::raw::Decoder::with_context(context);
                    read_bounded(&mut self.buf, Codec::Zstd, &mut zstd::stream::zio::Reader::new(payload, decoder))
                }
                Err(e) => Err(e),
            },
        };
        let result = filled.map(|len| f(&self.buf[..len]));
        if self.buf.len() > DECOMPRESSED_KEPT_BYTES {
            // A section this large is rare (or hostile): give its memory back.
            *self = Decompressor::default();
        }
        result
    }
}

/// The kept zstd context, created on first use.
fn zstd_context<'a>(
    kept: &'a mut Option<zstd::zstd_safe::DCtx<'static>>,
) -> Result<&'a mut zstd::zstd_safe::DCtx<'static>, CompressionError> {
    if kept.is_none() {
        let mut context = zstd::zstd_safe::DCtx::try_create()
            .ok_or_else(|| corrupt(Codec::Zstd, "cannot allocate a decompression context"))?;
        context
            .set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(ZSTD_WINDOW_LOG_MAX))
            .map_err(|code| corrupt(Codec::Zstd, zstd::zstd_safe::get_error_name(code)))?;
        *kept = Some(context);
    }
    Ok(kept.as_mut().expect("created above"))
}

/// Reads `reader` to its end into `buf` (from its start); returns the bytes
/// read. Grows `buf` by doubling, never past one byte more than the bound:
/// reading that byte is how a section over the bound is told apart.
fn read_bounded(buf: &mut Vec<u8>, codec: Codec, reader: &mut impl Read) -> Result<usize, CompressionError> {
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            if filled > RECORDS_SECTION_BYTES_MAX {
                return Err(CompressionError::TooLarge { codec });
            }
            let grown = (filled * 2).clamp(DECOMPRESSED_FIRST_BYTES, RECORDS_SECTION_BYTES_MAX + 1);
            // Exactly: Vec's own growth would reserve up to twice the bound.
            buf.reserve_exact(grown - buf.len());
            buf.resize(grown, 0);
        }
        match reader.read(&mut buf[filled..]) {
            Ok(0) => return Ok(filled),
            Ok(n) => filled += n,
            Err(e) => return Err(corrupt(codec, e)),
        }
    }
}

/// One LZ4 frame (Kafka writes one per batch).
fn lz4(buf: &mut Vec<u8>, payload: &[u8]) -> Result<usize, CompressionError> {
    let mut decoder = lz4::Decoder::new(payload).map_err(|e| corrupt(Codec::Lz4, e))?;
    let filled = read_bounded(buf, Codec::Lz4, &mut decoder)?;
    // The decoder reads a frame cut short as a clean end: ask it.
    decoder.finish().1.map_err(|_| corrupt(Codec::Lz4, "the frame ends early"))?;
    Ok(filled)
}

/// Snappy, xerial-framed or one raw block.
fn snappy(buf: &mut Vec<u8>, payload: &[u8]) -> Result<usize, CompressionError> {
    let Some(mut rest) = payload.strip_prefix(XERIAL_HEADER.as_slice()) else {
        return snappy_block(buf, 0, payload);
    };
    let mut filled = 0;
    while !rest.is_empty() {
        let Some((length, tail)) = rest.split_first_chunk::<4>() else {
            return Err(corrupt(Codec::Snappy, "truncated block length"));
        };
        let length = u32::from_be_bytes(*length) as usize;
        let block = tail.get(..length).ok_or_else(|| corrupt(Codec::Snappy, "block runs past the payload"))?;
        filled = snappy_block(buf, filled, block)?;
        rest = &tail[length..];
    }
    Ok(filled)
}

/// Decompresses one raw snappy block into `buf` at `at`; returns where it ends.
fn snappy_block(buf: &mut Vec<u8>, at: usize, block: &[u8]) -> Result<usize, CompressionError> {
    let declared = snap::raw::decompress_len(block).map_err(|e| corrupt(Codec::Snappy, e))?;
    if declared > block.len().saturating_mul(SNAPPY_EXPANSION_MAX) + SNAPPY_SLACK_BYTES {
        let why = format!("block of {} bytes claims {declared} uncompressed bytes", block.len());
        return Err(corrupt(Codec::Snappy, why));
    }
    let end = at + declared;
    if end > RECORDS_SECTION_BYTES_MAX {
        return Err(CompressionError::TooLarge { codec: Codec::Snappy });
    }
    if buf.len() < end {
        let grown = (buf.len() * 2).clamp(DECOMPRESSED_FIRST_BYTES, RECORDS_SECTION_BYTES_MAX).max(end);
        buf.reserve_exact(grown - buf.len());
        buf.resize(grown, 0);
    }
    snap::raw::Decoder::new().decompress(block, &mut buf[at..end]).map_err(|e| corrupt(Codec::Snappy, e))?;
    Ok(end)
}

/// Appends the records section `records` compressed with `codec` to `out`.
pub fn compress(codec: Codec, records: &[u8], out: &mut Vec<u8>) -> Result<(), CompressionError> {
    let fill = |tmp: &mut BytesMut| -> anyhow::Result<()> {
        tmp.extend_from_slice(records);
        Ok(())
    };
    let result = match codec {
        Codec::None => {
            out.extend_from_slice(records);
            Ok(())
        }
        Codec::Gzip => <cmpr::Gzip as Compressor<Vec<u8>>>::compress(out, fill),
        Codec::Snappy => <cmpr::Snappy as Compressor<Vec<u8>>>::compress(out, fill),
        Codec::Lz4 => <cmpr::Lz4 as Compressor<Vec<u8>>>::compress(out, fill),
        Codec::Zstd => <cmpr::Zstd as Compressor<Vec<u8>>>::compress(out, fill),
    };
    result.map_err(|e| CompressionError::CompressFailed { codec, reason: format!("{e:#}") })
}

#[cfg(test)]
mod tests;
