//! Descriptors a log holds (issue 13, defect 7): every segment holds its
//! own, and a deleted segment must let go of them, or the disk space of
//! deleted segments is never freed and the process runs out of descriptors.

use super::*;
use crate::storage::RetentionPolicy;

/// The descriptors of this process open on files under `dir`, by file name
/// (" (deleted)" marks an unlinked one).
fn open_files_under(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(&dir))
        .map(|target| target.display().to_string())
        .collect()
}

fn deleted_segments_let_go_of_their_descriptors(direct_io: bool) {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { direct_io, ..small_segments(1000) };
        let (log, _) = open(dir.path(), config, true);
        for i in 0..30 {
            append(&log, &batch_of(1_000 + i, 2, 100)).await;
        }
        wait_for_seals(&log).await;
        let segments = log.segments().all().len();
        assert!(segments >= 8, "rolled into {segments} segments");
        let deleted = log.delete_old_segments(RetentionPolicy { retention_ms: 0, retention_bytes: -1 }, 1_000_000);
        assert!(deleted.unwrap().is_some());
        eventually(|| open_files_under(dir.path()).iter().all(|f| !f.ends_with("(deleted)"))).await;
        let open = open_files_under(dir.path());
        assert!(open.iter().all(|f| !f.ends_with("(deleted)")), "deleted segments still open: {open:?}");
        // The new active segment (two descriptors with O_DIRECT) and the directory.
        assert!(open.len() <= 3, "{open:?}");
    });
}

#[test]
fn deleted_segments_let_go_of_their_descriptors_with_o_direct() {
    deleted_segments_let_go_of_their_descriptors(true);
}

#[test]
fn deleted_segments_let_go_of_their_descriptors_in_the_page_cache() {
    deleted_segments_let_go_of_their_descriptors(false);
}
