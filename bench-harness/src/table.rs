//! A small builder for the markdown tables of the reports.
//!
//! ```
//! use ferromq_bench::table::Table;
//! let mut t = Table::new(&["point", "msgs/s"], "lr");
//! t.row(["producers=4", "51234"]);
//! assert_eq!(t.finish(), "| point | msgs/s |\n|---|---:|\n| producers=4 | 51234 |\n");
//! ```

use std::fmt::{Display, Write as _};

/// A markdown table being written: the head, then one line per row.
#[derive(Debug, Clone, Default)]
pub struct Table {
    text: String,
}

impl Table {
    /// A table with the column `heads`; `aligns` has one letter per column,
    /// `l` (left) or `r` (right, for figures).
    pub fn new(heads: &[&str], aligns: &str) -> Table {
        let mut t = Table::default();
        t.row(heads);
        t.text.push('|');
        for a in aligns.chars() {
            t.text.push_str(if a == 'r' { "---:|" } else { "---|" });
        }
        t.text.push('\n');
        t
    }

    /// A two-column table without heads (`| | |`): a key and its value per row.
    pub fn key_value() -> Table {
        Table {
            text: "| | |\n|---|---|\n".to_string(),
        }
    }

    /// Append a row of cells.
    pub fn row<I>(&mut self, cells: I)
    where
        I: IntoIterator,
        I::Item: Display,
    {
        self.text.push('|');
        for c in cells {
            let _ = write!(self.text, " {c} |");
        }
        self.text.push('\n');
    }

    /// Append a `| key | value |` row.
    pub fn kv(&mut self, key: &str, value: impl Display) {
        let _ = writeln!(self.text, "| {key} | {value} |");
    }

    /// The table's text, every line ending in a newline.
    pub fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_tables_keep_the_empty_head() {
        let mut t = Table::key_value();
        t.kv("host", "vm");
        t.kv("CPUs", 2);
        assert_eq!(
            t.finish(),
            "| | |\n|---|---|\n| host | vm |\n| CPUs | 2 |\n"
        );
    }
}
