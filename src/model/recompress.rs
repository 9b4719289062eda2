//! Topic-level `compression.type`: re-encoding a produced batch with the
//! topic's codec, as Kafka's broker does when the topic names a specific codec
//! and the producer used another one.
//!
//! Only the codec bits of `attributes`, the records section, `batch_length`
//! and the CRC change. Every other header field (base offset, partition leader
//! epoch, producer id/epoch, base sequence, base and max timestamps, timestamp
//! type, transactional/control/delete-horizon bits, last offset delta, record
//! count) is copied verbatim, and the *uncompressed* records section is carried
//! over byte for byte: records are identical whatever the codec, so they are
//! never decoded into owned values, only walked (varints and lengths) to make
//! sure the payload is well formed before the broker stores it.
//!
//! The codecs are the kafka-protocol crate's (`compression` module): gzip, the
//! LZ4 *frame* format, zstd, and snappy written xerial-framed (as the Java
//! client does) and read either xerial-framed or raw.
//!
//! This is a cold path (only topics that demand a codec), but it allocates per
//! batch, never per record: one buffer for the decompressed records (handed to
//! the compressor without a copy), one for the output.

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{self as cmpr, Compressor, Decompressor};
use thiserror::Error;

use super::batch::{self, BatchError, Compression, HEADER_BYTES, LOG_OVERHEAD};

/// Offset of the CRC32C field, and of the bytes it covers.
const CRC_AT: usize = 17;
const CRC_START: usize = 21;
/// Offset of the 16-bit attributes field.
const ATTRIBUTES_AT: usize = 21;
/// Attribute bits 0-2: the codec.
const CODEC_MASK: i16 = 0x7;

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
    type Error = RecompressError;
    fn try_from(compression: Compression) -> Result<Codec, RecompressError> {
        match compression {
            Compression::None => Ok(Codec::None),
            Compression::Gzip => Ok(Codec::Gzip),
            Compression::Snappy => Ok(Codec::Snappy),
            Compression::Lz4 => Ok(Codec::Lz4),
            Compression::Zstd => Ok(Codec::Zstd),
            Compression::Unknown(id) => Err(RecompressError::UnknownCodec(id)),
        }
    }
}

/// Parses a topic's `compression.type` value: `None` for `producer` (keep
/// batches as they came). Kafka's values are `producer`, `uncompressed`,
/// `gzip`, `snappy`, `lz4` and `zstd` (matched ignoring ASCII case). Any other
/// value also yields `None` (no recompression); config validation should use
/// [`is_valid_compression_type`] to refuse it up front.
pub fn target_codec(compression_type: &str) -> Option<Codec> {
    Codec::ALL.into_iter().find(|c| compression_type.eq_ignore_ascii_case(c.name()))
}

/// Whether `value` is an acceptable topic `compression.type`.
pub fn is_valid_compression_type(value: &str) -> bool {
    value.eq_ignore_ascii_case("producer") || target_codec(value).is_some()
}

/// Why a batch could not be recompressed. The produce path answers every
/// variant with CORRUPT_MESSAGE.
#[derive(Debug, Error)]
pub enum RecompressError {
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("unknown compression codec id {0} in batch attributes")]
    UnknownCodec(u8),
    #[error("corrupt {codec} payload: {reason}")]
    CorruptPayload { codec: Codec, reason: String },
    #[error("corrupt record #{index} in the records section: {reason}")]
    CorruptRecord { index: usize, reason: &'static str },
    #[error("batch header says {expected} records but the records section holds {found}")]
    RecordCount { expected: i32, found: usize },
    #[error("{codec} compression failed: {reason}")]
    CompressFailed { codec: Codec, reason: String },
    #[error("recompressed batch would be {0} bytes, more than a batch can hold")]
    TooLarge(usize),
}

/// Re-encodes one batch (`batch` starts with exactly one RecordBatch v2; bytes
/// after it are ignored) with `codec`. The batch is validated first (CRC,
/// magic, count), its records section is decompressed and walked, then
/// compressed with `codec`; the header is copied with only the codec bits,
/// `batch_length` and the CRC changed. If the batch already uses `codec` it is
/// still checked, and returned unchanged.
pub fn recompress(batch: &[u8], codec: Codec) -> Result<Vec<u8>, RecompressError> {
    let header = batch::validate(batch)?;
    let batch = &batch[..header.total_bytes()];
    let source = Codec::try_from(header.compression())?;
    let payload = &batch[HEADER_BYTES..];

    let decompressed = match source {
        Codec::None => None,
        codec => Some(decompress(codec, payload)?),
    };
    let records: &[u8] = decompressed.as_deref().unwrap_or(payload);
    walk_records(records, header.records_count)?;

    if source == codec {
        return Ok(batch.to_vec());
    }

    let estimate = match codec {
        Codec::None => records.len(),
        _ => records.len() / 2 + 64,
    };
    let mut out = Vec::with_capacity(HEADER_BYTES + estimate);
    out.extend_from_slice(&batch[..HEADER_BYTES]);
    let attributes = (header.attributes & !CODEC_MASK) | codec.id() as i16;
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());

    match codec {
        Codec::None => out.extend_from_slice(records),
        codec => {
            // The crate's compressors want the uncompressed bytes in a BytesMut;
            // a freshly decompressed buffer converts without a copy.
            let mut uncompressed = match decompressed {
                Some(bytes) => BytesMut::from(bytes),
                None => BytesMut::from(payload),
            };
            compress_into(codec, &mut uncompressed, &mut out)?;
        }
    }

    let batch_length = out.len() - LOG_OVERHEAD;
    if batch_length > i32::MAX as usize {
        return Err(RecompressError::TooLarge(out.len()));
    }
    out[8..12].copy_from_slice(&(batch_length as i32).to_be_bytes());
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    debug_assert!(batch::validate(&out).is_ok());
    Ok(out)
}

/// The uncompressed records section of a validated batch: borrowed when the
/// batch is uncompressed, decompressed otherwise.
pub fn records_section<'a>(
    header: &batch::BatchHeader,
    batch: &'a [u8],
) -> Result<std::borrow::Cow<'a, [u8]>, RecompressError> {
    let payload = &batch[HEADER_BYTES..header.total_bytes()];
    match Codec::try_from(header.compression())? {
        Codec::None => Ok(std::borrow::Cow::Borrowed(payload)),
        codec => Ok(std::borrow::Cow::Owned(Vec::from(decompress(codec, payload)?))),
    }
}

/// Appends the records section `records` compressed with `codec` to `out`.
pub fn compress_records(codec: Codec, records: &[u8], out: &mut Vec<u8>) -> Result<(), RecompressError> {
    match codec {
        Codec::None => {
            out.extend_from_slice(records);
            Ok(())
        }
        codec => compress_into(codec, &mut BytesMut::from(records), out),
    }
}

/// Decompresses a records section compressed with `codec` (not `None`).
fn decompress(codec: Codec, payload: &[u8]) -> Result<Bytes, RecompressError> {
    fn take(buf: &mut Bytes) -> anyhow::Result<Bytes> {
        Ok(std::mem::take(buf))
    }
    let mut input = payload;
    let result = match codec {
        Codec::None => return Ok(Bytes::copy_from_slice(payload)),
        Codec::Gzip => <cmpr::Gzip as Decompressor<&[u8]>>::decompress(&mut input, take),
        Codec::Snappy => {
            check_snappy_lengths(payload)?;
            <cmpr::Snappy as Decompressor<&[u8]>>::decompress(&mut input, take)
        }
        Codec::Lz4 => <cmpr::Lz4 as Decompressor<&[u8]>>::decompress(&mut input, take),
        Codec::Zstd => <cmpr::Zstd as Decompressor<&[u8]>>::decompress(&mut input, take),
    };
    result.map_err(|e| RecompressError::CorruptPayload { codec, reason: format!("{e:#}") })
}

/// Appends `uncompressed` compressed with `codec` (not `None`) to `out`.
fn compress_into(codec: Codec, uncompressed: &mut BytesMut, out: &mut Vec<u8>) -> Result<(), RecompressError> {
    let fill = |tmp: &mut BytesMut| -> anyhow::Result<()> {
        std::mem::swap(tmp, uncompressed);
        Ok(())
    };
    let result = match codec {
        Codec::None => {
            out.extend_from_slice(uncompressed);
            Ok(())
        }
        Codec::Gzip => <cmpr::Gzip as Compressor<Vec<u8>>>::compress(out, fill),
        Codec::Snappy => <cmpr::Snappy as Compressor<Vec<u8>>>::compress(out, fill),
        Codec::Lz4 => <cmpr::Lz4 as Compressor<Vec<u8>>>::compress(out, fill),
        Codec::Zstd => <cmpr::Zstd as Compressor<Vec<u8>>>::compress(out, fill),
    };
    result.map_err(|e| RecompressError::CompressFailed { codec, reason: format!("{e:#}") })
}

/// The 16-byte header snappy-java's SnappyOutputStream writes (magic, version
/// 1, compatible version 1); the crate reads blocks after exactly this and
/// falls back to raw snappy otherwise.
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

/// Snappy states each block's uncompressed length up front and the decoder
/// allocates (and zeroes) that much before decoding: refuse lengths no snappy
/// block of that size can produce (its best ratio is 64 bytes from a 3-byte
/// copy), so a few bytes cannot make the broker allocate gigabytes.
fn check_snappy_lengths(payload: &[u8]) -> Result<(), RecompressError> {
    fn check_block(block: &[u8]) -> Result<(), RecompressError> {
        let mut declared: u64 = 0;
        for (i, &b) in block.iter().take(5).enumerate() {
            declared |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                let bound = block.len() as u64 * 32 + 64;
                if declared > bound {
                    return Err(RecompressError::CorruptPayload {
                        codec: Codec::Snappy,
                        reason: format!("block of {} bytes claims {declared} uncompressed bytes", block.len()),
                    });
                }
                return Ok(());
            }
        }
        Ok(()) // malformed length: the decoder reports it
    }
    let Some(mut rest) = payload.strip_prefix(XERIAL_HEADER.as_slice()) else {
        return check_block(payload);
    };
    while rest.len() >= 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let Some(block) = rest[4..].get(..len) else {
            return Ok(()); // truncated: the decoder reports it
        };
        check_block(block)?;
        rest = &rest[4 + len..];
    }
    Ok(())
}

/// A bounds-checked reader over a records section.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if n > self.buf.len() {
            return Err("length runs past the end of its record");
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// An unsigned LEB128 value of at most `max_bytes` bytes.
    fn unsigned(&mut self, max_bytes: usize) -> Result<u64, &'static str> {
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let Some((&b, tail)) = self.buf.split_first() else {
                return Err("varint runs past the end of its record");
            };
            self.buf = tail;
            value |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint is too long")
    }

    /// A zigzag varint (Kafka's 32-bit varint).
    fn varint(&mut self) -> Result<i32, &'static str> {
        let raw = self.unsigned(5)?;
        let raw = u32::try_from(raw).map_err(|_| "varint overflows 32 bits")?;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    /// A zigzag varlong (Kafka's 64-bit varint).
    fn varlong(&mut self) -> Result<i64, &'static str> {
        let raw = self.unsigned(10)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// A varint length followed by that many bytes; -1 means null.
    fn nullable_bytes(&mut self) -> Result<(), &'static str> {
        match self.varint()? {
            -1 => Ok(()),
            n if n < 0 => Err("negative length"),
            n => self.take(n as usize).map(drop),
        }
    }
}

/// Checks that `records` holds exactly `expected` well-formed v2 records
/// (length-prefixed; attributes, timestamp delta, offset delta, key, value,
/// headers, nothing left over) and nothing after them. Allocates nothing.
fn walk_records(records: &[u8], expected: i32) -> Result<(), RecompressError> {
    let mut reader = Reader { buf: records };
    let mut index = 0usize;
    while !reader.buf.is_empty() {
        let corrupt = |reason| RecompressError::CorruptRecord { index, reason };
        let length = reader.varint().map_err(corrupt)?;
        if length < 0 {
            return Err(corrupt("negative record length"));
        }
        let body = reader.take(length as usize).map_err(|_| corrupt("record length runs past the records section"))?;
        walk_record(body).map_err(corrupt)?;
        index += 1;
    }
    if index as i64 != expected as i64 {
        return Err(RecompressError::RecordCount { expected, found: index });
    }
    Ok(())
}

fn walk_record(body: &[u8]) -> Result<(), &'static str> {
    let mut r = Reader { buf: body };
    r.take(1)?; // attributes (unused)
    r.varlong()?; // timestamp delta
    r.varint()?; // offset delta
    r.nullable_bytes()?; // key
    r.nullable_bytes()?; // value
    let headers = r.varint()?;
    if headers < 0 {
        return Err("negative header count");
    }
    for _ in 0..headers {
        let key_len = r.varint()?;
        if key_len < 0 {
            return Err("negative header key length");
        }
        r.take(key_len as usize)?;
        r.nullable_bytes()?; // header value
    }
    if !r.buf.is_empty() {
        return Err("bytes left over after the record's headers");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::batch::BatchHeader;
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        self as kr, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    const BASE_OFFSET: i64 = 1000;
    const PRODUCER_ID: i64 = 4242;
    const PRODUCER_EPOCH: i16 = 7;
    const BASE_SEQUENCE: i32 = 100;
    const LEADER_EPOCH: i32 = 9;
    /// Written over max_timestamp, as a LogAppendTime batch would carry it.
    const LOG_APPEND_TIME: i64 = 1_700_000_123_456;

    fn crate_codec(codec: Codec) -> kr::Compression {
        match codec {
            Codec::None => kr::Compression::None,
            Codec::Gzip => kr::Compression::Gzip,
            Codec::Snappy => kr::Compression::Snappy,
            Codec::Lz4 => kr::Compression::Lz4,
            Codec::Zstd => kr::Compression::Zstd,
        }
    }

    /// Records with keys (one null), values (one null, one large), headers
    /// (one with a null value, one record with none) and distinct, unordered
    /// timestamps, from an idempotent transactional producer.
    fn sample_records(timestamp_type: TimestampType) -> Vec<Record> {
        let timestamps = [5000i64, 4990, 5020, 5010, 5030];
        (0..timestamps.len())
            .map(|i| {
                let mut headers = IndexMap::new();
                if i != 2 {
                    headers.insert(StrBytes::from_static_str("trace"), Some(Bytes::from(format!("t-{i}"))));
                    headers.insert(StrBytes::from_static_str("empty"), None);
                }
                Record {
                    transactional: true,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: LEADER_EPOCH,
                    producer_id: PRODUCER_ID,
                    producer_epoch: PRODUCER_EPOCH,
                    timestamp_type,
                    offset: BASE_OFFSET + i as i64,
                    sequence: BASE_SEQUENCE + i as i32,
                    timestamp: timestamps[i],
                    key: (i != 1).then(|| Bytes::from(format!("key-{i}"))),
                    value: match i {
                        3 => None,
                        4 => Some(Bytes::from("payload ".repeat(2000))),
                        _ => Some(Bytes::from(format!("value-{i}"))),
                    },
                    headers,
                }
            })
            .collect()
    }

    /// Rewrites bytes of a batch, then recomputes batch_length and the CRC.
    fn patched(mut batch: Vec<u8>, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        edit(&mut batch);
        let length = (batch.len() - LOG_OVERHEAD) as i32;
        batch[8..12].copy_from_slice(&length.to_be_bytes());
        let crc = crc32c::crc32c(&batch[CRC_START..]);
        batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        batch
    }

    /// The sample records as one batch compressed by the crate's encoder (not
    /// by the code under test), marked LogAppendTime with a max timestamp
    /// that no record carries, as a broker-stamped batch would be.
    fn source_batch(codec: Codec) -> Vec<u8> {
        let records = sample_records(TimestampType::Creation);
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions { version: 2, compression: crate_codec(codec) };
        RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
        patched(buf.to_vec(), |b| {
            b[ATTRIBUTES_AT + 1] |= 0x08; // timestamp type: LogAppendTime
            b[35..43].copy_from_slice(&LOG_APPEND_TIME.to_be_bytes());
        })
    }

    fn decode(batch: &[u8]) -> kr::RecordSet {
        RecordBatchDecoder::decode(&mut Bytes::copy_from_slice(batch)).unwrap()
    }

    /// The uncompressed records section of a batch.
    fn records_section(batch: &[u8]) -> Vec<u8> {
        let header = BatchHeader::parse(batch).unwrap();
        let codec = Codec::try_from(header.compression()).unwrap();
        decompress(codec, &batch[HEADER_BYTES..header.total_bytes()]).unwrap().to_vec()
    }

    /// Every header field but the codec bits, batch_length and the CRC.
    fn assert_same_header_but_codec(a: &BatchHeader, b: &BatchHeader) {
        assert_eq!(a.base_offset, b.base_offset);
        assert_eq!(a.magic, b.magic);
        assert_eq!(a.attributes & !CODEC_MASK, b.attributes & !CODEC_MASK);
        assert_eq!(a.last_offset_delta, b.last_offset_delta);
        assert_eq!(a.base_timestamp, b.base_timestamp);
        assert_eq!(a.max_timestamp, b.max_timestamp);
        assert_eq!(a.producer_id, b.producer_id);
        assert_eq!(a.producer_epoch, b.producer_epoch);
        assert_eq!(a.base_sequence, b.base_sequence);
        assert_eq!(a.records_count, b.records_count);
    }

    fn leader_epoch(batch: &[u8]) -> i32 {
        i32::from_be_bytes(batch[12..16].try_into().unwrap())
    }

    #[test]
    fn target_codec_parses_topic_values() {
        assert_eq!(target_codec("producer"), None);
        assert_eq!(target_codec("uncompressed"), Some(Codec::None));
        assert_eq!(target_codec("gzip"), Some(Codec::Gzip));
        assert_eq!(target_codec("snappy"), Some(Codec::Snappy));
        assert_eq!(target_codec("lz4"), Some(Codec::Lz4));
        assert_eq!(target_codec("zstd"), Some(Codec::Zstd));
        assert_eq!(target_codec("ZSTD"), Some(Codec::Zstd));
        assert_eq!(target_codec("brotli"), None);
        assert!(is_valid_compression_type("producer"));
        assert!(is_valid_compression_type("lz4"));
        assert!(!is_valid_compression_type("none"));
        for codec in Codec::ALL {
            assert_eq!(Codec::from_id(codec.id()), Some(codec));
            assert_eq!(target_codec(codec.name()), Some(codec));
        }
    }

    #[test]
    fn every_source_codec_to_every_target_codec_keeps_the_batch() {
        let expected = sample_records(TimestampType::LogAppend);
        for source_codec in Codec::ALL {
            let source = source_batch(source_codec);
            let source_header = batch::validate(&source).unwrap();
            assert_eq!(source_header.compression(), source_codec.into());
            assert_eq!(decode(&source).records, expected, "crate encoder fixture ({source_codec})");
            let section = records_section(&source);

            for target in Codec::ALL {
                let what = format!("{source_codec} -> {target}");
                let out = recompress(&source, target).unwrap_or_else(|e| panic!("{what}: {e}"));
                let header = batch::validate(&out).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(header.total_bytes(), out.len(), "{what}");
                assert_eq!(header.compression(), target.into(), "{what}");
                assert_same_header_but_codec(&source_header, &header);
                assert_eq!(header.base_offset, BASE_OFFSET, "{what}");
                assert_eq!(header.producer_id, PRODUCER_ID, "{what}");
                assert_eq!(header.producer_epoch, PRODUCER_EPOCH, "{what}");
                assert_eq!(header.base_sequence, BASE_SEQUENCE, "{what}");
                assert_eq!(header.max_timestamp, LOG_APPEND_TIME, "{what}");
                assert!(header.is_transactional(), "{what}");
                assert_eq!(leader_epoch(&out), LEADER_EPOCH, "{what}");

                let decoded = decode(&out);
                assert_eq!(decoded.compression, crate_codec(target), "{what}");
                assert_eq!(decoded.records, expected, "{what}");
                assert_eq!(records_section(&out), section, "{what}: records section bytes");
                if target == source_codec {
                    assert_eq!(out, source, "{what}: same codec leaves the batch alone");
                }
            }
        }
    }

    /// A batch built by hand: duplicate header keys (which the crate's
    /// IndexMap-based Record cannot express) and a non-zero record attributes
    /// byte must survive too, since the records section is carried verbatim.
    fn handmade_batch() -> Vec<u8> {
        fn varint(out: &mut Vec<u8>, v: i64) {
            let mut z = ((v << 1) ^ (v >> 63)) as u64;
            while z >= 0x80 {
                out.push(z as u8 | 0x80);
                z >>= 7;
            }
            out.push(z as u8);
        }
        let mut section = Vec::new();
        for i in 0..3i64 {
            let mut body = vec![if i == 1 { 0x40 } else { 0 }];
            varint(&mut body, -i * 7); // timestamp delta
            varint(&mut body, i); // offset delta
            varint(&mut body, 1);
            body.push(b'k');
            varint(&mut body, 3);
            body.extend_from_slice(b"v-");
            body.push(b'0' + i as u8);
            varint(&mut body, 2); // two headers, same key
            for value in [&b"a"[..], &b"b"[..]] {
                varint(&mut body, 3);
                body.extend_from_slice(b"dup");
                varint(&mut body, value.len() as i64);
                body.extend_from_slice(value);
            }
            varint(&mut section, body.len() as i64);
            section.extend_from_slice(&body);
        }
        let template = batch::build(77, &[b"a", b"b", b"c"]);
        patched(template, |b| {
            b.truncate(HEADER_BYTES);
            b.extend_from_slice(&section);
        })
    }

    #[test]
    fn records_section_survives_byte_for_byte() {
        let original = handmade_batch();
        batch::validate(&original).unwrap();
        for codec in Codec::ALL {
            let compressed = recompress(&original, codec).unwrap();
            batch::validate(&compressed).unwrap();
            assert_eq!(recompress(&compressed, Codec::None).unwrap(), original, "via {codec}");
        }
    }

    #[test]
    fn empty_and_multi_block_batches_round_trip() {
        let empty = batch::build(5, &[]);
        let big_value = vec![b'x'; 100_000]; // several snappy blocks, lz4 blocks
        let noise: Vec<u8> = (0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let big = batch::build(5, &[&big_value, &noise, b"tail"]);
        for original in [empty, big] {
            for codec in Codec::ALL {
                let compressed = recompress(&original, codec).unwrap();
                assert_eq!(batch::validate(&compressed).unwrap().compression(), codec.into());
                for back in Codec::ALL {
                    let again = recompress(&compressed, back).unwrap();
                    assert_eq!(records_section(&again), records_section(&original), "{codec} -> {back}");
                }
                assert_eq!(recompress(&compressed, Codec::None).unwrap(), original);
            }
        }
    }

    /// Producers may send snappy without the xerial framing; the crate reads it.
    #[test]
    fn raw_snappy_input_is_accepted() {
        let original = handmade_batch();
        let section = &original[HEADER_BYTES..];
        // Raw snappy: the uncompressed length, then literals of up to 60 bytes.
        let mut raw = Vec::new();
        let mut n = section.len();
        while n >= 0x80 {
            raw.push(n as u8 | 0x80);
            n >>= 7;
        }
        raw.push(n as u8);
        for chunk in section.chunks(60) {
            raw.push(((chunk.len() - 1) as u8) << 2);
            raw.extend_from_slice(chunk);
        }
        let snappy = patched(original.clone(), |b| {
            b[ATTRIBUTES_AT + 1] |= Codec::Snappy.id();
            b.truncate(HEADER_BYTES);
            b.extend_from_slice(&raw);
        });
        assert_eq!(recompress(&snappy, Codec::None).unwrap(), original);
        let zstd = recompress(&snappy, Codec::Zstd).unwrap();
        assert_eq!(recompress(&zstd, Codec::None).unwrap(), original);
    }

    fn with_payload(batch: &[u8], payload: &[u8]) -> Vec<u8> {
        patched(batch.to_vec(), |b| {
            b.truncate(HEADER_BYTES);
            b.extend_from_slice(payload);
        })
    }

    #[test]
    fn corrupt_compressed_payloads_are_errors() {
        for source_codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let good = source_batch(source_codec);
            let payload = &good[HEADER_BYTES..];
            let garbage = with_payload(&good, b"this is not a compressed payload, not at all, really");
            let truncated = with_payload(&good, &payload[..payload.len() / 2]);
            let empty = with_payload(&good, b"");
            let mut flipped_payload = payload.to_vec();
            for b in flipped_payload.iter_mut().skip(20).step_by(7) {
                *b ^= 0x5a;
            }
            let flipped = with_payload(&good, &flipped_payload);
            for (name, bad) in [("garbage", garbage), ("truncated", truncated), ("empty", empty), ("flipped", flipped)]
            {
                batch::validate(&bad).unwrap(); // the CRC is fine: the payload is not
                for target in Codec::ALL {
                    let result = recompress(&bad, target);
                    assert!(result.is_err(), "{name} {source_codec} -> {target} gave Ok");
                }
            }
        }
    }

    #[test]
    fn snappy_length_bombs_are_refused_before_allocating() {
        let good = source_batch(Codec::Snappy);
        let raw_bomb = with_payload(&good, b"\xff\xff\xff\xff\x0f\x00\x00");
        let mut framed = XERIAL_HEADER.to_vec();
        framed.extend_from_slice(&7u32.to_be_bytes());
        framed.extend_from_slice(b"\xff\xff\xff\xff\x0f\x00\x00");
        let framed_bomb = with_payload(&good, &framed);
        for bomb in [raw_bomb, framed_bomb] {
            let err = recompress(&bomb, Codec::None).unwrap_err();
            match err {
                RecompressError::CorruptPayload { codec: Codec::Snappy, reason } => {
                    assert!(reason.contains("claims 4294967295"), "{reason}")
                }
                other => panic!("{other}"),
            }
        }
    }

    #[test]
    fn malformed_records_sections_are_errors() {
        let good = handmade_batch();
        let section = good[HEADER_BYTES..].to_vec();

        // A record count the section does not hold (header kept consistent).
        let miscounted = patched(good.clone(), |b| {
            b[23..27].copy_from_slice(&3i32.to_be_bytes()); // last_offset_delta
            b[57..61].copy_from_slice(&4i32.to_be_bytes()); // records_count
        });
        let err = recompress(&miscounted, Codec::Gzip).unwrap_err();
        assert!(matches!(err, RecompressError::RecordCount { expected: 4, found: 3 }), "{err}");

        // Trailing garbage, a record length past the end, a key length past its record.
        let mut trailing = section.clone();
        trailing.push(0x01);
        let mut overlong = section.clone();
        overlong[0] = 0x7e;
        let mut bad_key = section.clone();
        bad_key[4] = 0x7e; // key length of the first record (after len, attrs, ts, offset)
        for bad in [trailing, overlong, bad_key] {
            let bad = with_payload(&good, &bad);
            for target in Codec::ALL {
                let err = recompress(&bad, target).unwrap_err();
                assert!(matches!(err, RecompressError::CorruptRecord { index: 0 | 3, .. }), "{err}");
            }
        }

        // The same corruption inside a compressed batch is caught after decompression.
        let mut bad_key = section.clone();
        bad_key[4] = 0x7e;
        let mut lz4_payload = Vec::new();
        compress_into(Codec::Lz4, &mut BytesMut::from(&bad_key[..]), &mut lz4_payload).unwrap();
        let bad_lz4 = patched(with_payload(&good, &lz4_payload), |b| b[ATTRIBUTES_AT + 1] |= Codec::Lz4.id());
        assert!(matches!(recompress(&bad_lz4, Codec::Gzip), Err(RecompressError::CorruptRecord { .. })));
    }

    #[test]
    fn invalid_batches_are_errors() {
        let good = source_batch(Codec::Gzip);
        let mut bad_crc = good.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 1;
        assert!(matches!(recompress(&bad_crc, Codec::Zstd), Err(RecompressError::InvalidBatch(_))));
        assert!(matches!(recompress(&good[..40], Codec::Zstd), Err(RecompressError::InvalidBatch(_))));

        let unknown = patched(good, |b| b[ATTRIBUTES_AT + 1] = (b[ATTRIBUTES_AT + 1] & !0x7) | 5);
        assert!(matches!(recompress(&unknown, Codec::Zstd), Err(RecompressError::UnknownCodec(5))));
    }
}
