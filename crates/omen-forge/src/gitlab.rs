//! GitLab's REST API (v4): Omen's merge request note, the merge request of a commit, and the
//! default branch's history database (a job artifact).
//!
//! The same HTTP and TLS stack as the GitHub client (octocrab's hyper + rustls, used here only as
//! a transport: base URL, one extra header, raw requests). The `gitlab` crate would pull about 180
//! crates and makes a request when it is built; Omen needs five calls.
//!
//! - The token is a project or group access token (`api` scope), sent as `PRIVATE-TOKEN`.
//!   `CI_JOB_TOKEN` cannot write notes, so Omen never tries with it: the caller posts nothing.
//!   A client made with [`GitLab::with_job_token`] sends `JOB-TOKEN` and only downloads
//!   artifacts.
//! - Redirects are followed only for artifact downloads (GitLab may send them to object
//!   storage), and a token is never sent to another origin.
//! - Omen's note is found by its marker *and* its author, the token's own user: a note someone
//!   else wrote (a quote of Omen's comment, say) is never edited.
//! - Notes are paged through `X-Next-Page`, 100 a page, so an old note is always found again.

use octocrab::Octocrab;
use serde::Deserialize;

use crate::{ForgeError, MergedPull, Posted, RetryPolicy, Token, exact_first, send, send_raw};

/// GitLab's limit on a note's body, in characters.
pub const NOTE_LIMIT: usize = 1_000_000;

/// A GitLab project client.
pub struct GitLab {
    runtime: tokio::runtime::Runtime,
    client: Octocrab,
    /// The API's `scheme://host[:port]`, to tell a redirect to another origin.
    origin: String,
    /// The credential header and its token, for a redirect that stays on this origin.
    auth: (http::HeaderName, Token),
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

/// A merge request as the merge requests endpoints return it.
#[derive(Debug, Deserialize)]
struct OpenRequest {
    iid: u64,
    #[serde(default)]
    web_url: String,
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
        GitLab::build(
            api_url,
            (http::HeaderName::from_static("private-token"), token),
            project,
            project_url,
            retry,
        )
    }

    /// A client that authenticates with the CI job token (`CI_JOB_TOKEN`, sent as `JOB-TOKEN`),
    /// for [`GitLab::download_artifact`]: GitLab lets a job token read its project's artifacts,
    /// never write notes.
    pub fn with_job_token(
        api_url: &str,
        job_token: &Token,
        project: &str,
        retry: RetryPolicy,
    ) -> Result<GitLab, ForgeError> {
        GitLab::build(
            api_url,
            (http::HeaderName::from_static("job-token"), job_token),
            project,
            None,
            retry,
        )
    }

    fn build(
        api_url: &str,
        (header, token): (http::HeaderName, &Token),
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
        let origin = origin_of(api_url)
            .ok_or_else(|| ForgeError::Setup(format!("base URL `{api_url}` has no host")))?;
        let client = client_at(&runtime, api_url, Some((&header, token)))?;
        Ok(GitLab {
            runtime,
            client,
            origin,
            auth: (header, token.clone()),
            project: encode_segment(project),
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

    /// How long this job waited for a runner, seconds: the `queued_duration` of `GET /job`,
    /// which GitLab answers with the job that owns the job token ([`GitLab::with_job_token`]).
    /// `None` when GitLab does not give it.
    pub fn job_queued_seconds(&self) -> Result<Option<f64>, ForgeError> {
        const ACTION: &str = "read this job";
        #[derive(serde::Deserialize)]
        struct Job {
            #[serde(default)]
            queued_duration: Option<f64>,
        }
        let (text, _) =
            self.runtime
                .block_on(self.send(ACTION, http::Method::GET, "/job", None))?;
        let job: Job = parse(ACTION, &text)?;
        Ok(job.queued_duration.filter(|s| s.is_finite() && *s >= 0.0))
    }

    /// The file `artifact_path` in the artifacts of job `job` of `ref_name`'s latest successful
    /// pipeline (`GET /projects/:id/jobs/artifacts/:ref/raw/*path?job=`); `None` when GitLab has
    /// none (404: no such job, file or successful pipeline yet). Up to three redirects are
    /// followed; the token goes only to the API's own origin.
    pub fn download_artifact(
        &self,
        ref_name: &str,
        artifact_path: &str,
        job: &str,
    ) -> Result<Option<Vec<u8>>, ForgeError> {
        const ACTION: &str = "download the artifact";
        let path = format!(
            "/projects/{}/jobs/artifacts/{}/raw/{}?job={}",
            self.project,
            encode_segment(ref_name),
            artifact_path
                .trim_start_matches("./")
                .split('/')
                .filter(|s| !s.is_empty())
                .map(encode_segment)
                .collect::<Vec<_>>()
                .join("/"),
            encode_segment(job),
        );
        self.runtime.block_on(async {
            let first = send_raw(
                &self.client,
                &self.retry,
                "GitLab",
                ACTION,
                http::Method::GET,
                &path,
                None,
            )
            .await;
            let mut answer = match first {
                Ok(a) => a,
                Err(ForgeError::Forbidden { status: 404, .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            for _ in 0..3 {
                if !answer.status.is_redirection() {
                    return Ok(Some(answer.body));
                }
                let location = answer
                    .headers
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<http::Uri>().ok())
                    .ok_or_else(|| {
                        failed(ACTION, answer.status, "a redirect without a location")
                    })?;
                let (origin, rest) = match (location.scheme_str(), location.authority()) {
                    (Some(scheme), Some(authority)) => (
                        format!("{scheme}://{authority}"),
                        location
                            .path_and_query()
                            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
                    ),
                    // A relative location stays on the API's origin.
                    _ => (self.origin.clone(), location.to_string()),
                };
                let same = origin.eq_ignore_ascii_case(&self.origin);
                let auth = same.then_some((&self.auth.0, &self.auth.1));
                let client = client_at(&self.runtime, &origin, auth)?;
                answer = send_raw(
                    &client,
                    &self.retry,
                    "GitLab",
                    ACTION,
                    http::Method::GET,
                    &rest,
                    None,
                )
                .await?;
            }
            Err(failed(ACTION, answer.status, "too many redirects"))
        })
    }

    /// Propose `p`: one commit with the file on `p.branch`, made from the tip of `p.base` and
    /// force-written over whatever the branch held (`POST /repository/commits` with
    /// `start_branch` and `force`), so the proposal is always one commit on the current base;
    /// then the open merge request from `p.branch` into `p.base` is updated, or one is opened.
    /// The token needs the `api` scope and the Developer role.
    pub fn propose_file(&self, p: &crate::Proposal<'_>) -> Result<crate::Proposed, ForgeError> {
        self.runtime.block_on(self.propose(p))
    }

    async fn propose(&self, p: &crate::Proposal<'_>) -> Result<crate::Proposed, ForgeError> {
        let project = &self.project;
        let on_base = format!(
            "/projects/{project}/repository/files/{}?ref={}",
            encode_segment(p.path),
            encode_segment(p.base)
        );
        let exists = match self
            .send(
                "read the file on the base branch",
                http::Method::GET,
                &on_base,
                None,
            )
            .await
        {
            Ok(_) => true,
            Err(ForgeError::Forbidden { status: 404, .. }) => false,
            Err(e) => return Err(e),
        };
        let commit = serde_json::json!({
            "branch": p.branch,
            "start_branch": p.base,
            "force": true,
            "commit_message": p.message,
            "actions": [{
                "action": if exists { "update" } else { "create" },
                "file_path": p.path,
                "content": p.content,
            }],
        });
        self.send(
            "commit the file",
            http::Method::POST,
            &format!("/projects/{project}/repository/commits"),
            Some(&commit),
        )
        .await?;
        const LIST: &str = "list open merge requests of the proposal branch";
        let (text, _) = self
            .send(
                LIST,
                http::Method::GET,
                &format!(
                    "/projects/{project}/merge_requests?state=opened&source_branch={}&target_branch={}",
                    encode_segment(p.branch),
                    encode_segment(p.base)
                ),
                None,
            )
            .await?;
        let open: Vec<OpenRequest> = parse(LIST, &text)?;
        let requests = format!("/projects/{project}/merge_requests");
        let (action, method, path, payload, updated) = match open.first() {
            Some(mr) => (
                "update the proposal merge request",
                http::Method::PUT,
                format!("{requests}/{}", mr.iid),
                serde_json::json!({ "title": p.title, "description": fit_note(p.body) }),
                true,
            ),
            None => (
                "open the proposal merge request",
                http::Method::POST,
                requests,
                serde_json::json!({
                    "source_branch": p.branch, "target_branch": p.base, "title": p.title,
                    "description": fit_note(p.body), "remove_source_branch": true,
                }),
                false,
            ),
        };
        let (text, _) = self.send(action, method, &path, Some(&payload)).await?;
        let mr: OpenRequest = parse(action, &text)?;
        Ok(crate::Proposed {
            number: mr.iid,
            url: mr.web_url,
            updated,
        })
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

/// A client at `base` (no path, or the API's path), sending `auth` with every request.
fn client_at(
    runtime: &tokio::runtime::Runtime,
    base: &str,
    auth: Option<(&http::HeaderName, &Token)>,
) -> Result<Octocrab, ForgeError> {
    // The client spawns its connection machinery, so it is built inside the runtime.
    let _guard = runtime.enter();
    let mut builder = Octocrab::builder()
        .base_uri(base.trim_end_matches('/'))
        .map_err(|e| ForgeError::Setup(format!("base URL `{base}`: {e}")))?;
    if let Some((header, token)) = auth {
        builder = builder.add_header(header.clone(), token.0.clone());
    }
    builder
        .build()
        .map_err(|e| ForgeError::Setup(e.to_string()))
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
}

fn failed(action: &'static str, status: http::StatusCode, message: &str) -> ForgeError {
    ForgeError::Failed {
        forge: "GitLab",
        action,
        status: status.as_u16(),
        attempts: 1,
        message: message.to_owned(),
    }
}

/// A project path, ref, file path or query value as one URL segment (`group/sub/project` →
/// `group%2Fsub%2Fproject`); a numeric id stays as it is.
fn encode_segment(project: &str) -> String {
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
        assert_eq!(encode_segment("42"), "42");
        assert_eq!(
            encode_segment("group/sub/my.project"),
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
