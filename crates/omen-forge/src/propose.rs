//! Proposing a file change as one pull request that Omen keeps current: a branch reset onto the
//! base at each proposal, one commit with the file, one open pull request whose body is updated.

use serde::Deserialize;

use crate::{ForgeError, GitHub};

/// A file change to propose.
#[derive(Debug, Clone, Copy)]
pub struct Proposal<'a> {
    /// The branch to merge into (the default branch).
    pub base: &'a str,
    /// The branch Omen owns for this proposal (reset onto `base` each time).
    pub branch: &'a str,
    /// The file's path in the repository.
    pub path: &'a str,
    /// Its new contents.
    pub content: &'a str,
    /// The commit message.
    pub message: &'a str,
    /// The pull request's title.
    pub title: &'a str,
    /// The pull request's body.
    pub body: &'a str,
}

/// The pull request that carries a proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposed {
    /// Its number.
    pub number: u64,
    /// Its URL.
    pub url: String,
    /// True when an open pull request was updated rather than opened.
    pub updated: bool,
}

#[derive(Debug, Deserialize)]
struct Ref {
    object: RefObject,
}

#[derive(Debug, Deserialize)]
struct RefObject {
    sha: String,
}

#[derive(Debug, Deserialize)]
struct Content {
    sha: String,
}

#[derive(Debug, Deserialize)]
struct Pull {
    number: u64,
    html_url: String,
}

impl GitHub {
    /// Propose `p`: point `p.branch` at the tip of `p.base` (created, or force-moved so the
    /// proposal is always one commit on the current base), commit the file there through the
    /// contents API, and open a pull request into `p.base` — or update the open one.
    pub fn propose_file(&self, p: &Proposal<'_>) -> Result<Proposed, ForgeError> {
        self.runtime.block_on(self.propose(p))
    }

    async fn propose(&self, p: &Proposal<'_>) -> Result<Proposed, ForgeError> {
        let repo = format!("/repos/{}/{}", self.owner, self.repo);
        let base: Ref = self
            .get_json(
                "read the base branch",
                &format!("{repo}/git/ref/heads/{}", p.base),
            )
            .await?
            .ok_or_else(|| ForgeError::Failed {
                forge: "GitHub",
                action: "read the base branch",
                status: 404,
                attempts: 1,
                message: format!("no branch `{}`", p.base),
            })?;
        let existing: Option<Ref> = self
            .get_json(
                "read the proposal branch",
                &format!("{repo}/git/ref/heads/{}", p.branch),
            )
            .await?;
        match existing {
            None => {
                let body = serde_json::json!({ "ref": format!("refs/heads/{}", p.branch), "sha": base.object.sha });
                self.send(
                    "create the proposal branch",
                    http::Method::POST,
                    &format!("{repo}/git/refs"),
                    Some(&body),
                )
                .await?;
            }
            Some(r) if r.object.sha != base.object.sha => {
                let body = serde_json::json!({ "sha": base.object.sha, "force": true });
                self.send(
                    "move the proposal branch onto the base",
                    http::Method::PATCH,
                    &format!("{repo}/git/refs/heads/{}", p.branch),
                    Some(&body),
                )
                .await?;
            }
            Some(_) => {}
        }
        let file: Option<Content> = self
            .get_json(
                "read the file on the proposal branch",
                &format!("{repo}/contents/{}?ref={}", p.path, p.branch),
            )
            .await?;
        let mut body = serde_json::json!({
            "message": p.message,
            "content": base64(p.content.as_bytes()),
            "branch": p.branch,
        });
        if let Some(f) = file {
            body["sha"] = serde_json::Value::String(f.sha);
        }
        self.send(
            "commit the file",
            http::Method::PUT,
            &format!("{repo}/contents/{}", p.path),
            Some(&body),
        )
        .await?;
        let open: Vec<Pull> = self
            .get_json(
                "list open pull requests of the proposal branch",
                &format!(
                    "{repo}/pulls?state=open&head={}:{}&base={}",
                    self.owner, p.branch, p.base
                ),
            )
            .await?
            .unwrap_or_default();
        let (action, method, path, payload, updated) = match open.first() {
            Some(pull) => (
                "update the proposal pull request",
                http::Method::PATCH,
                format!("{repo}/pulls/{}", pull.number),
                serde_json::json!({ "title": p.title, "body": p.body }),
                true,
            ),
            None => (
                "open the proposal pull request",
                http::Method::POST,
                format!("{repo}/pulls"),
                serde_json::json!({ "title": p.title, "body": p.body, "head": p.branch, "base": p.base }),
                false,
            ),
        };
        let text = self.send(action, method, &path, Some(&payload)).await?;
        let pull: Pull = parse(action, &text)?;
        Ok(Proposed {
            number: pull.number,
            url: pull.html_url,
            updated,
        })
    }

    /// GET `path` as JSON; `None` for a 404.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        action: &'static str,
        path: &str,
    ) -> Result<Option<T>, ForgeError> {
        match self.send(action, http::Method::GET, path, None).await {
            Ok(text) => parse(action, &text).map(Some),
            Err(ForgeError::Forbidden { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    action: &'static str,
    text: &str,
) -> Result<T, ForgeError> {
    crate::parse_answer("GitHub", action, text)
}

/// Standard base64 with padding, as the contents API takes it.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(input.as_bytes()), expected, "{input}");
        }
    }
}
