//! Text output of the plugin. Every renderer is a pure function of its inputs (objects, a clock
//! and whether to colour), so the exact layout is tested without a cluster or a terminal.

pub mod color;
pub mod experiment;
pub mod list;
pub mod rollout;
pub mod tabwriter;
pub mod tree;

/// One `%-17s%v` header line, as Argo prints `Name:`, `Status:`... (Go pads by characters, as
/// does Rust's `{:<17}`).
pub(crate) fn header_line(buf: &mut String, label: &str, value: &str) {
    buf.push_str(&format!("{label:<17}{value}\n"));
}

/// The `Name:`, `Namespace:`, `Status:` and (when set) `Message:` lines that open both the
/// `get rollout` and the `get experiment` output.
pub(crate) fn identity_lines(
    buf: &mut String,
    meta: &crate::info::Metadata,
    icon: &str,
    status: &str,
    message: &str,
    c: color::Colorizer,
) {
    header_line(buf, "Name:", &meta.name);
    header_line(buf, "Namespace:", &meta.namespace);
    header_line(buf, "Status:", &format!("{} {}", c.word(icon), status));
    if !message.is_empty() {
        header_line(buf, "Message:", message);
    }
}

/// Clears the terminal and moves the cursor home before a `--watch` redraw (Argo's sequence).
pub const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J\x1b[0;0H";
