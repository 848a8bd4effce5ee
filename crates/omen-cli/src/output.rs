//! Writing data to stdout. Logs and warnings go to stderr through `tracing`; this is the one
//! place that writes to stdout.

use std::io::Write;

/// Write `text` to stdout. A closed pipe (`omen ... | head`) is not an error worth reporting.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Write `value` as pretty JSON plus a newline to stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    print(&text);
    Ok(())
}
