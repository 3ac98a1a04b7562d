//! A table rendered two ways: Markdown for the report, aligned text for the terminal.

/// Rows of text cells under headers.
#[derive(Clone, Debug)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these headers.
    pub fn new(headers: Vec<String>) -> Table {
        Table { headers, rows: Vec::new() }
    }

    /// Appends a row (padded or cut to the header count).
    pub fn push(&mut self, mut cells: Vec<String>) {
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    /// GitHub-flavoured Markdown; `|` in cells is escaped.
    pub fn markdown(&self) -> String {
        let line = |cells: &[String]| {
            format!("| {} |\n", cells.iter().map(|c| c.replace('|', "\\|")).collect::<Vec<_>>().join(" | "))
        };
        let mut out = line(&self.headers);
        out.push_str(&format!("|{}\n", "---|".repeat(self.headers.len())));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }

    /// Columns padded to their widest cell, for a terminal.
    pub fn text(&self) -> String {
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|i| std::iter::once(&self.headers).chain(&self.rows).map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> =
                cells.iter().zip(&widths).map(|(c, &w)| format!("{c}{}", " ".repeat(w - c.chars().count()))).collect();
            format!("{}\n", padded.join("  ").trim_end())
        };
        let mut out = line(&self.headers);
        out.push_str(&format!("{}\n", "-".repeat(widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1))));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_markdown_and_aligned_text() {
        let mut t = Table::new(vec!["a".into(), "bb".into()]);
        t.push(vec!["x|y".into(), "1".into()]);
        t.push(vec!["long cell".into()]);
        assert_eq!(t.markdown(), "| a | bb |\n|---|---|\n| x\\|y | 1 |\n| long cell |  |\n");
        let text = t.text();
        assert!(text.starts_with("a          bb\n"), "{text}");
        assert!(text.contains("x|y        1\n"));
    }
}
