//! A PNG line plot without dependencies: the controller's RSS and the number of converged
//! Rollouts over time, with the phases marked.
//!
//! Written by hand rather than with a plotting crate so that the benchmark adds nothing to the
//! workspace's dependencies: a palette canvas, lines, a 5x7 bitmap font (upper case, digits and
//! some punctuation) and a PNG encoder (fixed-Huffman deflate with run-length matches, which is
//! enough for a plot that is mostly background).

use std::fmt::Write as _;

/// Palette entries.
const WHITE: u8 = 0;
const BLACK: u8 = 1;
const GRID: u8 = 2;
const BLUE: u8 = 3;
const ORANGE: u8 = 4;
const GRAY: u8 = 5;
const PALETTE: [[u8; 3]; 6] = [
    [255, 255, 255],
    [30, 30, 30],
    [228, 228, 228],
    [31, 119, 180],
    [255, 127, 14],
    [120, 120, 120],
];

/// What to draw.
#[derive(Clone, Debug, Default)]
pub struct PlotData {
    /// Title (shown in upper case).
    pub title: String,
    /// RSS of the controller: (seconds, MiB).
    pub rss_mib: Vec<(f64, f64)>,
    /// Converged Rollouts of the current phase: (seconds, count).
    pub converged: Vec<(f64, f64)>,
    /// The Rollouts in the benchmark (top of the right axis).
    pub rollouts: usize,
    /// Phase starts: (name, seconds).
    pub phases: Vec<(String, f64)>,
    /// End of the time axis, seconds.
    pub end: f64,
}

/// Renders `data` as a PNG image.
pub fn render(data: &PlotData) -> Vec<u8> {
    const W: usize = 1200;
    const H: usize = 670;
    const LEFT: usize = 90;
    const RIGHT: usize = 100;
    const TOP: usize = 70;
    const BOTTOM: usize = 110;
    let mut c = Canvas::new(W, H);
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, TOP, H - BOTTOM);
    let t_end = data.end.max(data.rss_mib.last().map_or(0.0, |p| p.0)).max(1.0);
    let rss_max = data.rss_mib.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0);
    let (rss_step, rss_top) = nice_axis(rss_max * 1.1);
    let (n_step, n_top) = nice_axis((data.rollouts.max(1)) as f64 * 1.05);
    let (t_step, _) = nice_axis(t_end);
    let px = |t: f64| x0 as f64 + t / t_end * (x1 - x0) as f64;
    let py = |v: f64, top: f64| y1 as f64 - v / top * (y1 - y0) as f64;

    // Grid and axes.
    let mut v = 0.0;
    while v <= rss_top + 1e-9 {
        let y = py(v, rss_top).round() as usize;
        c.hline(x0, x1, y, GRID);
        let label = fmt_tick(v, rss_step);
        c.text(x0 - 8 - text_width(&label, 2), y - 7, &label, BLUE, 2);
        v += rss_step;
    }
    let mut v = 0.0;
    while v <= n_top + 1e-9 {
        let y = py(v, n_top).round() as usize;
        c.hline(x1, x1 + 5, y, BLACK);
        c.text(x1 + 10, y - 7, &fmt_tick(v, n_step), ORANGE, 2);
        v += n_step;
    }
    let mut t = 0.0;
    while t <= t_end + 1e-9 {
        let x = px(t).round() as usize;
        c.vline(x, y1, y1 + 5, BLACK);
        let label = fmt_tick(t, t_step);
        c.text(
            x.saturating_sub(text_width(&label, 2) / 2),
            y1 + 10,
            &label,
            BLACK,
            2,
        );
        t += t_step;
    }
    c.hline(x0, x1, y1, BLACK);
    c.vline(x0, y0, y1, BLACK);
    c.vline(x1, y0, y1, BLACK);
    let xlabel = "SECONDS SINCE THE CONTROLLER STARTED";
    c.text((x0 + x1 - text_width(xlabel, 2)) / 2, y1 + 36, xlabel, BLACK, 2);
    c.text(x0 - 80, y0 - 24, "RSS, MIB", BLUE, 2);
    let right_label = "CONVERGED ROLLOUTS";
    c.text(
        W - 8 - text_width(right_label, 2),
        y0 - 24,
        right_label,
        ORANGE,
        2,
    );
    c.text(x0, 12, &data.title, BLACK, 2);

    // Phases.
    for (name, start) in &data.phases {
        if *start < 0.0 || *start > t_end {
            continue;
        }
        let x = px(*start).round() as usize;
        c.dashed_vline(x, y0, y1, GRAY);
        c.text(x + 4, y0 + 4, name, GRAY, 2);
    }

    // Series: converged (a step line) below RSS.
    let conv: Vec<(f64, f64)> = data
        .converged
        .iter()
        .map(|&(t, n)| (px(t), py(n, n_top)))
        .collect();
    for w in conv.windows(2) {
        c.line(w[0].0, w[0].1, w[1].0, w[0].1, ORANGE, 2);
        c.line(w[1].0, w[0].1, w[1].0, w[1].1, ORANGE, 2);
    }
    let rss: Vec<(f64, f64)> = data
        .rss_mib
        .iter()
        .map(|&(t, m)| (px(t), py(m, rss_top)))
        .collect();
    for w in rss.windows(2) {
        c.line(w[0].0, w[0].1, w[1].0, w[1].1, BLUE, 2);
    }
    if let [(x, y)] = rss[..] {
        c.line(x, y, x + 1.0, y, BLUE, 2);
    }
    // Legend, below the axis label.
    let (lx, ly) = (x0, H - 26);
    c.fill(lx, ly + 6, 30, 3, BLUE);
    c.text(lx + 40, ly, "CONTROLLER RSS (LEFT)", BLACK, 2);
    let lx2 = lx + 80 + text_width("CONTROLLER RSS (LEFT)", 2);
    c.fill(lx2, ly + 6, 30, 3, ORANGE);
    c.text(lx2 + 40, ly, "ROLLOUTS CONVERGED IN THE PHASE (RIGHT)", BLACK, 2);
    c.png()
}

/// A step of 1, 2 or 5 times a power of ten giving at most about 6 ticks up to `max`, and the
/// top of the axis (a multiple of the step at or above `max`).
fn nice_axis(max: f64) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 { max } else { 1.0 };
    let raw = max / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    (step, (max / step).ceil() * step)
}

fn fmt_tick(v: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{v:.0}")
    } else {
        let decimals = (-step.log10().floor()) as usize;
        format!("{v:.decimals$}")
    }
}

fn text_width(s: &str, scale: usize) -> usize {
    s.chars().count() * 6 * scale
}

/// A palette image.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Self {
            w,
            h,
            px: vec![WHITE; w * h],
        }
    }

    fn set(&mut self, x: i64, y: i64, color: u8) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            self.px[y as usize * self.w + x as usize] = color;
        }
    }

    fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, color: u8) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx as i64, yy as i64, color);
            }
        }
    }

    fn hline(&mut self, x0: usize, x1: usize, y: usize, color: u8) {
        self.fill(x0, y, x1 - x0 + 1, 1, color);
    }

    fn vline(&mut self, x: usize, y0: usize, y1: usize, color: u8) {
        self.fill(x, y0, 1, y1 - y0 + 1, color);
    }

    fn dashed_vline(&mut self, x: usize, y0: usize, y1: usize, color: u8) {
        for y in y0..=y1 {
            if y % 10 < 6 {
                self.set(x as i64, y as i64, color);
            }
        }
    }

    /// A line `width` pixels thick (square pen).
    fn line(&mut self, xa: f64, ya: f64, xb: f64, yb: f64, color: u8, width: i64) {
        let steps = (xb - xa).abs().max((yb - ya).abs()).ceil().max(1.0) as i64;
        for i in 0..=steps {
            let f = i as f64 / steps as f64;
            let x = (xa + (xb - xa) * f).round() as i64;
            let y = (ya + (yb - ya) * f).round() as i64;
            for dx in 0..width {
                for dy in 0..width {
                    self.set(x + dx - width / 2, y + dy - width / 2, color);
                }
            }
        }
    }

    /// Text in the 5x7 font, each dot `scale` pixels, top left at (x, y); lower case is drawn
    /// as upper case, characters without a glyph as blanks.
    fn text(&mut self, x: usize, y: usize, s: &str, color: u8, scale: usize) {
        for (i, ch) in s.chars().enumerate() {
            let rows = glyph(ch.to_ascii_uppercase());
            let gx = x + i * 6 * scale;
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        self.fill(gx + col * scale, y + r * scale, scale, scale, color);
                    }
                }
            }
        }
    }

    /// The image as a PNG (8-bit palette).
    fn png(&self) -> Vec<u8> {
        let mut raw = Vec::with_capacity((self.w + 1) * self.h);
        for row in self.px.chunks(self.w) {
            raw.push(0); // filter: none
            raw.extend_from_slice(row);
        }
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&(self.w as u32).to_be_bytes());
        ihdr.extend_from_slice(&(self.h as u32).to_be_bytes());
        ihdr.extend_from_slice(&[8, 3, 0, 0, 0]);
        let plte: Vec<u8> = PALETTE.iter().flatten().copied().collect();
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        chunk(&mut out, b"IHDR", &ihdr);
        chunk(&mut out, b"PLTE", &plte);
        chunk(&mut out, b"IDAT", &zlib(&raw));
        chunk(&mut out, b"IEND", &[]);
        out
    }
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// Bits written least significant first, as deflate wants.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u32, count: u32) {
        self.acc |= u64::from(value) << self.n;
        self.n += count;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code: its bits go most significant first.
    fn code(&mut self, code: u32, len: u32) {
        let reversed = code.reverse_bits() >> (32 - len);
        self.put(reversed, len);
    }

    /// A literal/length symbol of the fixed Huffman code.
    fn symbol(&mut self, s: u32) {
        match s {
            0..=143 => self.code(0x30 + s, 8),
            144..=255 => self.code(0x190 + s - 144, 9),
            256..=279 => self.code(s - 256, 7),
            _ => self.code(0xC0 + s - 280, 8),
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

const LEN_BASE: [u32; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195,
    227, 258,
];
const LEN_EXTRA: [u32; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];

/// zlib stream of `data`: one fixed-Huffman block, repeated bytes as matches at distance 1.
fn zlib(data: &[u8]) -> Vec<u8> {
    let mut bits = Bits::default();
    bits.put(1, 1); // last block
    bits.put(1, 2); // fixed Huffman
    let mut i = 0;
    while i < data.len() {
        let mut run = 0;
        if i > 0 {
            while i + run < data.len() && run < 258 && data[i + run] == data[i - 1] {
                run += 1;
            }
        }
        if run >= 3 {
            let len = run as u32;
            let k = LEN_BASE.iter().rposition(|b| *b <= len).unwrap_or(0);
            bits.symbol(257 + k as u32);
            bits.put(len - LEN_BASE[k], LEN_EXTRA[k]);
            bits.code(0, 5); // distance 1
            i += run;
        } else {
            bits.symbol(u32::from(data[i]));
            i += 1;
        }
    }
    bits.symbol(256);
    let mut out = vec![0x78, 0x01];
    out.extend(bits.finish());
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

/// Rows of a 5x7 glyph, bit 4 leftmost.
fn glyph(c: char) -> [u8; 7] {
    match c {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        ',' => [0, 0, 0, 0, 0x0C, 0x04, 0x08],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '=' => [0, 0, 0x1F, 0, 0x1F, 0, 0],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '/' => [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '_' => [0, 0, 0, 0, 0, 0, 0x1F],
        '>' => [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
        '+' => [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        _ => [0; 7],
    }
}

/// A one-line description of the series, for logs.
pub fn describe(data: &PlotData) -> String {
    let mut s = String::new();
    let peak = data.rss_mib.iter().map(|p| p.1).fold(0.0, f64::max);
    let _ = write!(
        s,
        "{} RSS samples (peak {peak:.1} MiB), {} converged samples, {} phases, {:.0} s",
        data.rss_mib.len(),
        data.converged.len(),
        data.phases.len(),
        data.end
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }

    #[test]
    fn axis_steps() {
        assert_eq!(nice_axis(60.0), (10.0, 60.0));
        assert_eq!(nice_axis(1050.0), (200.0, 1200.0));
        assert_eq!(nice_axis(0.5).0, 0.1);
    }

    #[test]
    fn renders_a_png() {
        let data = PlotData {
            title: "test".into(),
            rss_mib: (0..100)
                .map(|i| (f64::from(i), 20.0 + f64::from(i % 7)))
                .collect(),
            converged: (0..100).map(|i| (f64::from(i), f64::from(i * 10))).collect(),
            rollouts: 1000,
            phases: vec![("create".into(), 5.0), ("image".into(), 40.0)],
            end: 100.0,
        };
        let png = render(&data);
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(&png[12..16], b"IHDR");
        // Mostly background: the run-length matches keep it small.
        assert!(png.len() < 200_000, "{} bytes", png.len());
        assert!(describe(&data).starts_with("100 RSS samples"));
    }
}
