//! Text tables for the terminal, drawn by comfy-table: columns padded to their widest cell,
//! two spaces apart, no borders, no trailing spaces, some columns right-aligned.

use comfy_table::{CellAlignment, ContentArrangement, Table, presets::NOTHING};

/// `rows` (the first is the header) as aligned text, one line per row; the columns at the
/// indexes in `right` are right-aligned.
pub fn render(rows: &[Vec<String>], right: &[usize]) -> String {
    let mut table = Table::new();
    table
        .load_preset(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    for row in rows {
        table.add_row(row.clone());
    }
    let columns = rows.first().map_or(0, Vec::len);
    for (i, column) in table.column_iter_mut().enumerate() {
        // Two spaces between columns: none before the first, none after the last.
        column.set_padding((0, if i + 1 < columns { 2 } else { 0 }));
        if right.contains(&i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(cells: &[&[&str]]) -> Vec<Vec<String>> {
        cells
            .iter()
            .map(|r| r.iter().map(|c| (*c).to_owned()).collect())
            .collect()
    }

    #[test]
    fn columns_are_padded_to_their_widest_cell_and_right_aligned_where_asked() {
        let text = render(
            &rows(&[
                &["INSTANCE", "QUEUES", "NOTE"],
                &["i-a", "12", ""],
                &["i-longer", "3", "x"],
            ]),
            &[1],
        );
        assert_eq!(
            text,
            "INSTANCE  QUEUES  NOTE\ni-a           12\ni-longer       3  x\n"
        );
    }
}
