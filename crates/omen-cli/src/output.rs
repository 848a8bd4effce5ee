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

/// Stderr for `tracing`, made safe for untrusted text: each event is one line, and any newline,
/// control character or bidi control inside it (a report path, a test name, a message) is shown
/// as an escape (see [`omen_render::escape::line`]), so nothing in a warning can start a workflow
/// command on a new line or drive the terminal.
#[derive(Debug, Clone, Copy, Default)]
pub struct SafeStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SafeStderr {
    type Writer = SafeStderr;
    fn make_writer(&'a self) -> Self::Writer {
        SafeStderr
    }
}

impl Write for SafeStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr()
            .lock()
            .write_all(safe_event(buf).as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// One formatted event as it may reach stderr: its own final newline kept, every other one escaped.
fn safe_event(buf: &[u8]) -> String {
    let text = String::from_utf8_lossy(buf);
    let (body, end) = match text.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (text.as_ref(), ""),
    };
    let mut line = omen_render::escape::line(body);
    line.push_str(end);
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_with_a_newline_in_a_path_stays_one_line() {
        let out = safe_event(b"  WARN report `a\n::warning::x.xml\x1b[2J`: bad\n");
        assert_eq!(out, "  WARN report `a\\n::warning::x.xml\\u{1b}[2J`: bad\n");
        assert_eq!(out.matches('\n').count(), 1);
    }
}
