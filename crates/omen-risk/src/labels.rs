//! Bootstrap labels from git history: reverts. (SZZ's blame runs at the edge, in `omen-cli`.)

/// The commit a revert message names: git's `This reverts commit <sha>.` line.
pub fn reverted_commit(message: &str) -> Option<&str> {
    let rest = &message[message.find("This reverts commit ")? + "This reverts commit ".len()..];
    let sha: &str = &rest[..rest
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(rest.len())];
    (sha.len() >= 7).then_some(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_reverted_commit() {
        let m = "Revert \"Add cache\"\n\nThis reverts commit 0123456789abcdef0123456789abcdef01234567.\n";
        assert_eq!(
            reverted_commit(m),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
        assert_eq!(reverted_commit("This reverts commit abc."), None);
        assert_eq!(reverted_commit("Revert a thing"), None);
    }
}
