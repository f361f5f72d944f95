//! A small oscilloscope for the terminal, drawn with braille characters.
//!
//! Why our own: a plotting crate for terminals (ratatui) costs about a minute of build
//! time on two cores for one picture; this is 100 lines. A braille character (U+2800 to
//! U+28FF) is a 2 x 4 grid of dots, so a 60 x 12 character screen is a 120 x 48 dot
//! plot: one sample per dot column, the value on the vertical axis, consecutive samples
//! joined by vertical strokes like a scope trace.

use std::collections::VecDeque;

/// The dot bits of a braille cell, indexed `[x][y]` (x 0..2 left to right, y 0..4 top
/// to bottom), as Unicode numbers them: dots 1-2-3-7 down the left, 4-5-6-8 down the right.
const DOT: [[u32; 4]; 2] = [[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]];

/// The last samples, ready to be drawn.
#[derive(Debug)]
pub struct Scope {
    /// Plot width in characters (two samples each).
    cols: usize,
    /// Plot height in characters (four dot rows each).
    rows: usize,
    /// The newest `2 * cols` samples, oldest first.
    samples: VecDeque<u8>,
}

impl Scope {
    /// A scope `cols` characters wide and `rows` high (both at least 1).
    pub fn new(cols: usize, rows: usize) -> Scope {
        let cols = cols.max(1);
        Scope {
            cols,
            rows: rows.max(1),
            samples: VecDeque::with_capacity(cols * 2),
        }
    }

    /// Adds samples; only the newest screenful is kept, so memory is fixed.
    pub fn push(&mut self, data: &[u8]) {
        let keep = self.cols * 2;
        let data = &data[data.len().saturating_sub(keep)..];
        for &v in data {
            if self.samples.len() == keep {
                self.samples.pop_front();
            }
            self.samples.push_back(v);
        }
    }

    /// The plot as `rows` lines, each prefixed with a value axis.
    pub fn render(&self) -> Vec<String> {
        let dots_high = self.rows * 4;
        let mut cells = vec![0u32; self.cols * self.rows];
        // Dot row of a value: 255 at the top, 0 at the bottom.
        let y_of = |v: u8| (255 - v as usize) * (dots_high - 1) / 255;
        let mut prev: Option<usize> = None;
        for (i, &v) in self.samples.iter().enumerate() {
            let (col, x) = (i / 2, i % 2);
            let y = y_of(v);
            // Join to the previous sample with a vertical stroke, as a scope trace does.
            let (lo, hi) = match prev {
                Some(p) if p < y => (p + 1, y),
                Some(p) if p > y => (y, p - 1),
                _ => (y, y),
            };
            for yy in lo..=hi {
                cells[(yy / 4) * self.cols + col] |= DOT[x][yy % 4];
            }
            prev = Some(y);
        }
        (0..self.rows)
            .map(|r| {
                let label = if r == 0 {
                    "255 ┤"
                } else if r == self.rows - 1 {
                    "  0 ┤"
                } else if r == self.rows / 2 {
                    "128 ┤"
                } else {
                    "    │"
                };
                let line: String = cells[r * self.cols..(r + 1) * self.cols]
                    .iter()
                    .map(|&bits| char::from_u32(0x2800 + bits).unwrap_or(' '))
                    .collect();
                format!("{label}{line}")
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_line_sits_on_one_dot_row() {
        let mut s = Scope::new(3, 2);
        s.push(&[255; 6]);
        let lines = s.render();
        // Top dot row of every cell, both columns: dots 1 and 4 = 0x09.
        assert_eq!(lines[0], "255 ┤⠉⠉⠉");
        assert_eq!(lines[1], "  0 ┤⠀⠀⠀");
        s.push(&[0; 6]);
        assert_eq!(s.render()[1], "  0 ┤⣀⣀⣀");
    }

    #[test]
    fn a_jump_is_joined_by_a_stroke_and_memory_is_bounded() {
        let mut s = Scope::new(1, 1);
        s.push(&[1, 2, 3, 0, 255]);
        assert_eq!(s.samples.len(), 2);
        // 0 (bottom, left column) then 255 (top, right column): the right column is
        // stroked from the top down to just above the left dot.
        // Left dot 7 (0x40) plus right dots 4, 5, 6 (0x38).
        let want = char::from_u32(0x2800 + 0x40 + 0x38).unwrap();
        assert_eq!(s.render()[0], format!("255 ┤{want}"));
    }
}
