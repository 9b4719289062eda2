//! Entry points of the fuzz targets (`fuzz/fuzz_targets/*.rs`, run with
//! cargo-fuzz; see fuzz/README.md). Each takes arbitrary bytes and panics
//! only on a bug: network input must never panic a shard, and the group
//! coordinator must keep its invariants whatever its clients send.
//!
//! The unit test below is the short run of the suite when cargo-fuzz is not
//! there: it replays the committed corpus (`fuzz/corpus/<target>/`) and a
//! fixed number of seeded mutations of it through the same functions.

use bytes::Bytes;

use crate::model::batch::{self, Compression};
use crate::model::records;

/// The request decoder: header and body of one request frame, as the
/// connection hands it to `api::handle` (size prefix already removed).
pub fn request_frame(data: &[u8]) {
    let _ = crate::api::decode_request(Bytes::copy_from_slice(data));
}

/// The RecordBatch validators, over bytes as a Produce request or a segment
/// file holds them. A validator added to `model` gets one more line here.
pub fn record_batch(data: &[u8]) {
    let _ = batch::BatchHeader::parse(data);
    let _ = batch::validate_stored(data);
    let walked: Vec<_> = batch::validate_all(data).collect();
    if let Some(Err(_)) = walked.last() {
        assert!(walked[..walked.len() - 1].iter().all(Result::is_ok), "validate_all goes on after an error");
    }
    if let Ok(header) = batch::validate(data) {
        assert!(header.total_bytes() <= data.len());
        assert_eq!(header.records_count as i64, header.last_offset_delta as i64 + 1);
        if header.compression() == Compression::None {
            let section = &data[batch::HEADER_BYTES..header.total_bytes()];
            let count = records::walk(header, section).take_while(Result::is_ok).count();
            assert!(count <= header.records_count as usize, "more records walked than the header counts");
            let _ = records::records(&data[..header.total_bytes()]);
        }
    }
}

/// The group coordinator driven by a sequence of events chosen by `data`
/// (one byte per choice): see `group::fuzz`.
pub fn group_events(data: &[u8]) {
    /// Bounds one input's running time; a step is one request or a time jump.
    const STEPS_MAX: usize = 2_000;
    crate::group::fuzz::run_sequence(crate::group::fuzz::Choices::Bytes(data), STEPS_MAX, "fuzz input");
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    /// Mutations of each corpus file per target, seeded: the same every run.
    const MUTATIONS_PER_INPUT: u64 = 300;
    /// Mutated inputs stay below this (the corpus' frames are far smaller).
    const INPUT_BYTES_MAX: usize = 64 * 1024;

    /// splitmix64, as `group::fuzz` uses for its seeded sequences.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// A few of libFuzzer's mutations: bit flips, interesting values written
    /// over 1, 2 or 4 bytes (array counts, lengths), truncation, duplicated
    /// and random spans.
    fn mutate(input: &[u8], rng: &mut Rng) -> Vec<u8> {
        const INTERESTING: [i32; 10] = [0, -1, 1, 0x7f, 0x80, 0xff, 0x7fff, -0x8000, 0x7fff_ffff, i32::MIN];
        let mut out = input.to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(out.len());
            match rng.below(6) {
                0 if !out.is_empty() => out[at] ^= 1 << rng.below(8),
                1 if !out.is_empty() => out[at] = rng.next() as u8,
                2 => {
                    let value = INTERESTING[rng.below(INTERESTING.len())].to_be_bytes();
                    let width = [1, 2, 4][rng.below(3)];
                    for (i, byte) in value[4 - width..].iter().enumerate() {
                        if let Some(slot) = out.get_mut(at + i) {
                            *slot = *byte;
                        }
                    }
                }
                3 => out.truncate(at),
                4 => {
                    let len = rng.below(out.len() - at + 1).min(INPUT_BYTES_MAX.saturating_sub(out.len()));
                    let span = out[at..at + len].to_vec();
                    out.splice(at..at, span);
                }
                _ => {
                    let random: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
                    out.splice(at.min(out.len())..at.min(out.len()), random);
                }
            }
        }
        out
    }

    fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}: no corpus", dir.display());
        files.into_iter().map(|path| (path.clone(), std::fs::read(path).unwrap())).collect()
    }

    fn replay_and_mutate(target: &str, run: fn(&[u8])) {
        for (index, (path, input)) in corpus(target).into_iter().enumerate() {
            run(&input);
            let mut rng = Rng(index as u64);
            for mutation in 0..MUTATIONS_PER_INPUT {
                let mutated = mutate(&input, &mut rng);
                let outcome = std::panic::catch_unwind(|| run(&mutated));
                assert!(
                    outcome.is_ok(),
                    "{target}: mutation {mutation} of {} crashed; input (hex): {}",
                    path.display(),
                    mutated.iter().map(|b| format!("{b:02x}")).collect::<String>()
                );
            }
        }
    }

    #[test]
    fn request_frame_corpus_and_mutations() {
        replay_and_mutate("request_frame", super::request_frame);
    }

    #[test]
    fn record_batch_corpus_and_mutations() {
        replay_and_mutate("record_batch", super::record_batch);
    }

    #[test]
    fn group_events_corpus_and_mutations() {
        replay_and_mutate("group_events", super::group_events);
    }

    #[test]
    fn every_corpus_frame_of_a_real_client_decodes() {
        for (path, frame) in corpus("request_frame") {
            if let Err(e) = crate::api::decode_request(bytes::Bytes::from(frame)) {
                panic!("{}: {e}", path.display());
            }
        }
    }
}
