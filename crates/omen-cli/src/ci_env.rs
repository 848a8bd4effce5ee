//! Run metadata from the CI environment, the local git checkout, or flags.
//!
//! Everything here takes the environment as a lookup function so tests can fake a runner
//! without touching the process environment.

use std::path::Path;
use std::process::Command;

use omen_core::run::RunMeta;

/// Where the metadata came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// GitHub Actions variables.
    GitHub,
    /// GitLab CI variables.
    GitLab,
    /// The local git checkout.
    Git,
    /// Nothing was detected; only flags (if any) say anything.
    Flags,
}

impl Source {
    /// Lowercase name for the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::GitHub => "github",
            Source::GitLab => "gitlab",
            Source::Git => "git",
            Source::Flags => "flags",
        }
    }
}

/// The GitHub event payload at `path` (`GITHUB_EVENT_PATH`), when it can be read.
pub fn read_event(path: Option<&str>) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path?).ok()?;
    serde_json::from_str(&text).ok()
}

/// Is this a GitLab pipeline? GitLab sets `GITLAB_CI=true`; gitlab-ci-local sets it to `false`
/// but gives the API URL. Never inside GitHub Actions.
pub fn in_gitlab(env: &dyn Fn(&str) -> Option<String>) -> bool {
    env("GITHUB_ACTIONS").as_deref() != Some("true")
        && (env("GITLAB_CI").as_deref() == Some("true") || env("CI_API_V4_URL").is_some())
}

/// Where a GitLab pipeline's API is and what may authenticate to it.
#[derive(Debug)]
pub struct GitLabEnv {
    /// `CI_API_V4_URL`.
    pub api: String,
    /// The merge request's own project (`CI_MERGE_REQUEST_PROJECT_ID`; in a pipeline that runs
    /// in a fork `CI_PROJECT_ID` is the fork's), else `CI_PROJECT_ID`.
    pub project: String,
    /// The project's web URL, for links.
    pub project_url: Option<String>,
    /// The name of the variable that holds the access token (`OMEN_TOKEN_VARIABLE`, default
    /// `OMEN_GITLAB_TOKEN`).
    pub token_variable: String,
    /// The access token (`api` scope) from that variable.
    pub token: Option<omen_forge::Token>,
    /// `CI_JOB_TOKEN`: reads the project's artifacts, never writes notes.
    pub job_token: Option<omen_forge::Token>,
    /// The pipeline runs in a fork for a merge request into `project`: its tokens belong to the
    /// fork, so the target project may refuse them.
    pub fork: bool,
}

impl GitLabEnv {
    /// The pipeline's API, or why it is not known (one line).
    pub fn read(env: &dyn Fn(&str) -> Option<String>) -> Result<GitLabEnv, String> {
        let token_variable =
            env("OMEN_TOKEN_VARIABLE").unwrap_or_else(|| "OMEN_GITLAB_TOKEN".to_owned());
        let project = env("CI_MERGE_REQUEST_PROJECT_ID").or_else(|| env("CI_PROJECT_ID"));
        let (Some(api), Some(project)) = (env("CI_API_V4_URL"), project) else {
            return Err("CI_API_V4_URL or CI_PROJECT_ID is not set".to_owned());
        };
        Ok(GitLabEnv {
            api,
            project,
            project_url: env("CI_MERGE_REQUEST_PROJECT_URL").or_else(|| env("CI_PROJECT_URL")),
            token: env(&token_variable).map(omen_forge::Token::new),
            token_variable,
            job_token: env("CI_JOB_TOKEN").map(omen_forge::Token::new),
            fork: matches!(
                (env("CI_MERGE_REQUEST_SOURCE_PROJECT_ID"), env("CI_MERGE_REQUEST_PROJECT_ID")),
                (Some(source), Some(target)) if source != target
            ),
        })
    }

    /// The one line that says how to add the access token.
    pub fn add_token_hint(&self) -> String {
        let variable = &self.token_variable;
        format!(
            "add a project access token with the `api` scope as a CI/CD variable named {variable}, \
             masked but not protected (protected variables never reach merge request pipelines)"
        )
    }
}

/// The range a GitLab merge request's deploy risk is scored on, as (base, head): from the merge
/// base (`CI_MERGE_REQUEST_DIFF_BASE_SHA`) to the merge request's head. In merged-result and
/// merge-train pipelines the checkout is GitLab's merge of the head into the target branch, so
/// the head is `CI_MERGE_REQUEST_SOURCE_BRANCH_SHA`, not `HEAD`. `None` outside a GitLab merge
/// request pipeline, or when GitLab did not give the base.
pub fn gitlab_risk_range(env: &dyn Fn(&str) -> Option<String>) -> Option<(String, String)> {
    let var = |k: &str| {
        env(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    var("CI_MERGE_REQUEST_IID")?;
    let base = var("CI_MERGE_REQUEST_DIFF_BASE_SHA")?;
    let merged = matches!(
        var("CI_MERGE_REQUEST_EVENT_TYPE").as_deref(),
        Some("merged_result" | "merge_train")
    );
    let head = if merged {
        var("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA")?
    } else {
        "HEAD".to_owned()
    };
    Some((base, head))
}

/// Does the GitLab merge request carry `label` (`CI_MERGE_REQUEST_LABELS`, comma-separated)?
pub fn gitlab_has_label(env: &dyn Fn(&str) -> Option<String>, label: &str) -> bool {
    env("CI_MERGE_REQUEST_LABELS")
        .is_some_and(|labels| labels.split(',').any(|l| l.trim() == label))
}

/// Detect run metadata from CI variables (`env`), falling back to git in `cwd`.
/// `now` fills the timestamp; flags are applied by the caller afterwards.
pub fn detect(env: &dyn Fn(&str) -> Option<String>, cwd: &Path, now: i64) -> (RunMeta, Source) {
    let var = |k: &str| {
        env(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if var("GITHUB_ACTIONS").as_deref() == Some("true") || var("GITHUB_RUN_ID").is_some() {
        let event = read_event(var("GITHUB_EVENT_PATH").as_deref());
        let default_branch = event
            .as_ref()
            .and_then(|e| e.pointer("/repository/default_branch"))
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let pull_request = var("GITHUB_EVENT_NAME")
            .filter(|name| name.starts_with("pull_request"))
            .and_then(|_| event.as_ref()?.pointer("/pull_request/number")?.as_u64());
        let meta = RunMeta {
            commit: var("GITHUB_SHA"),
            // On pull requests GITHUB_REF_NAME is `<n>/merge`; the head branch is GITHUB_HEAD_REF.
            branch: var("GITHUB_HEAD_REF").or_else(|| var("GITHUB_REF_NAME")),
            default_branch,
            run_id: var("GITHUB_RUN_ID"),
            attempt: var("GITHUB_RUN_ATTEMPT")
                .and_then(|a| a.parse().ok())
                .unwrap_or(1),
            job: var("GITHUB_JOB"),
            pull_request,
            at: now,
            change: None,
            instance: None,
            queue_ms: None,
        };
        return (meta, Source::GitHub);
    }
    if var("GITLAB_CI").as_deref() == Some("true") || var("CI_PIPELINE_ID").is_some() {
        // A merge request pipeline names its source branch; a branch pipeline (push, schedule,
        // web, API) its branch; a tag pipeline no branch at all, so a tag never counts as the
        // default branch.
        let branch = var("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME")
            .or_else(|| var("CI_COMMIT_BRANCH"))
            .or_else(|| {
                var("CI_COMMIT_TAG")
                    .is_none()
                    .then(|| var("CI_COMMIT_REF_NAME"))
                    .flatten()
            });
        let meta = RunMeta {
            commit: var("CI_COMMIT_SHA"),
            branch,
            default_branch: var("CI_DEFAULT_BRANCH"),
            run_id: var("CI_PIPELINE_ID"),
            // GitLab has no attempt counter: a retried job gets a new CI_JOB_ID, the instance.
            attempt: 1,
            job: var("CI_JOB_NAME").or_else(|| var("CI_JOB_ID")),
            pull_request: var("CI_MERGE_REQUEST_IID").and_then(|n| n.parse().ok()),
            at: now,
            change: None,
            instance: var("CI_JOB_ID"),
            queue_ms: None,
        };
        return (meta, Source::GitLab);
    }
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(cwd)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(commit) => {
            let branch = git(&["rev-parse", "--abbrev-ref", "HEAD"]).filter(|b| b != "HEAD");
            let default_branch = git(&["symbolic-ref", "--short", "refs/remotes/origin/HEAD"])
                .map(|r| r.trim_start_matches("origin/").to_owned())
                .or_else(|| {
                    ["main", "master"]
                        .into_iter()
                        .find(|b| {
                            git(&[
                                "rev-parse",
                                "--verify",
                                "--quiet",
                                &format!("refs/heads/{b}"),
                            ])
                            .is_some()
                        })
                        .map(str::to_owned)
                });
            let meta = RunMeta {
                commit: Some(commit),
                branch,
                default_branch,
                attempt: 1,
                at: now,
                ..RunMeta::default()
            };
            (meta, Source::Git)
        }
        None => (
            RunMeta {
                attempt: 1,
                at: now,
                ..RunMeta::default()
            },
            Source::Flags,
        ),
    }
}

/// Checkout roots to strip from report paths: the CI workspace, then the git top level.
pub fn roots(env: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> Vec<String> {
    let mut roots: Vec<String> = ["GITHUB_WORKSPACE", "CI_PROJECT_DIR"]
        .iter()
        .filter_map(|k| env(k))
        .filter(|v| !v.trim().is_empty())
        .collect();
    if let Ok(out) = Command::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .current_dir(cwd)
        .output()
        && out.status.success()
    {
        roots.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    }
    roots.push(cwd.display().to_string());
    roots
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn github_pull_request() {
        let dir = tempfile::tempdir().unwrap();
        let event = dir.path().join("event.json");
        std::fs::write(
            &event,
            r#"{"pull_request":{"number":42},"repository":{"default_branch":"trunk"}}"#,
        )
        .unwrap();
        let env = with(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SHA", "abc"),
            ("GITHUB_REF_NAME", "42/merge"),
            ("GITHUB_HEAD_REF", "feature"),
            ("GITHUB_RUN_ID", "7"),
            ("GITHUB_RUN_ATTEMPT", "2"),
            ("GITHUB_JOB", "test"),
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_EVENT_PATH", event.to_str().unwrap()),
        ]);
        let (meta, source) = detect(&env, dir.path(), 5);
        assert_eq!(source, Source::GitHub);
        assert_eq!(meta.branch.as_deref(), Some("feature"));
        assert_eq!(meta.default_branch.as_deref(), Some("trunk"));
        assert_eq!((meta.attempt, meta.pull_request), (2, Some(42)));
        assert!(!meta.is_default_branch());
    }

    #[test]
    fn github_push_to_default_branch() {
        let dir = tempfile::tempdir().unwrap();
        let event = dir.path().join("event.json");
        std::fs::write(&event, r#"{"repository":{"default_branch":"main"}}"#).unwrap();
        let env = with(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REF_NAME", "main"),
            ("GITHUB_HEAD_REF", ""),
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_EVENT_PATH", event.to_str().unwrap()),
        ]);
        let (meta, _) = detect(&env, dir.path(), 5);
        assert!(meta.is_default_branch());
        assert_eq!(meta.attempt, 1);
    }

    #[test]
    fn gitlab_merge_request() {
        let env = with(&[
            ("GITLAB_CI", "true"),
            ("CI_COMMIT_SHA", "def"),
            ("CI_COMMIT_REF_NAME", "feature"),
            ("CI_DEFAULT_BRANCH", "main"),
            ("CI_PIPELINE_ID", "99"),
            ("CI_JOB_NAME", "rspec"),
            ("CI_JOB_ID", "1234"),
            ("CI_MERGE_REQUEST_IID", "3"),
        ]);
        let (meta, source) = detect(&env, Path::new("/"), 5);
        assert_eq!(source, Source::GitLab);
        assert_eq!(meta.run_id.as_deref(), Some("99"));
        assert_eq!(meta.job.as_deref(), Some("rspec"));
        assert_eq!(meta.instance.as_deref(), Some("1234"));
        assert_eq!(meta.pull_request, Some(3));
        assert!(!meta.is_default_branch());
    }

    #[test]
    fn gitlab_branch_tag_and_scheduled_pipelines() {
        let base = [
            ("GITLAB_CI", "true"),
            ("CI_DEFAULT_BRANCH", "main"),
            ("CI_PIPELINE_ID", "5"),
        ];
        let meta = |extra: &[(&'static str, &'static str)]| {
            let vars: Vec<_> = base.iter().chain(extra).copied().collect();
            detect(&with(&vars), Path::new("/"), 5).0
        };
        let push = meta(&[("CI_COMMIT_BRANCH", "main"), ("CI_COMMIT_REF_NAME", "main")]);
        assert!(push.is_default_branch());
        let scheduled = meta(&[
            ("CI_PIPELINE_SOURCE", "schedule"),
            ("CI_COMMIT_BRANCH", "main"),
            ("CI_COMMIT_REF_NAME", "main"),
        ]);
        assert!(scheduled.is_default_branch());
        // A tag called like the default branch is still not the default branch.
        let tag = meta(&[("CI_COMMIT_TAG", "main"), ("CI_COMMIT_REF_NAME", "main")]);
        assert_eq!(tag.branch, None);
        assert!(!tag.is_default_branch());
        let mr = meta(&[
            ("CI_MERGE_REQUEST_IID", "9"),
            ("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "feature"),
            ("CI_COMMIT_REF_NAME", "refs/merge-requests/9/merge"),
        ]);
        assert_eq!(
            (mr.branch.as_deref(), mr.pull_request),
            (Some("feature"), Some(9))
        );
    }

    #[test]
    fn gitlab_risk_is_scored_from_the_merge_base_to_the_merge_request_head() {
        let mr = [
            ("CI_MERGE_REQUEST_IID", "9"),
            ("CI_MERGE_REQUEST_DIFF_BASE_SHA", "b4se"),
            ("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA", "he4d"),
        ];
        let range = |event: &'static str| {
            let vars: Vec<_> = mr
                .iter()
                .copied()
                .chain([("CI_MERGE_REQUEST_EVENT_TYPE", event)])
                .collect();
            gitlab_risk_range(&with(&vars))
        };
        assert_eq!(range("detached"), Some(("b4se".into(), "HEAD".into())));
        assert_eq!(range("merged_result"), Some(("b4se".into(), "he4d".into())));
        assert_eq!(range("merge_train"), Some(("b4se".into(), "he4d".into())));
        assert_eq!(
            gitlab_risk_range(&with(&[("CI_COMMIT_BRANCH", "main")])),
            None
        );
        let labels = with(&[("CI_MERGE_REQUEST_LABELS", "bug, omen:accept-risk")]);
        assert!(gitlab_has_label(&labels, "omen:accept-risk"));
        assert!(!gitlab_has_label(&labels, "omen:accept"));
    }

    #[test]
    fn local_git_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .args(args)
                .current_dir(dir.path())
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.com")
                .status()
                .unwrap()
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q", "-b", "main"]);
        git(&["commit", "-q", "--allow-empty", "-m", "x"]);
        let (meta, source) = detect(&with(&[]), dir.path(), 5);
        assert_eq!(source, Source::Git);
        assert_eq!(meta.commit.as_ref().map(String::len), Some(40));
        assert!(meta.is_default_branch(), "{meta:?}");
    }
}
