//! Escaping untrusted text: test names, messages and file names come from the run, and anyone who
//! can open a pull request can write them.
//!
//! Everything such text can do in GitHub-flavoured Markdown is neutralised: HTML is entity-encoded,
//! Markdown metacharacters are backslash-escaped (so no link, image, emphasis or table break can
//! form), `@mentions` and `#123` references are broken with a zero-width space so nobody is pinged
//! and nothing is cross-linked, `javascript:` loses its colon, and control characters are dropped.

/// Zero-width space: breaks mentions and references without changing what a reader sees.
const ZWSP: char = '\u{200B}';

/// Characters that reorder or hide the text around them: the bidi embeddings, overrides and
/// isolates (the "Trojan Source" characters) and the invisible marks.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}')
}

/// Make untrusted `text` safe as part of one line printed to a terminal or a CI log: newlines,
/// every other control character (ESC, BEL, BS, VT, FF, DEL, the C1 range) and bidi controls
/// are written as visible escapes (`\n`, `\u{1b}`), so the text can neither start a new line
/// (where `::error::` would become a workflow command) nor move the cursor, set a link or write
/// the clipboard. A leading `::` is broken for the same reason. Printable text is unchanged.
pub fn line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if !push_visible_escape(&mut out, c) {
            out.push(c);
        }
    }
    if out.trim_start().starts_with("::") {
        out = out.replacen("::", "\\u{3a}:", 1);
    }
    out
}

/// Escape untrusted `text` as HTML text or a quoted attribute value, cut to `max_chars`: the five
/// HTML metacharacters become entities, and control and bidi characters visible escapes (as in
/// [`line()`]), so nothing can open an element, leave an attribute or reorder what is shown.
pub fn html(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for (n, c) in text.chars().enumerate() {
        if n >= max_chars {
            out.push('…');
            break;
        }
        if !push_entity(&mut out, c) && !push_visible_escape(&mut out, c) {
            out.push(c);
        }
    }
    out
}

/// Write a newline, another control character or a bidi control as a visible escape (`\n`,
/// `\u{1b}`); false for any other character.
fn push_visible_escape(out: &mut String, c: char) -> bool {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c.is_control() || is_bidi_control(c) => {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        }
        _ => return false,
    }
    true
}

/// Write one of the five HTML metacharacters as its entity; false for any other character.
fn push_entity(out: &mut String, c: char) -> bool {
    let entity = match c {
        '&' => "&amp;",
        '<' => "&lt;",
        '>' => "&gt;",
        '"' => "&quot;",
        '\'' => "&#39;",
        _ => return false,
    };
    out.push_str(entity);
    true
}

/// Escape `text` for inline use in Markdown (a sentence, a table cell), cut to `max_chars`.
pub fn inline(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let lower = text.to_ascii_lowercase();
    let bytes_lower = lower.as_bytes();
    for (chars, (i, ch)) in text.char_indices().enumerate() {
        if chars >= max_chars {
            out.push('…');
            break;
        }
        if push_entity(&mut out, ch) {
            continue;
        }
        match ch {
            '@' => {
                out.push('@');
                out.push(ZWSP);
            }
            '#' => {
                out.push_str("\\#");
                out.push(ZWSP);
            }
            ':' if i >= 10 && &bytes_lower[i - 10..i] == b"javascript" => out.push_str("&#58;"),
            ':' if i >= 4 && &bytes_lower[i - 4..i] == b"data" => out.push_str("&#58;"),
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '+' | '-' | '!' | '|'
            | '~' => {
                out.push('\\');
                out.push(ch);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c if is_bidi_control(c) => {
                out.push_str(&format!("&lt;U+{:04X}&gt;", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out
}

/// Untrusted `lines` as a fenced Markdown code block: nothing in it is Markdown, HTML, a mention
/// or a reference. The fence is one backtick longer than the longest run of backticks in the
/// text (at least three), so no line can close it; control and bidi characters become visible
/// escapes (as in [`line()`]).
pub fn code_block<S: AsRef<str>>(lines: &[S]) -> String {
    let longest = lines
        .iter()
        .flat_map(|l| l.as_ref().split(|c| c != '`'))
        .map(str::len)
        .max()
        .unwrap_or(0);
    let fence = "`".repeat((longest + 1).max(3));
    let mut out = format!("{fence}text\n");
    for l in lines {
        for c in l.as_ref().chars() {
            if !push_visible_escape(&mut out, c) {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out.push_str(&fence);
    out.push('\n');
    out
}

/// Escape a value for a GitHub workflow command's message (`::error ...::MESSAGE`). Newlines are
/// percent-encoded as the runner expects; every other control character and the bidi controls
/// become visible symbols (U+2400 + code, U+2421 for DEL, U+FFFD otherwise), since the log viewer
/// would interpret them and the command syntax has no escape for them.
pub fn command_data(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            '\u{7f}' => out.push('\u{2421}'),
            c if u32::from(c) < 0x20 => {
                out.push(char::from_u32(0x2400 + u32::from(c)).unwrap_or('\u{FFFD}'));
            }
            c if c.is_control() || is_bidi_control(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Escape a value for a GitHub workflow command's property (`file=`, `title=`).
pub fn command_property(text: &str) -> String {
    command_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVIL: &str = "<img src=x onerror=alert(1)> @everyone [x](javascript:alert(1))";

    #[test]
    fn a_code_block_cannot_be_closed_or_escaped_by_its_text() {
        let s = code_block(&["```", "x ```` y", "@everyone <b>\u{1b}[31m \u{202e}"]);
        assert!(s.starts_with("`````text\n"), "{s}");
        assert!(s.ends_with("\n`````\n"), "{s}");
        assert!(s.contains("\\u{1b}[31m \\u{202e}"), "{s}");
        assert!(!s.contains('\u{1b}'));
        assert_eq!(code_block::<&str>(&[]), "```text\n```\n");
    }

    #[test]
    fn the_issue_example_is_inert() {
        let s = inline(EVIL, 500);
        assert_eq!(
            s,
            "&lt;img src=x onerror=alert\\(1\\)&gt; @\u{200B}everyone \\[x\\]\\(javascript&#58;alert\\(1\\)\\)"
        );
        assert!(
            !s.contains('<')
                && !s.contains("@everyone")
                && !s.contains("](")
                && !s.contains("javascript:")
        );
    }

    #[test]
    fn references_tables_and_newlines() {
        assert_eq!(
            inline("fixes #12 | a\nb", 100),
            "fixes \\#\u{200B}12 \\| a b"
        );
        assert_eq!(
            inline("JavaScript:x DATA:y", 100),
            "JavaScript&#58;x DATA&#58;y"
        );
        assert_eq!(inline("abcdef", 3), "abc…");
        assert_eq!(inline("bell\u{7}", 10), "bell");
    }

    #[test]
    fn terminal_lines_show_controls_instead_of_obeying_them() {
        let check = |input: &str, expected: &str| assert_eq!(line(input), expected, "{input:?}");
        check("plain tests/x.py::test_a[1]", "plain tests/x.py::test_a[1]");
        check("a\n::error::x", "a\\n::error::x");
        check("::warning::x", "\\u{3a}:warning::x");
        check("  ::x", "  \\u{3a}:x");
        check("\u{1b}]52;c;ZXZpbA==\u{7}", "\\u{1b}]52;c;ZXZpbA==\\u{7}");
        check("\u{1b}]8;;http://x\u{1b}\\", "\\u{1b}]8;;http://x\\u{1b}\\");
        check(
            "bs\u{8}vt\u{b}ff\u{c}del\u{7f}c1\u{9b}",
            "bs\\u{8}vt\\u{b}ff\\u{c}del\\u{7f}c1\\u{9b}",
        );
        check("abc\u{202e}fed", "abc\\u{202e}fed");
        check("tab\tcr\r", "tab\\tcr\\r");
        check("ünïcödé ✓", "ünïcödé ✓");
    }

    #[test]
    fn workflow_command_data_carries_no_raw_control() {
        let s = command_data("50%\nnext\r\u{1b}[2J\u{7}\u{8}\u{b}\u{c}\u{7f}\u{202e}");
        assert_eq!(
            s,
            "50%25%0Anext%0D\u{241b}[2J\u{2407}\u{2408}\u{240b}\u{240c}\u{2421}\u{fffd}"
        );
        assert!(!s.chars().any(|c| c.is_control()));
        assert_eq!(command_property("a:b,c\u{1b}"), "a%3Ab%2Cc\u{241b}");
    }

    #[test]
    fn bidi_overrides_are_shown_in_markdown_not_obeyed() {
        assert_eq!(
            inline("a\u{202e}b\u{2066}c", 100),
            "a&lt;U+202E&gt;b&lt;U+2066&gt;c"
        );
    }

    #[test]
    fn workflow_command_escaping() {
        assert_eq!(command_data("50% done\nnext"), "50%25 done%0Anext");
        assert_eq!(command_property("a:b,c"), "a%3Ab%2Cc");
    }
}
