//! `meta.properties`: the node a data directory belongs to, as Kafka's file
//! of that name records it (`version=1`, `node.id=N`). Written at the first
//! start (of a new directory or of one from before node ids), checked at
//! every later one: a directory started under another node.id would see
//! every partition placed on its old node as another node's, and serve none.

use std::path::Path;

use super::MetadataError;
use crate::cluster::NodeId;
use crate::runtime::durable;

const FILE_NAME: &str = "meta.properties";
const VERSION: &str = "1";

fn io_error(context: &str, source: std::io::Error) -> MetadataError {
    MetadataError::Io { context: format!("{FILE_NAME}: {context}"), source }
}

/// The node.id a properties text names, if it is one corelog wrote.
fn parse(text: &str) -> Option<NodeId> {
    let mut version = None;
    let mut node = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        match line.split_once('=')? {
            ("version", v) => version = Some(v.trim()),
            ("node.id", id) => node = Some(NodeId(id.trim().parse().ok()?)),
            _ => {}
        }
    }
    (version == Some(VERSION)).then_some(node).flatten()
}

/// Records that `data_dir` belongs to `node`, or refuses a directory that
/// belongs to another.
pub fn claim(data_dir: &Path, node: NodeId) -> Result<(), MetadataError> {
    let path = data_dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => match parse(&text) {
            Some(stored) if stored == node => Ok(()),
            Some(stored) => Err(MetadataError::NodeMismatch { stored, configured: node }),
            None => Err(MetadataError::CorruptFile {
                file: FILE_NAME,
                why: format!("it holds {text:?}; expected version={VERSION} and node.id=N"),
            }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text =
                format!("# The corelog node this data directory belongs to.\nversion={VERSION}\nnode.id={node}\n");
            durable::replace(&path, text.as_bytes()).map_err(|e| io_error("write", e))
        }
        Err(e) => Err(io_error("read", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_belongs_to_the_node_that_first_started_on_it() {
        let dir = tempfile::tempdir().unwrap();
        claim(dir.path(), NodeId(4)).unwrap();
        claim(dir.path(), NodeId(4)).unwrap();
        let refused = claim(dir.path(), NodeId(5));
        assert!(matches!(refused, Err(MetadataError::NodeMismatch { stored: NodeId(4), configured: NodeId(5) })));
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(text.contains("node.id=4\n") && text.contains("version=1\n"), "{text}");
    }

    #[test]
    fn a_damaged_file_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        for damaged in ["", "node.id=1\n", "version=1\nnode.id=x\n", "version=2\nnode.id=1\n", "garbage"] {
            std::fs::write(dir.path().join(FILE_NAME), damaged).unwrap();
            let refused = claim(dir.path(), NodeId(1));
            assert!(matches!(refused, Err(MetadataError::CorruptFile { .. })), "{damaged:?}");
        }
        // Kafka's own file (with a cluster id and comments) reads too.
        std::fs::write(dir.path().join(FILE_NAME), "#\n#Thu\ncluster.id=abc\nnode.id=1\nversion=1\n").unwrap();
        claim(dir.path(), NodeId(1)).unwrap();
    }
}
