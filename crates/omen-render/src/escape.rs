//! Escaping untrusted text: test names, messages and file names come from the run, and anyone who
//! can open a pull request can write them.
//!
//! Everything such text can do in GitHub-flavoured Markdown is neutralised: HTML is entity-encoded,
//! Markdown metacharacters are backslash-escaped (so no link, image, emphasis or table break can
//! form), `@mentions` and `#123` references are broken with a zero-width space so nobody is pinged
//! and nothing is cross-linked, `javascript:` loses its colon, and control characters are dropped.

/// Zero-width space: breaks mentions and references without changing what a reader sees.
const ZWSP: char = '\u{200B}';

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
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
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
            c => out.push(c),
        }
    }
    out
}

/// Put `text` in a fenced code block that it cannot break out of, cut to `max_chars`.
pub fn code_block(text: &str, max_chars: usize) -> String {
    let mut body: String = text
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .take(max_chars)
        .collect();
    if text.chars().count() > max_chars {
        body.push_str("\n…");
    }
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}text\n{body}\n{fence}")
}

/// Escape a value for a GitHub workflow command's message (`::error ...::MESSAGE`).
pub fn command_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
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
    fn code_blocks_cannot_be_escaped() {
        let block = code_block("a ``` b\n```` c", 100);
        assert!(block.starts_with("`````text\n"), "{block}");
        assert!(block.ends_with("\n`````"), "{block}");
    }

    #[test]
    fn workflow_command_escaping() {
        assert_eq!(command_data("50% done\nnext"), "50%25 done%0Anext");
        assert_eq!(command_property("a:b,c"), "a%3Ab%2Cc");
    }
}
