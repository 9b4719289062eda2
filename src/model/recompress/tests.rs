use bytes::Bytes;
use kafka_protocol::records::{self as kr, RecordBatchDecoder, TimestampType};

use super::*;
use crate::model::batch::BatchHeader;
use crate::model::fixtures::{
    crate_codec, handmade_batch, patched, sample_records, source_batch, with_codec, with_payload, ATTRIBUTES_AT,
    BASE_OFFSET, BASE_SEQUENCE, LEADER_EPOCH, LOG_APPEND_TIME, PRODUCER_EPOCH, PRODUCER_ID,
};

fn recompress_once(batch: &[u8], codec: Codec) -> Result<Vec<u8>, RecompressError> {
    recompress(batch, codec, &mut Decompressor::new())
}

fn decode(batch: &[u8]) -> kr::RecordSet {
    RecordBatchDecoder::decode(&mut Bytes::copy_from_slice(batch)).unwrap()
}

/// The uncompressed records section of a batch.
fn records_section(batch: &[u8]) -> Vec<u8> {
    let header = BatchHeader::parse(batch).unwrap();
    Decompressor::new().with_records(&header, batch, <[u8]>::to_vec).unwrap()
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
            let out = recompress_once(&source, target).unwrap_or_else(|e| panic!("{what}: {e}"));
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

#[test]
fn records_section_survives_byte_for_byte() {
    let original = handmade_batch();
    batch::validate(&original).unwrap();
    for codec in Codec::ALL {
        let compressed = recompress_once(&original, codec).unwrap();
        batch::validate(&compressed).unwrap();
        assert_eq!(recompress_once(&compressed, Codec::None).unwrap(), original, "via {codec}");
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
            let compressed = recompress_once(&original, codec).unwrap();
            assert_eq!(batch::validate(&compressed).unwrap().compression(), codec.into());
            for back in Codec::ALL {
                let again = recompress_once(&compressed, back).unwrap();
                assert_eq!(records_section(&again), records_section(&original), "{codec} -> {back}");
            }
            assert_eq!(recompress_once(&compressed, Codec::None).unwrap(), original);
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
    let snappy = with_codec(with_payload(&original, &raw), Codec::Snappy);
    assert_eq!(recompress_once(&snappy, Codec::None).unwrap(), original);
    let zstd = recompress_once(&snappy, Codec::Zstd).unwrap();
    assert_eq!(recompress_once(&zstd, Codec::None).unwrap(), original);
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
        for (name, bad) in [("garbage", garbage), ("truncated", truncated), ("empty", empty), ("flipped", flipped)] {
            batch::validate(&bad).unwrap(); // the CRC is fine: the payload is not
            for target in Codec::ALL {
                let result = recompress_once(&bad, target);
                assert!(result.is_err(), "{name} {source_codec} -> {target} gave Ok");
            }
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
    let err = recompress_once(&miscounted, Codec::Gzip).unwrap_err();
    assert!(matches!(err, RecompressError::Record(RecordError { index: 3, .. })), "{err}");

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
            let err = recompress_once(&bad, target).unwrap_err();
            assert!(matches!(err, RecompressError::Record(RecordError { index: 0 | 3, .. })), "{err}");
        }
    }

    // The same corruption inside a compressed batch is caught after decompression.
    let mut bad_key = section.clone();
    bad_key[4] = 0x7e;
    let mut lz4_payload = Vec::new();
    compression::compress(Codec::Lz4, &bad_key, &mut lz4_payload).unwrap();
    let bad_lz4 = with_codec(with_payload(&good, &lz4_payload), Codec::Lz4);
    assert!(matches!(recompress_once(&bad_lz4, Codec::Gzip), Err(RecompressError::Record(_))));
}

#[test]
fn invalid_batches_are_errors() {
    let good = source_batch(Codec::Gzip);
    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    assert!(matches!(recompress_once(&bad_crc, Codec::Zstd), Err(RecompressError::InvalidBatch(_))));
    assert!(matches!(recompress_once(&good[..40], Codec::Zstd), Err(RecompressError::InvalidBatch(_))));

    let unknown = patched(good, |b| b[ATTRIBUTES_AT + 1] = (b[ATTRIBUTES_AT + 1] & !0x7) | 5);
    assert!(matches!(
        recompress_once(&unknown, Codec::Zstd),
        Err(RecompressError::Compression(CompressionError::UnknownCodec(5)))
    ));
}
