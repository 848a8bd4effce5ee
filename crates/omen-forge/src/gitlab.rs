//! GitLab's REST API (v4): Omen's merge request note, and the merge request of a commit.
//!
//! The same HTTP and TLS stack as the GitHub client (octocrab's hyper + rustls, used here only as
//! a transport: base URL, one extra header, raw requests). The `gitlab` crate would pull about 180
//! crates and makes a request when it is built; Omen needs four calls.
//!
//! - The token is a project or group access token (`api` scope), sent as `PRIVATE-TOKEN`.
//!   `CI_JOB_TOKEN` cannot write notes, so Omen never tries with it: the caller posts nothing.
//! - Omen's note is found by its marker *and* its author, the token's own user: a note someone
//!   else wrote (a quote of Omen's comment, say) is never edited.
//! - Notes are paged through `X-Next-Page`, 100 a page, so an old note is always found again.

use octocrab::Octocrab;
use serde::Deserialize;

use crate::{ForgeError, MergedPull, Posted, RetryPolicy, Token, exact_first, send};

/// GitLab's limit on a note's body, in characters.
pub const NOTE_LIMIT: usize = 1_000_000;

/// A GitLab project client.
pub struct GitLab {
    runtime: tokio::runtime::Runtime,
    client: Octocrab,
    /// The project id, URL-encoded when it is a path (`group%2Fproject`).
    project: String,
    /// The project's web URL (`CI_PROJECT_URL`), for links to the note.
    project_url: Option<String>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for GitLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitLab")
            .field("project", &self.project)
            .field("project_url", &self.project_url)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// A note as GitLab returns it.
#[derive(Debug, Deserialize)]
struct Note {
    id: u64,
    #[serde(default)]
    body: String,
    #[serde(default)]
    system: bool,
    author: User,
}

/// A user as GitLab returns it.
#[derive(Debug, Deserialize)]
struct User {
    id: u64,
}

/// A merge request as the commit's merge requests endpoint returns it.
#[derive(Debug, Deserialize)]
struct MergeRequest {
    iid: u64,
    created_at: String,
    #[serde(default)]
    merged_at: Option<String>,
    #[serde(default)]
    merge_commit_sha: Option<String>,
    #[serde(default)]
    squash_commit_sha: Option<String>,
}

impl GitLab {
    /// A client for `project` (a numeric id or a `group/project` path) at `api_url`
    /// (`CI_API_V4_URL`, e.g. `https://gitlab.example.com/api/v4`), with an access token.
    pub fn new(
        api_url: &str,
        token: &Token,
        project: &str,
        project_url: Option<&str>,
        retry: RetryPolicy,
    ) -> Result<GitLab, ForgeError> {
        let project = project.trim();
        if project.is_empty() || project.starts_with('/') || project.ends_with('/') {
            return Err(ForgeError::Setup(format!(
                "`{project}` is not a GitLab project id or path"
            )));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| ForgeError::Setup(format!("cannot start the async runtime: {e}")))?;
        let client = {
            let _guard = runtime.enter();
            Octocrab::builder()
                .base_uri(api_url.trim_end_matches('/'))
                .map_err(|e| ForgeError::Setup(format!("base URL `{api_url}`: {e}")))?
                .add_header(
                    http::HeaderName::from_static("private-token"),
                    token.0.clone(),
                )
                .build()
                .map_err(|e| ForgeError::Setup(e.to_string()))?
        };
        Ok(GitLab {
            runtime,
            client,
            project: encode_project(project),
            project_url: project_url.map(|u| u.trim_end_matches('/').to_owned()),
            retry,
        })
    }

    /// Create Omen's note on merge request `iid`, or update the one it wrote before.
    pub fn upsert_comment(&self, iid: u64, marker: &str, body: &str) -> Result<Posted, ForgeError> {
        self.runtime.block_on(async {
            let existing = self.find_note(iid, marker).await?;
            self.write(iid, existing, body).await
        })
    }

    /// Update Omen's note on `iid` if there is one; post nothing otherwise.
    pub fn update_comment_if_present(
        &self,
        iid: u64,
        marker: &str,
        body: &str,
    ) -> Result<Option<Posted>, ForgeError> {
        self.runtime.block_on(async {
            match self.find_note(iid, marker).await? {
                Some(id) => self.write(iid, Some(id), body).await.map(Some),
                None => Ok(None),
            }
        })
    }

    /// The merged merge request that brought `sha` into its target branch, if any: among the
    /// commit's merged merge requests, the one whose merge or squash commit is `sha` first.
    pub fn merged_pull_of(&self, sha: &str) -> Result<Option<MergedPull>, ForgeError> {
        const ACTION: &str = "list the merge requests of the commit";
        let path = format!(
            "/projects/{}/repository/commits/{sha}/merge_requests",
            self.project
        );
        let (text, _) = self
            .runtime
            .block_on(self.send(ACTION, http::Method::GET, &path, None))?;
        let requests: Vec<MergeRequest> = parse(ACTION, &text)?;
        let merged: Vec<_> = requests
            .into_iter()
            .filter_map(|mr| {
                let exact = mr.merge_commit_sha.as_deref() == Some(sha)
                    || mr.squash_commit_sha.as_deref() == Some(sha);
                let merged_at = mr.merged_at?;
                Some((
                    exact,
                    MergedPull {
                        number: mr.iid,
                        created_at: mr.created_at,
                        merged_at,
                    },
                ))
            })
            .collect();
        Ok(exact_first(merged))
    }

    async fn send(
        &self,
        action: &'static str,
        method: http::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(String, http::HeaderMap), ForgeError> {
        send(
            &self.client,
            &self.retry,
            "GitLab",
            action,
            method,
            path,
            body,
        )
        .await
    }

    /// The token's own user id (`GET /user`).
    async fn me(&self) -> Result<u64, ForgeError> {
        const ACTION: &str = "read the token's user";
        let (text, _) = self.send(ACTION, http::Method::GET, "/user", None).await?;
        Ok(parse::<User>(ACTION, &text)?.id)
    }

    /// The id of the note Omen's user wrote with `marker`, paging through every note.
    async fn find_note(&self, iid: u64, marker: &str) -> Result<Option<u64>, ForgeError> {
        const ACTION: &str = "list the merge request's notes";
        let me = self.me().await?;
        let mut page = 1u64;
        // GitLab says where the next page is; the bound only stops a server that never ends.
        for _ in 0..10_000 {
            let path = format!(
                "/projects/{}/merge_requests/{iid}/notes?per_page=100&page={page}",
                self.project
            );
            let (text, headers) = self.send(ACTION, http::Method::GET, &path, None).await?;
            let notes: Vec<Note> = parse(ACTION, &text)?;
            if let Some(note) = notes
                .iter()
                .find(|n| !n.system && n.author.id == me && n.body.contains(marker))
            {
                return Ok(Some(note.id));
            }
            match headers
                .get("x-next-page")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                Some(next) if next > page => page = next,
                _ => break,
            }
        }
        Ok(None)
    }

    async fn write(
        &self,
        iid: u64,
        existing: Option<u64>,
        body: &str,
    ) -> Result<Posted, ForgeError> {
        let payload = serde_json::json!({ "body": fit_note(body) });
        let notes = format!("/projects/{}/merge_requests/{iid}/notes", self.project);
        let (action, method, path) = match existing {
            Some(id) => (
                "update the note",
                http::Method::PUT,
                format!("{notes}/{id}"),
            ),
            None => ("create the note", http::Method::POST, notes),
        };
        let (text, _) = self.send(action, method, &path, Some(&payload)).await?;
        let note: Note = parse(action, &text)?;
        let url = self
            .project_url
            .as_ref()
            .map(|p| format!("{p}/-/merge_requests/{iid}#note_{}", note.id))
            .unwrap_or_default();
        Ok(Posted {
            url,
            updated: existing.is_some(),
        })
    }
}

/// A project path as GitLab wants it in a URL (`group/sub/project` → `group%2Fsub%2Fproject`);
/// a numeric id stays as it is.
fn encode_project(project: &str) -> String {
    let mut out = String::with_capacity(project.len());
    for b in project.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `body` cut to GitLab's limit at the end of a row, with a line saying so.
fn fit_note(body: &str) -> std::borrow::Cow<'_, str> {
    const CUT: &str =
        "\n\n_Cut to fit GitLab's note limit: the full report is in the job's artifacts._\n";
    if body.chars().count() <= NOTE_LIMIT {
        return body.into();
    }
    let room = NOTE_LIMIT - CUT.chars().count();
    let end = body.char_indices().nth(room).map_or(body.len(), |(i, _)| i);
    let kept = &body[..end];
    let kept = kept.rfind('\n').map_or(kept, |row| &kept[..row]);
    format!("{kept}{CUT}").into()
}

fn parse<T: serde::de::DeserializeOwned>(
    action: &'static str,
    text: &str,
) -> Result<T, ForgeError> {
    crate::parse_answer("GitLab", action, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_paths_are_url_encoded_and_ids_kept() {
        assert_eq!(encode_project("42"), "42");
        assert_eq!(
            encode_project("group/sub/my.project"),
            "group%2Fsub%2Fmy.project"
        );
        for bad in ["", "/x", "x/"] {
            assert!(
                GitLab::new(
                    "https://gitlab.example.com/api/v4",
                    &Token::new("t"),
                    bad,
                    None,
                    RetryPolicy::default()
                )
                .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn long_notes_are_cut_at_a_row_under_the_limit() {
        let row = "| test | failed |\n";
        let body = row.repeat(NOTE_LIMIT / row.len() + 10);
        let fitted = fit_note(&body);
        assert!(fitted.chars().count() <= NOTE_LIMIT);
        assert!(fitted.contains("Cut to fit"));
        let kept = fitted.split("\n\n_Cut").next().unwrap_or_default();
        assert!(kept.lines().all(|l| l == row.trim_end()), "a row was cut");
        assert_eq!(fit_note("short"), "short");
    }

    #[test]
    fn tokens_never_print() {
        let gl = GitLab::new(
            "https://gitlab.example.com/api/v4",
            &Token::new("glpat-supersecret"),
            "g/p",
            None,
            RetryPolicy::default(),
        )
        .unwrap();
        assert!(!format!("{gl:?}").contains("supersecret"), "{gl:?}");
    }
}
