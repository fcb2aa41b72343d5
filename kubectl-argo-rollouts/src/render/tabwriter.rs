//! Column alignment compatible with Go's `text/tabwriter` (left-aligned, space padding), as Argo
//! uses it for its tables.
//!
//! Input is text whose cells are terminated by `\t` and whose lines end with `\n`. The text after
//! a line's last tab is not part of any column and is never padded. A column's width is the
//! widest cell plus `padding`, computed over each *block* of consecutive lines that have a cell
//! in that column (so a line with fewer cells starts new blocks for the columns it lacks). Every
//! cell of a column, empty ones included, is padded to the column width — which is why the
//! revision rows of `get rollout` end in spaces.
//!
//! Like the ANSI-aware tab writer Argo uses for `get`, widths ignore ANSI escape sequences, so
//! coloured and plain cells line up; widths are display widths (East-Asian wide characters count
//! two).

use unicode_width::UnicodeWidthChar;

struct Cell {
    text: String,
    width: usize,
}

/// Aligns `text` into columns separated by at least `padding` spaces, with columns at least
/// `min_width` wide (Go's `tabwriter.NewWriter(out, minwidth, 0, padding, ' ', 0)`).
pub fn align(text: &str, min_width: usize, padding: usize) -> String {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let lines: Vec<Vec<Cell>> = if text.is_empty() {
        Vec::new()
    } else {
        body.split('\n')
            .map(|line| {
                line.split('\t')
                    .map(|cell| Cell {
                        text: cell.to_string(),
                        width: display_width(cell),
                    })
                    .collect()
            })
            .collect()
    };
    let writer = Writer {
        lines,
        min_width,
        padding,
    };
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    writer.format(&mut out, &mut widths, 0, writer.lines.len());
    if !text.ends_with('\n') {
        // Like Go, the final line is written without a newline when it had none.
        out.pop();
    }
    out
}

struct Writer {
    lines: Vec<Vec<Cell>>,
    min_width: usize,
    padding: usize,
}

impl Writer {
    /// Go's `format`: finds the blocks of lines sharing column `widths.len()`, computes the block's
    /// width and recurses for the columns to its right.
    fn format(&self, out: &mut String, widths: &mut Vec<usize>, line0: usize, line1: usize) {
        let column = widths.len();
        let mut start = line0;
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            self.write_lines(out, widths, start, this);
            start = this;
            let mut width = self.min_width;
            while this < line1 && column + 1 < self.lines[this].len() {
                width = width.max(self.lines[this][column].width + self.padding);
                this += 1;
            }
            widths.push(width);
            self.format(out, widths, start, this);
            widths.pop();
            start = this;
        }
        self.write_lines(out, widths, start, line1);
    }

    fn write_lines(&self, out: &mut String, widths: &[usize], from: usize, to: usize) {
        for line in &self.lines[from..to] {
            for (j, cell) in line.iter().enumerate() {
                out.push_str(&cell.text);
                if let Some(&w) = widths.get(j) {
                    out.extend(std::iter::repeat_n(' ', w.saturating_sub(cell.width)));
                }
            }
            out.push('\n');
        }
    }
}

/// Display width of `s`, skipping ANSI escape sequences (`ESC [ ... final-byte`).
pub fn display_width(s: &str) -> usize {
    let mut width = 0;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // Parameters and intermediates run until a final byte in @..~.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        width += c.width().unwrap_or(0);
    }
    width
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_all_but_the_last_cell() {
        let out = align("a\tbb\tc\nccc\td\te\n", 0, 2);
        assert_eq!(out, "a    bb  c\nccc  d   e\n");
    }

    #[test]
    fn empty_cells_are_padded_and_trailing_text_is_not() {
        let out = align("NAME\tAGE\tINFO\nrow\t\t\nlonger-row\t15s\tstable\n", 0, 2);
        assert_eq!(
            out,
            "NAME        AGE  INFO\nrow              \nlonger-row  15s  stable\n"
        );
    }

    #[test]
    fn lines_without_a_column_break_blocks() {
        // The middle line has no tab, so the two other lines are aligned separately.
        let out = align("a\tx\nno tabs here\nlonger\ty\n", 0, 1);
        assert_eq!(out, "a x\nno tabs here\nlonger y\n");
    }

    #[test]
    fn ansi_escapes_have_no_width() {
        let out = align("\x1b[32m✔\x1b[0m ok\tz\nplain\tz\n", 0, 2);
        assert_eq!(out, "\x1b[32m✔\x1b[0m ok   z\nplain  z\n");
        assert_eq!(display_width("\x1b[1;94m◌\x1b[0m"), 1);
        assert_eq!(display_width("⟳ mock-server"), 13);
    }
}
