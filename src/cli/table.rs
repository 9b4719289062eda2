//! The CLI's text tables, drawn by comfy-table: no borders, columns padded
//! to their widest cell and two spaces apart, no trailing spaces. Empty
//! cells print as `-`, so every line splits into the same number of words
//! (scripts and the tests read them that way).

use comfy_table::{presets, Table};

/// Printed for a value that is absent or unknown.
pub const NONE: &str = "-";

/// Spaces between two columns.
const COLUMN_GAP: u16 = 2;

/// The lines of a table with `headers` and `rows`.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table.set_header(headers.iter().copied());
    for row in rows {
        table.add_row(row.iter().map(|cell| if cell.is_empty() { NONE } else { cell.as_str() }));
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, COLUMN_GAP));
    }
    table.lines().map(|line| line.trim_end().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_fill_empty_cells() {
        let rows = vec![
            vec!["orders".to_string(), "0".to_string(), String::new()],
            vec!["a".to_string(), "10".to_string(), "x".to_string()],
        ];
        assert_eq!(
            table(&["TOPIC", "PARTITION", "NEW-OFFSET"], &rows),
            ["TOPIC   PARTITION  NEW-OFFSET", "orders  0          -", "a       10         x"]
        );
        assert_eq!(table(&["A", "B"], &[]), ["A  B"]);
    }
}
