//! The forge clients: the only crate that talks to GitHub's and GitLab's REST APIs.
//!
//! Architecture invariants:
//! - The API base URL always comes from configuration (`GITHUB_API_URL`, `CI_API_V4_URL`), so
//!   GitHub Enterprise and self-managed GitLab work and tests point the clients at a fake server
//!   on 127.0.0.1.
//! - Tokens live in [`Token`], whose `Debug` prints `***`; nothing here formats a token.
//! - Every request is bounded in time: 5xx answers and secondary rate limits are retried with
//!   backoff, honouring `Retry-After`, until [`RetryPolicy::budget`] runs out.

use std::time::{Duration, Instant};

use http::StatusCode;
use octocrab::Octocrab;
use serde::Deserialize;

pub mod gitlab;
pub mod propose;
pub use gitlab::GitLab;
pub use propose::{Proposal, Proposed};

/// An API token. `Debug` never shows it, and it has no `Display`.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Wrap a token.
    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into())
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Why a forge call failed.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// The token may not do this (a fork's read-only token, missing `pull-requests: write`).
    #[error("{forge} refused to {action} (HTTP {status}): {message}")]
    Forbidden {
        /// `GitHub` or `GitLab`.
        forge: &'static str,
        /// What Omen tried.
        action: &'static str,
        /// HTTP status.
        status: u16,
        /// GitHub's message.
        message: String,
    },
    /// Still failing after retries, or another unexpected answer.
    #[error("{forge} did not {action} (HTTP {status}) after {attempts} attempt(s): {message}")]
    Failed {
        /// `GitHub` or `GitLab`.
        forge: &'static str,
        /// What Omen tried.
        action: &'static str,
        /// Last HTTP status (0: no answer).
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// Last message.
        message: String,
    },
    /// The client could not be built (bad base URL, project or repository).
    #[error("cannot set up the forge client: {0}")]
    Setup(String),
}

/// How long and how often to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// First backoff; doubled each time unless `Retry-After` says otherwise.
    pub backoff: Duration,
    /// The longest Omen waits in total for one request (CI minutes cost money).
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            backoff: Duration::from_secs(2),
            budget: Duration::from_secs(60),
        }
    }
}

/// A comment as GitHub returns it.
#[derive(Debug, Deserialize)]
struct Comment {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    html_url: String,
}

/// A pull request as the commit-pulls endpoint returns it.
#[derive(Debug, Deserialize)]
struct PullSummary {
    number: u64,
    created_at: String,
    #[serde(default)]
    merged_at: Option<String>,
    #[serde(default)]
    merge_commit_sha: Option<String>,
}

/// The merged pull request that brought a commit into the default branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedPull {
    /// Its number.
    pub number: u64,
    /// When it was opened (RFC 3339, as GitHub gives it).
    pub created_at: String,
    /// When it was merged (RFC 3339).
    pub merged_at: String,
}

/// What `omen ci` needs from a forge: keep one marked comment current on a change request and
/// find the change request that produced a commit. [`GitHub`] (pull request comments) and
/// [`GitLab`] (merge request notes) implement it; `omen ci`'s steps only see this trait.
pub trait Forge {
    /// Create Omen's comment on change request `number`, or update the one carrying `marker`.
    fn upsert_comment(&self, number: u64, marker: &str, body: &str) -> Result<Posted, ForgeError>;
    /// Update Omen's comment on `number` if there is one; post nothing otherwise.
    fn update_comment_if_present(
        &self,
        number: u64,
        marker: &str,
        body: &str,
    ) -> Result<Option<Posted>, ForgeError>;
    /// The merged change request whose merge produced `sha`, if any.
    fn merged_pull_of(&self, sha: &str) -> Result<Option<MergedPull>, ForgeError>;
    /// Propose a file change as one change request kept current (see [`propose::Proposal`]).
    fn propose_file(&self, p: &propose::Proposal<'_>) -> Result<propose::Proposed, ForgeError>;
}

impl Forge for GitHub {
    fn upsert_comment(&self, number: u64, marker: &str, body: &str) -> Result<Posted, ForgeError> {
        GitHub::upsert_comment(self, number, marker, body)
    }
    fn update_comment_if_present(
        &self,
        number: u64,
        marker: &str,
        body: &str,
    ) -> Result<Option<Posted>, ForgeError> {
        GitHub::update_comment_if_present(self, number, marker, body)
    }
    fn merged_pull_of(&self, sha: &str) -> Result<Option<MergedPull>, ForgeError> {
        GitHub::merged_pull_of(self, sha)
    }
    fn propose_file(&self, p: &propose::Proposal<'_>) -> Result<propose::Proposed, ForgeError> {
        GitHub::propose_file(self, p)
    }
}

impl Forge for GitLab {
    fn upsert_comment(&self, number: u64, marker: &str, body: &str) -> Result<Posted, ForgeError> {
        GitLab::upsert_comment(self, number, marker, body)
    }
    fn update_comment_if_present(
        &self,
        number: u64,
        marker: &str,
        body: &str,
    ) -> Result<Option<Posted>, ForgeError> {
        GitLab::update_comment_if_present(self, number, marker, body)
    }
    fn merged_pull_of(&self, sha: &str) -> Result<Option<MergedPull>, ForgeError> {
        GitLab::merged_pull_of(self, sha)
    }
    fn propose_file(&self, p: &propose::Proposal<'_>) -> Result<propose::Proposed, ForgeError> {
        GitLab::propose_file(self, p)
    }
}

/// A GitHub repository client. It owns a current-thread runtime: `omen` makes a handful of calls
/// per run, and the rest of Omen stays synchronous.
#[derive(Debug)]
pub struct GitHub {
    runtime: tokio::runtime::Runtime,
    client: Octocrab,
    owner: String,
    repo: String,
    retry: RetryPolicy,
}

/// A job in progress, as [`GitHub::running_job`] finds it: it waited for a runner from
/// `created_at` to `started_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningJob {
    /// When the job was queued (RFC 3339).
    pub created_at: String,
    /// When a runner started it (RFC 3339).
    pub started_at: Option<String>,
}

/// The result of [`GitHub::upsert_comment`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The comment's URL.
    pub url: String,
    /// True when an existing comment was updated.
    pub updated: bool,
}

impl GitHub {
    /// A client for `repository` (`owner/name`) at `api_url` (e.g. `https://api.github.com`).
    pub fn new(
        api_url: &str,
        token: &Token,
        repository: &str,
        retry: RetryPolicy,
    ) -> Result<GitHub, ForgeError> {
        let (owner, repo) = repository
            .split_once('/')
            .filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
            .ok_or_else(|| ForgeError::Setup(format!("`{repository}` is not owner/name")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| ForgeError::Setup(format!("cannot start the async runtime: {e}")))?;
        // The client spawns its connection machinery, so it is built inside the runtime.
        let client = {
            let _guard = runtime.enter();
            Octocrab::builder()
                .base_uri(api_url.trim_end_matches('/'))
                .map_err(|e| ForgeError::Setup(format!("base URL `{api_url}`: {e}")))?
                .personal_token(token.0.clone())
                .build()
                .map_err(|e| ForgeError::Setup(e.to_string()))?
        };
        Ok(GitHub {
            runtime,
            client,
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            retry,
        })
    }

    /// Create Omen's comment on pull request `pr`, or update the one that carries `marker`.
    /// Pages through every comment (100 a page) so an old comment is always found again.
    pub fn upsert_comment(&self, pr: u64, marker: &str, body: &str) -> Result<Posted, ForgeError> {
        self.runtime.block_on(self.upsert(pr, marker, body))
    }

    /// Update Omen's comment on `pr` if there is one; post nothing otherwise.
    pub fn update_comment_if_present(
        &self,
        pr: u64,
        marker: &str,
        body: &str,
    ) -> Result<Option<Posted>, ForgeError> {
        self.runtime.block_on(async {
            match self.find_marker(pr, marker).await? {
                Some(id) => self.write(pr, Some(id), body).await.map(Some),
                None => Ok(None),
            }
        })
    }

    /// The merged pull request whose merge (merge, squash or rebase) produced `sha`, if any.
    /// Reads `GET /repos/{owner}/{repo}/commits/{sha}/pulls`; among merged pull requests it
    /// prefers the one whose `merge_commit_sha` is `sha`.
    pub fn merged_pull_of(&self, sha: &str) -> Result<Option<MergedPull>, ForgeError> {
        const ACTION: &str = "list the pull requests of the commit";
        let path = format!("/repos/{}/{}/commits/{sha}/pulls", self.owner, self.repo);
        let text = self
            .runtime
            .block_on(self.send(ACTION, http::Method::GET, &path, None))?;
        let pulls: Vec<PullSummary> = parse_answer("GitHub", ACTION, &text)?;
        let merged: Vec<_> = pulls
            .into_iter()
            .filter_map(|p| {
                let exact = p.merge_commit_sha.as_deref() == Some(sha);
                let merged_at = p.merged_at?;
                Some((
                    exact,
                    MergedPull {
                        number: p.number,
                        created_at: p.created_at,
                        merged_at,
                    },
                ))
            })
            .collect();
        Ok(exact_first(merged))
    }

    /// This job as GitHub lists it: among the jobs of attempt `attempt` of workflow run `run_id`
    /// (`GET /repos/{owner}/{repo}/actions/runs/{run_id}/attempts/{attempt}/jobs`, 100 a page),
    /// the one in progress on runner `runner` (`RUNNER_NAME`). `None` when none matches.
    pub fn running_job(
        &self,
        run_id: &str,
        attempt: u32,
        runner: &str,
    ) -> Result<Option<RunningJob>, ForgeError> {
        const ACTION: &str = "list the jobs of the run";
        if run_id.is_empty() || !run_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ForgeError::Setup(format!("`{run_id}` is not a run id")));
        }
        #[derive(serde::Deserialize)]
        struct Jobs {
            jobs: Vec<Job>,
        }
        #[derive(serde::Deserialize)]
        struct Job {
            status: String,
            created_at: String,
            started_at: Option<String>,
            runner_name: Option<String>,
        }
        // A matrix of more than 1,000 jobs is not looked through.
        for page in 1..=10 {
            let path = format!(
                "/repos/{}/{}/actions/runs/{run_id}/attempts/{attempt}/jobs?per_page=100&page={page}",
                self.owner, self.repo
            );
            let text = self
                .runtime
                .block_on(self.send(ACTION, http::Method::GET, &path, None))?;
            let jobs: Jobs = parse_answer("GitHub", ACTION, &text)?;
            let found = jobs
                .jobs
                .iter()
                .find(|j| j.status == "in_progress" && j.runner_name.as_deref() == Some(runner));
            if let Some(job) = found {
                return Ok(Some(RunningJob {
                    created_at: job.created_at.clone(),
                    started_at: job.started_at.clone(),
                }));
            }
            if jobs.jobs.len() < 100 {
                break;
            }
        }
        Ok(None)
    }

    async fn upsert(&self, pr: u64, marker: &str, body: &str) -> Result<Posted, ForgeError> {
        let existing = self.find_marker(pr, marker).await?;
        self.write(pr, existing, body).await
    }

    /// The id of the comment carrying `marker`, paging through all comments.
    async fn find_marker(&self, pr: u64, marker: &str) -> Result<Option<u64>, ForgeError> {
        for page in 1.. {
            let path = format!(
                "/repos/{}/{}/issues/{pr}/comments?per_page=100&page={page}",
                self.owner, self.repo
            );
            let text = self
                .send(
                    "list the pull request's comments",
                    http::Method::GET,
                    &path,
                    None,
                )
                .await?;
            let comments: Vec<Comment> =
                parse_answer("GitHub", "list the pull request's comments", &text)?;
            if let Some(c) = comments
                .iter()
                .find(|c| c.body.as_deref().is_some_and(|b| b.contains(marker)))
            {
                return Ok(Some(c.id));
            }
            if comments.len() < 100 {
                break;
            }
        }
        Ok(None)
    }

    async fn write(
        &self,
        pr: u64,
        existing: Option<u64>,
        body: &str,
    ) -> Result<Posted, ForgeError> {
        let payload = serde_json::json!({ "body": body });
        let (action, method, path) = match existing {
            Some(id) => (
                "update the comment",
                http::Method::PATCH,
                format!("/repos/{}/{}/issues/comments/{id}", self.owner, self.repo),
            ),
            None => (
                "create the comment",
                http::Method::POST,
                format!("/repos/{}/{}/issues/{pr}/comments", self.owner, self.repo),
            ),
        };
        let text = self.send(action, method, &path, Some(&payload)).await?;
        let comment: Comment = parse_answer("GitHub", action, &text)?;
        Ok(Posted {
            url: comment.html_url,
            updated: existing.is_some(),
        })
    }

    async fn send(
        &self,
        action: &'static str,
        method: http::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<String, ForgeError> {
        send(
            &self.client,
            &self.retry,
            "GitHub",
            action,
            method,
            path,
            body,
        )
        .await
        .map(|(text, _)| text)
    }
}

/// A JSON answer read as `T`; an answer of another shape is a failure of `action`.
pub(crate) fn parse_answer<T: serde::de::DeserializeOwned>(
    forge: &'static str,
    action: &'static str,
    text: &str,
) -> Result<T, ForgeError> {
    serde_json::from_str(text).map_err(|e| ForgeError::Failed {
        forge,
        action,
        status: 200,
        attempts: 1,
        message: format!("unexpected answer: {e}"),
    })
}

/// The first candidate marked exact (its merge commit is the one asked about), else the first.
pub(crate) fn exact_first(mut candidates: Vec<(bool, MergedPull)>) -> Option<MergedPull> {
    candidates.sort_by_key(|(exact, _)| !exact);
    candidates.into_iter().next().map(|(_, pull)| pull)
}

/// One request through `client`, retried on 5xx answers and rate limits (honouring
/// `Retry-After`) within `retry`; the answer's body and headers. A redirect is a failure here:
/// the JSON endpoints never redirect.
pub(crate) async fn send(
    client: &Octocrab,
    retry: &RetryPolicy,
    forge: &'static str,
    action: &'static str,
    method: http::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<(String, http::HeaderMap), ForgeError> {
    let answer = send_raw(client, retry, forge, action, method, path, body).await?;
    if answer.status.is_redirection() {
        return Err(ForgeError::Failed {
            forge,
            action,
            status: answer.status.as_u16(),
            attempts: 1,
            message: "unexpected redirect".to_owned(),
        });
    }
    Ok((
        String::from_utf8_lossy(&answer.body).into_owned(),
        answer.headers,
    ))
}

/// A successful or redirecting answer, its body as bytes.
pub(crate) struct RawAnswer {
    pub(crate) status: StatusCode,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// [`send`], returning 2xx and 3xx answers as they are, the body as bytes.
pub(crate) async fn send_raw(
    client: &Octocrab,
    retry: &RetryPolicy,
    forge: &'static str,
    action: &'static str,
    method: http::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<RawAnswer, ForgeError> {
    use http_body_util::BodyExt as _;
    let started = Instant::now();
    let mut wait = retry.backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let response = match method {
            http::Method::GET => client._get(path).await,
            http::Method::POST => client._post(path, body).await,
            http::Method::PUT => client._put(path, body).await,
            _ => client._patch(path, body).await,
        };
        let (status, headers, bytes) = match response {
            Ok(r) => {
                let status = r.status();
                let headers = r.headers().clone();
                match r.into_body().collect().await {
                    Ok(collected) => (status, headers, collected.to_bytes().to_vec()),
                    // The answer broke off: like no answer, worth another try.
                    Err(e) => (
                        StatusCode::from_u16(599).unwrap_or(StatusCode::BAD_GATEWAY),
                        http::HeaderMap::new(),
                        e.to_string().into_bytes(),
                    ),
                }
            }
            Err(e) => (
                StatusCode::from_u16(599).unwrap_or(StatusCode::BAD_GATEWAY),
                http::HeaderMap::new(),
                e.to_string().into_bytes(),
            ),
        };
        if status.is_success() || status.is_redirection() {
            return Ok(RawAnswer {
                status,
                headers,
                body: bytes,
            });
        }
        let text = String::from_utf8_lossy(&bytes);
        let retry_after = headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                let m = v.get("message").or_else(|| v.get("error"))?;
                Some(m.as_str().map_or_else(|| m.to_string(), str::to_owned))
            })
            .unwrap_or_else(|| text.chars().take(200).collect());
        let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::FORBIDDEN
                && (retry_after.is_some() || message.to_ascii_lowercase().contains("rate limit")));
        let retryable = status.is_server_error() || rate_limited;
        if !retryable {
            let status = status.as_u16();
            return Err(if status == 403 || status == 401 || status == 404 {
                ForgeError::Forbidden {
                    forge,
                    action,
                    status,
                    message,
                }
            } else {
                ForgeError::Failed {
                    forge,
                    action,
                    status,
                    attempts: attempt,
                    message,
                }
            });
        }
        let delay = retry_after.unwrap_or(wait);
        if attempt >= retry.attempts || started.elapsed() + delay > retry.budget {
            return Err(ForgeError::Failed {
                forge,
                action,
                status: status.as_u16(),
                attempts: attempt,
                message,
            });
        }
        tracing::warn!(%status, attempt, delay_s = delay.as_secs_f64(), "{forge} could not {action}; retrying");
        tokio::time::sleep(delay).await;
        wait = wait.saturating_mul(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_print() {
        let t = Token::new("ghs_supersecret");
        assert_eq!(format!("{t:?}"), "***");
        let gh = GitHub::new("https://api.github.com", &t, "o/r", RetryPolicy::default()).unwrap();
        assert!(!format!("{gh:?}").contains("supersecret"), "{gh:?}");
    }

    #[test]
    fn repository_must_be_owner_slash_name() {
        let t = Token::new("x");
        for bad in ["", "o", "o/", "/r", "o/r/x"] {
            assert!(
                GitHub::new("https://api.github.com", &t, bad, RetryPolicy::default()).is_err(),
                "{bad}"
            );
        }
    }
}
