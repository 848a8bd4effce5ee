//! A fake GitHub REST API on 127.0.0.1 for the tests: the issue-comment endpoints Omen uses and
//! the pull requests of a commit, checked the way GitHub checks them, with scripted failures.

use std::collections::VecDeque;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};

use crate::fake_http::{Server, read_request, respond};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path with query.
    pub path: String,
    /// The `Authorization` header.
    pub auth: Option<String>,
    /// The body.
    pub body: String,
    /// Status the server answered.
    pub status: u16,
}

/// A scripted answer for the next request (any endpoint).
#[derive(Debug, Clone)]
pub struct Scripted {
    /// Only for this method (None: the next request of any method).
    pub method: Option<String>,
    /// HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// JSON body.
    pub body: String,
}

#[derive(Debug, Default)]
struct State {
    comments: Vec<(u64, String)>,
    /// (commit, pull request as GitHub returns it) for `GET /repos/…/commits/{sha}/pulls`.
    pulls: Vec<(String, serde_json::Value)>,
    next_id: u64,
    seen: Vec<Seen>,
    script: VecDeque<Scripted>,
    read_only: bool,
    /// Branches and the commit each points at.
    branches: Vec<(String, String)>,
    /// Files committed through the contents API: (branch, path, blob sha, contents).
    files: Vec<(String, String, String, String)>,
    /// Open pull requests: (number, head, base, title, body).
    open_pulls: Vec<(u64, String, String, String, String)>,
    /// Jobs of workflow runs, as GitHub lists them: (run id, attempt, job).
    jobs: Vec<(String, u32, serde_json::Value)>,
}

/// A pull request Omen opened, as the fake keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPull {
    /// Its number.
    pub number: u64,
    /// Head branch.
    pub head: String,
    /// Base branch.
    pub base: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
}

/// The server. Dropping it stops it.
pub struct FakeGitHub {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    state: Arc<Mutex<State>>,
    _server: Server,
}

/// The repository, pull request and token the fake accepts.
pub const REPO: &str = "octo/widgets";
/// Pull request number.
pub const PR: u64 = 7;
/// The only token it accepts.
pub const TOKEN: &str = "ghs_test_token_0123456789";

impl FakeGitHub {
    /// Start on a free port.
    pub fn start() -> FakeGitHub {
        let state = Arc::new(Mutex::new(State {
            next_id: 1000,
            ..State::default()
        }));
        let s = state.clone();
        let server = Server::start(move |stream| handle(stream, &s));
        FakeGitHub {
            url: format!("http://{}", server.addr),
            state,
            _server: server,
        }
    }

    /// Add `n` comments by other people.
    pub fn seed_comments(&self, n: usize) {
        let mut st = self.state.lock().unwrap();
        for i in 0..n {
            let id = st.next_id;
            st.next_id += 1;
            st.comments.push((id, format!("comment {i} by a human")));
        }
    }

    /// Add a comment with this body (e.g. an old Omen comment).
    pub fn seed_comment(&self, body: &str) -> u64 {
        let mut st = self.state.lock().unwrap();
        let id = st.next_id;
        st.next_id += 1;
        st.comments.push((id, body.to_owned()));
        id
    }

    /// Make `sha` the merge of pull request `number`, opened and merged at these RFC 3339 times.
    pub fn seed_merged_pull(&self, sha: &str, number: u64, created_at: &str, merged_at: &str) {
        self.state.lock().unwrap().pulls.push((
            sha.to_owned(),
            serde_json::json!({
                "number": number,
                "state": "closed",
                "created_at": created_at,
                "merged_at": merged_at,
                "merge_commit_sha": sha,
                "user": { "login": "bob" },
            }),
        ));
    }

    /// A job of attempt `attempt` of workflow run `run_id`, on `runner`, queued at `created_at`
    /// and started at `started_at` (RFC 3339), with `status` (`in_progress`, `completed`, …).
    pub fn seed_job(
        &self,
        run_id: &str,
        attempt: u32,
        runner: &str,
        status: &str,
        created_at: &str,
        started_at: &str,
    ) {
        let mut st = self.state.lock().unwrap();
        let id = st.next_id;
        st.next_id += 1;
        st.jobs.push((
            run_id.to_owned(),
            attempt,
            serde_json::json!({
                "id": id,
                "run_id": run_id.parse::<u64>().unwrap(),
                "name": "test",
                "status": status,
                "created_at": created_at,
                "started_at": started_at,
                "runner_name": runner,
            }),
        ));
    }

    /// Answer the next `method` request (any method if `None`) with this instead.
    pub fn script(&self, method: Option<&str>, status: u16, headers: &[(&str, &str)], body: &str) {
        self.state.lock().unwrap().script.push_back(Scripted {
            method: method.map(str::to_owned),
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_owned(),
        });
    }

    /// Create branch `name` at commit `sha` (40 hex digits).
    pub fn seed_branch(&self, name: &str, sha: &str) {
        let mut st = self.state.lock().unwrap();
        st.branches.retain(|(b, _)| b != name);
        st.branches.push((name.to_owned(), sha.to_owned()));
    }

    /// The commit `branch` points at.
    pub fn branch(&self, name: &str) -> Option<String> {
        let st = self.state.lock().unwrap();
        st.branches
            .iter()
            .find(|(b, _)| b == name)
            .map(|(_, s)| s.clone())
    }

    /// The contents of `path` committed on `branch`.
    pub fn file(&self, branch: &str, path: &str) -> Option<String> {
        let st = self.state.lock().unwrap();
        st.files
            .iter()
            .find(|(b, p, _, _)| b == branch && p == path)
            .map(|(_, _, _, c)| c.clone())
    }

    /// The open pull requests.
    pub fn open_pulls(&self) -> Vec<OpenPull> {
        let st = self.state.lock().unwrap();
        st.open_pulls
            .iter()
            .map(|(number, head, base, title, body)| OpenPull {
                number: *number,
                head: head.clone(),
                base: base.clone(),
                title: title.clone(),
                body: body.clone(),
            })
            .collect()
    }

    /// Refuse writes like a fork's read-only token.
    pub fn read_only(&self) {
        self.state.lock().unwrap().read_only = true;
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// The comments now on the pull request.
    pub fn comments(&self) -> Vec<(u64, String)> {
        self.state.lock().unwrap().comments.clone()
    }
}

fn handle(stream: &TcpStream, state: &Arc<Mutex<State>>) {
    let Some(request) = read_request(stream) else {
        return;
    };
    let auth = request.header("authorization").map(str::to_owned);
    let mut st = state.lock().unwrap();
    let (status, extra, answer) = route(
        &mut st,
        &request.method,
        &request.path,
        auth.as_deref(),
        request.header("content-type").map(str::to_owned),
        &request.body,
    );
    st.seen.push(Seen {
        method: request.method,
        path: request.path,
        auth,
        body: request.body,
        status,
    });
    drop(st);
    respond(stream, status, &extra, &answer);
}

fn json_comment(id: u64, body: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "body": body,
        "html_url": format!("https://github.com/{REPO}/pull/{PR}#issuecomment-{id}"),
        "user": { "login": "github-actions[bot]" },
    })
}

fn route(
    st: &mut State,
    method: &str,
    path: &str,
    auth: Option<&str>,
    content_type: Option<String>,
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let msg = |m: &str| serde_json::json!({ "message": m }).to_string();
    if auth != Some(&format!("Bearer {TOKEN}")) {
        return (401, vec![], msg("Bad credentials"));
    }
    if let Some(i) = st
        .script
        .iter()
        .position(|s| s.method.as_deref().is_none_or(|m| m == method))
        && let Some(s) = st.script.remove(i)
    {
        return (s.status, s.headers, s.body);
    }
    let list = format!("/repos/{REPO}/issues/{PR}/comments");
    let (route_path, query) = path.split_once('?').unwrap_or((path, ""));
    let writes = method == "POST" || method == "PATCH" || method == "PUT";
    if writes {
        if st.read_only {
            return (403, vec![], msg("Resource not accessible by integration"));
        }
        if !content_type.is_some_and(|c| c.starts_with("application/json")) {
            return (415, vec![], msg("Unsupported Media Type"));
        }
    }
    // `GET /repos/{repo}/actions/runs/{run_id}/attempts/{attempt}/jobs`, one page of 100.
    if method == "GET"
        && let Some(rest) = route_path.strip_prefix(&format!("/repos/{REPO}/actions/runs/"))
        && let Some((run_id, rest)) = rest.split_once("/attempts/")
        && let Some(attempt) = rest.strip_suffix("/jobs")
    {
        let Ok(attempt) = attempt.parse::<u32>() else {
            return (404, vec![], msg("Not Found"));
        };
        let jobs: Vec<serde_json::Value> = st
            .jobs
            .iter()
            .filter(|(r, a, _)| r == run_id && *a == attempt)
            .map(|(_, _, j)| j.clone())
            .collect();
        return (
            200,
            vec![],
            serde_json::json!({ "total_count": jobs.len(), "jobs": jobs }).to_string(),
        );
    }
    let git = format!("/repos/{REPO}/git/");
    let contents = format!("/repos/{REPO}/contents/");
    let pulls = format!("/repos/{REPO}/pulls");
    if route_path.starts_with(&git)
        || route_path.starts_with(&contents)
        || route_path.starts_with(&pulls)
    {
        return repository_route(st, method, route_path, query, body);
    }
    if writes {
        // GitHub: JSON object with a non-empty string "body" of at most 65,536 characters.
        let parsed: Option<String> = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("body").and_then(|b| b.as_str()).map(str::to_owned));
        match parsed {
            Some(b) if !b.is_empty() && b.chars().count() <= 65_536 => {}
            _ => {
                return (
                    422,
                    vec![],
                    msg("Validation Failed: body is missing or too long"),
                );
            }
        }
    }
    let new_body = || {
        serde_json::from_str::<serde_json::Value>(body).unwrap()["body"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    match (method, route_path) {
        ("GET", p) if p == list => {
            let per_page: usize = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("per_page="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(30);
            let page: usize = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("page="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let items: Vec<_> = st
                .comments
                .iter()
                .skip((page.max(1) - 1) * per_page)
                .take(per_page)
                .map(|(id, b)| json_comment(*id, b))
                .collect();
            (200, vec![], serde_json::Value::Array(items).to_string())
        }
        ("POST", p) if p == list => {
            let id = st.next_id;
            st.next_id += 1;
            let b = new_body();
            st.comments.push((id, b.clone()));
            (201, vec![], json_comment(id, &b).to_string())
        }
        ("PATCH", p) if p.starts_with(&format!("/repos/{REPO}/issues/comments/")) => {
            let id: u64 = p
                .rsplit('/')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let b = new_body();
            match st.comments.iter_mut().find(|(cid, _)| *cid == id) {
                Some(c) => {
                    c.1 = b.clone();
                    (200, vec![], json_comment(id, &b).to_string())
                }
                None => (404, vec![], msg("Not Found")),
            }
        }
        ("GET", p)
            if p.starts_with(&format!("/repos/{REPO}/commits/")) && p.ends_with("/pulls") =>
        {
            let sha = &p[format!("/repos/{REPO}/commits/").len()..p.len() - "/pulls".len()];
            // GitHub: a full or abbreviated hex SHA it knows, else 422.
            if sha.len() < 7 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return (422, vec![], msg(&format!("No commit found for SHA: {sha}")));
            }
            let items: Vec<_> = st
                .pulls
                .iter()
                .filter(|(s, _)| s == sha)
                .map(|(_, p)| p.clone())
                .collect();
            (200, vec![], serde_json::Value::Array(items).to_string())
        }
        _ => (404, vec![], msg("Not Found")),
    }
}

fn is_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Standard base64 with padding, strictly (as GitHub's contents API checks it).
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let text: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::new();
    for chunk in text.chunks(4) {
        let mut n = 0u32;
        let mut pad = 0;
        for &c in chunk {
            let v = if c == b'=' {
                pad += 1;
                0
            } else {
                if pad > 0 {
                    return None;
                }
                ALPHABET.iter().position(|&a| a == c)? as u32
            };
            n = (n << 6) | v;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// Refs, contents and pull requests, checked the way GitHub checks them.
fn repository_route(
    st: &mut State,
    method: &str,
    path: &str,
    query: &str,
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let msg = |m: &str| serde_json::json!({ "message": m }).to_string();
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    let field = |name: &str| json.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
    };
    let git_ref = format!("/repos/{REPO}/git/ref/heads/");
    let git_refs = format!("/repos/{REPO}/git/refs");
    let contents = format!("/repos/{REPO}/contents/");
    let pulls = format!("/repos/{REPO}/pulls");
    let branch_sha = |st: &State, name: &str| {
        st.branches
            .iter()
            .find(|(b, _)| b == name)
            .map(|(_, s)| s.clone())
    };
    match method {
        "GET" if path.starts_with(&git_ref) => {
            let name = &path[git_ref.len()..];
            match branch_sha(st, name) {
                Some(sha) => (
                    200,
                    vec![],
                    serde_json::json!({ "ref": format!("refs/heads/{name}"), "object": { "sha": sha, "type": "commit" } }).to_string(),
                ),
                None => (404, vec![], msg("Not Found")),
            }
        }
        "POST" if path == git_refs => {
            let (Some(r), Some(sha)) = (field("ref"), field("sha")) else {
                return (
                    422,
                    vec![],
                    msg("Invalid request: ref and sha are required"),
                );
            };
            let Some(name) = r.strip_prefix("refs/heads/").filter(|n| !n.is_empty()) else {
                return (
                    422,
                    vec![],
                    msg("Reference name must start with 'refs/' and have two slashes"),
                );
            };
            if !is_sha(&sha) || !st.branches.iter().any(|(_, s)| *s == sha) {
                return (422, vec![], msg("Object does not exist"));
            }
            if branch_sha(st, name).is_some() {
                return (422, vec![], msg("Reference already exists"));
            }
            st.branches.push((name.to_owned(), sha.clone()));
            (
                201,
                vec![],
                serde_json::json!({ "ref": r, "object": { "sha": sha } }).to_string(),
            )
        }
        "PATCH" if path.starts_with(&format!("{git_refs}/heads/")) => {
            let name = path[format!("{git_refs}/heads/").len()..].to_owned();
            let Some(sha) = field("sha").filter(|s| is_sha(s)) else {
                return (422, vec![], msg("Invalid request: sha is required"));
            };
            if branch_sha(st, &name).is_none() {
                return (422, vec![], msg("Reference does not exist"));
            }
            // Moving a branch back onto its base discards commits: GitHub needs force.
            if json.get("force").and_then(|f| f.as_bool()) != Some(true) {
                return (422, vec![], msg("Update is not a fast forward"));
            }
            for (b, s) in &mut st.branches {
                if *b == name {
                    s.clone_from(&sha);
                }
            }
            // The branch's commits are gone, and with them the files committed on it.
            st.files.retain(|(b, _, _, _)| *b != name);
            (200, vec![], serde_json::json!({ "ref": format!("refs/heads/{name}"), "object": { "sha": sha } }).to_string())
        }
        "GET" if path.starts_with(&contents) => {
            let file = &path[contents.len()..];
            let Some(branch) = param("ref") else {
                return (404, vec![], msg("Not Found"));
            };
            match st
                .files
                .iter()
                .find(|(b, p, _, _)| *b == branch && p == file)
            {
                Some((_, _, sha, _)) => (
                    200,
                    vec![],
                    serde_json::json!({ "sha": sha, "path": file, "type": "file" }).to_string(),
                ),
                None => (404, vec![], msg("Not Found")),
            }
        }
        "PUT" if path.starts_with(&contents) => {
            let file = path[contents.len()..].to_owned();
            let (Some(message), Some(content), Some(branch)) =
                (field("message"), field("content"), field("branch"))
            else {
                return (
                    422,
                    vec![],
                    msg("Invalid request: message, content and branch are required"),
                );
            };
            if message.is_empty() {
                return (422, vec![], msg("Invalid request: message is empty"));
            }
            let Some(bytes) = decode_base64(&content) else {
                return (422, vec![], msg("content is not valid Base64"));
            };
            if branch_sha(st, &branch).is_none() {
                return (404, vec![], msg(&format!("Branch {branch} not found")));
            }
            let existing = st
                .files
                .iter()
                .position(|(b, p, _, _)| *b == branch && *p == file);
            match (existing, field("sha")) {
                (Some(i), Some(sha)) if st.files[i].2 == sha => {}
                (Some(_), _) => {
                    return (
                        409,
                        vec![],
                        msg(&format!("{file} does not match the sha given")),
                    );
                }
                (None, Some(_)) => {
                    return (422, vec![], msg("sha given for a file that does not exist"));
                }
                (None, None) => {}
            }
            st.next_id += 1;
            let blob = format!("{:040x}", st.next_id);
            let commit = format!("{:040x}", st.next_id + 1_000_000);
            st.files
                .retain(|(b, p, _, _)| !(*b == branch && *p == file));
            st.files.push((
                branch.clone(),
                file.clone(),
                blob.clone(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
            for (b, s) in &mut st.branches {
                if *b == branch {
                    s.clone_from(&commit);
                }
            }
            (if existing.is_some() { 200 } else { 201 }, vec![], serde_json::json!({ "content": { "sha": blob, "path": file }, "commit": { "sha": commit } }).to_string())
        }
        "GET" if path == pulls => {
            let head = param("head");
            let items: Vec<_> = st
                .open_pulls
                .iter()
                .filter(|(_, h, _, _, _)| head.as_deref().is_none_or(|want| want == format!("octo:{h}")))
                .map(|(n, _, _, _, _)| serde_json::json!({ "number": n, "html_url": format!("https://github.com/{REPO}/pull/{n}") }))
                .collect();
            (200, vec![], serde_json::Value::Array(items).to_string())
        }
        "POST" if path == pulls => {
            let (Some(title), Some(head), Some(base)) =
                (field("title"), field("head"), field("base"))
            else {
                return (
                    422,
                    vec![],
                    msg("Validation Failed: title, head and base are required"),
                );
            };
            if branch_sha(st, &head).is_none() || branch_sha(st, &base).is_none() {
                return (
                    422,
                    vec![],
                    msg("Validation Failed: head or base does not exist"),
                );
            }
            if branch_sha(st, &head) == branch_sha(st, &base) {
                return (
                    422,
                    vec![],
                    msg(&format!("No commits between {base} and {head}")),
                );
            }
            if st.open_pulls.iter().any(|(_, h, _, _, _)| *h == head) {
                return (
                    422,
                    vec![],
                    msg(&format!("A pull request already exists for octo:{head}.")),
                );
            }
            st.next_id += 1;
            let n = st.next_id;
            st.open_pulls
                .push((n, head, base, title, field("body").unwrap_or_default()));
            (201, vec![], serde_json::json!({ "number": n, "html_url": format!("https://github.com/{REPO}/pull/{n}") }).to_string())
        }
        "PATCH" if path.starts_with(&format!("{pulls}/")) => {
            let n: u64 = path[pulls.len() + 1..].parse().unwrap_or(0);
            let (title, body) = (field("title"), field("body"));
            match st.open_pulls.iter_mut().find(|(num, _, _, _, _)| *num == n) {
                Some(p) => {
                    if let Some(t) = title {
                        p.3 = t;
                    }
                    if let Some(b) = body {
                        p.4 = b;
                    }
                    (200, vec![], serde_json::json!({ "number": n, "html_url": format!("https://github.com/{REPO}/pull/{n}") }).to_string())
                }
                None => (404, vec![], msg("Not Found")),
            }
        }
        _ => (404, vec![], msg("Not Found")),
    }
}
