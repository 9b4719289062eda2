use std::time::{Duration, Instant};

use super::*;
use crate::model::batch;
use crate::model::fixtures::*;

fn section_of(decompressor: &mut Decompressor, batch: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let header = batch::validate(batch).unwrap();
    decompressor.with_records(&header, batch, <[u8]>::to_vec)
}

/// A batch whose payload is `section` compressed with `codec`.
fn compressed(section: &[u8], codec: Codec) -> Vec<u8> {
    let mut payload = Vec::new();
    compress(codec, section, &mut payload).unwrap();
    with_codec(with_payload(&batch::build(1, &[b"x"]), &payload), codec)
}

/// Bytes that compress well but not trivially.
fn text(bytes: usize) -> Vec<u8> {
    (0..bytes).map(|i| b"the quick brown fox jumps over the lazy dog "[(i * 7 + i / 1000) % 44]).collect()
}

#[test]
fn every_codec_round_trips_through_the_reused_buffer() {
    let mut decompressor = Decompressor::new();
    // Small, larger than the first allocation, then small again: a reused
    // buffer must never hand out what an earlier, larger section left in it.
    for bytes in [300, 700_000, 50] {
        let section = text(bytes);
        for codec in Codec::ALL {
            let batch = compressed(&section, codec);
            assert_eq!(section_of(&mut decompressor, &batch).unwrap(), section, "{codec}, {bytes} bytes");
        }
    }
    // Batches compressed by the kafka-protocol crate's encoder, as clients do.
    for codec in Codec::ALL {
        let batch = source_batch(codec);
        let section = section_of(&mut decompressor, &batch).unwrap();
        assert_eq!(section, section_of(&mut decompressor, &source_batch(Codec::None)).unwrap(), "{codec}");
    }
}

#[test]
fn a_zstd_rle_bomb_stops_at_the_bound_and_gives_its_memory_back() {
    // Issue 13's bomb: 64 KB that decompress to 2 GiB.
    let bomb = zstd_rle_bomb(16_000);
    assert!(bomb.len() < 65_000, "{}", bomb.len());
    let batch = with_codec(with_payload(&batch::build(1, &[b"x"]), &bomb), Codec::Zstd);
    let mut decompressor = Decompressor::new();
    let started = Instant::now();
    let err = section_of(&mut decompressor, &batch).unwrap_err();
    assert!(matches!(err, CompressionError::TooLarge { codec: Codec::Zstd }), "{err}");
    // 32 MiB of output, not 2 GiB: well under a second even in a debug build.
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(decompressor.buf.is_empty() && decompressor.zstd.is_none(), "the bomb's buffers are freed");

    // The bound is inclusive: exactly RECORDS_SECTION_BYTES_MAX decompresses, one block more does not.
    let blocks_at_bound = RECORDS_SECTION_BYTES_MAX / (128 << 10);
    let at_bound = with_codec(with_payload(&batch::build(1, &[b"x"]), &zstd_rle_bomb(blocks_at_bound)), Codec::Zstd);
    let header = batch::validate(&at_bound).unwrap();
    let len = decompressor.with_records(&header, &at_bound, |s| s.len()).unwrap();
    assert_eq!(len, RECORDS_SECTION_BYTES_MAX);
    let past = with_codec(with_payload(&batch::build(1, &[b"x"]), &zstd_rle_bomb(blocks_at_bound + 1)), Codec::Zstd);
    assert!(matches!(section_of(&mut decompressor, &past), Err(CompressionError::TooLarge { .. })));
}

#[test]
fn every_codec_stops_at_the_bound() {
    // 40 MiB of zeros: kilobytes to megabytes compressed, past the bound decompressed.
    let zeros = vec![0u8; 40 << 20];
    let mut decompressor = Decompressor::new();
    for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
        let batch = compressed(&zeros, codec);
        assert!(batch.len() < 4 << 20, "{codec}: {} bytes", batch.len());
        let err = section_of(&mut decompressor, &batch).unwrap_err();
        assert!(matches!(err, CompressionError::TooLarge { codec: c } if c == codec), "{codec}: {err}");
    }
}

#[test]
fn a_reader_without_end_fills_the_bound_plus_one_byte_and_no_more() {
    let mut buf = Vec::new();
    let err = read_bounded(&mut buf, Codec::Gzip, &mut std::io::repeat(7)).unwrap_err();
    assert!(matches!(err, CompressionError::TooLarge { .. }), "{err}");
    assert_eq!(buf.len(), RECORDS_SECTION_BYTES_MAX + 1);
    assert!(buf.capacity() <= RECORDS_SECTION_BYTES_MAX + 1, "capacity {}", buf.capacity());
}

#[test]
fn a_zstd_window_past_kafkas_limit_is_refused() {
    let mut frame = zstd_rle_bomb(1);
    frame[5] = 21 << 3; // window 2^(10 + 21) = 2 GiB
    let batch = with_codec(with_payload(&batch::build(1, &[b"x"]), &frame), Codec::Zstd);
    let err = section_of(&mut Decompressor::new(), &batch).unwrap_err();
    assert!(matches!(err, CompressionError::Corrupt { codec: Codec::Zstd, .. }), "{err}");
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
        match section_of(&mut Decompressor::new(), &bomb).unwrap_err() {
            CompressionError::Corrupt { codec: Codec::Snappy, reason } => {
                assert!(reason.contains("claims 4294967295"), "{reason}")
            }
            other => panic!("{other}"),
        }
    }
}

#[test]
fn truncated_and_garbage_payloads_are_corrupt() {
    let section = text(100_000);
    for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
        let good = compressed(&section, codec);
        let payload = &good[HEADER_BYTES..];
        let truncated = with_payload(&good, &payload[..payload.len() / 2]);
        let garbage = with_payload(&good, b"this is not a compressed payload, not at all, really");
        for bad in [truncated, garbage] {
            let err = section_of(&mut Decompressor::new(), &bad).unwrap_err();
            assert!(matches!(err, CompressionError::Corrupt { codec: c, .. } if c == codec), "{codec}: {err}");
        }
    }
}

#[test]
fn concatenated_gzip_members_and_zstd_frames_are_read_whole() {
    let (a, b) = (text(5_000), text(9_000));
    for codec in [Codec::Gzip, Codec::Zstd] {
        let mut payload = Vec::new();
        compress(codec, &a, &mut payload).unwrap();
        compress(codec, &b, &mut payload).unwrap();
        let batch = with_codec(with_payload(&batch::build(1, &[b"x"]), &payload), codec);
        assert_eq!(section_of(&mut Decompressor::new(), &batch).unwrap(), [a.clone(), b.clone()].concat(), "{codec}");
    }
}

#[test]
fn an_unknown_codec_is_an_error() {
    let batch = patched(batch::build(1, &[b"x"]), |b| b[ATTRIBUTES_AT + 1] |= 5);
    let err = section_of(&mut Decompressor::new(), &batch).unwrap_err();
    assert!(matches!(err, CompressionError::UnknownCodec(5)), "{err}");
}
