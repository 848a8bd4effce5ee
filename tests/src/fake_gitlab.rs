//! A fake GitLab REST API (v4) on 127.0.0.1 for the tests: merge request notes, the token's user
//! and the merge requests of a commit, checked the way GitLab checks them, with scripted failures.
//!
//! What it checks: the `/api/v4` prefix; the project by numeric id or URL-encoded path; a
//! `PRIVATE-TOKEN` or `Authorization: Bearer` access token, while a `JOB-TOKEN` may only read
//! notes (GitLab's two `GET` note endpoints) and gets 403 on writes and 401 on `/user`;
//! pagination (`per_page` default 20, at most 100; `X-Next-Page` empty on the last page); the
//! 1,000,000-character body limit; and that a user edits only the notes they wrote.
//!
//! Job artifacts: `GET /projects/:id/jobs/artifacts/:ref/raw/*path?job=NAME` serves a file that
//! [`FakeGitLab::publish_artifact`] published for a ref and job (either token may read it; 404
//! otherwise). With [`FakeGitLab::redirect_artifacts`] it answers 302 to a second server, the
//! "object storage", which records whether any credential reached it.

use std::collections::{BTreeMap, VecDeque};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};

use crate::fake_http::{Request, Server, read_request, respond_bytes};

/// The project's numeric id.
pub const PROJECT_ID: u64 = 42;
/// The project's path.
pub const PROJECT_PATH: &str = "omen-ci/widgets";
/// The merge request's iid.
pub const MR: u64 = 7;
/// The project access token the fake accepts (its bot user is [`BOT`]).
pub const TOKEN: &str = "glpat-test-0123456789abcdef";
/// The job token: reads notes only.
pub const JOB_TOKEN: &str = "glcbt-job-token-0123";
/// The access token's user id.
pub const BOT: u64 = 901;
/// Another user (a person).
pub const PERSON: u64 = 17;

/// One note on the merge request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Its id.
    pub id: u64,
    /// Who wrote it.
    pub author: u64,
    /// Its text.
    pub body: String,
    /// A system note ("added 1 commit").
    pub system: bool,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Which credential came: `private`, `bearer`, `job` or `none`.
    pub credential: &'static str,
    /// Status the server answered.
    pub status: u16,
}

/// An answer: status, extra headers, JSON body.
type Answer = (u16, Vec<(String, String)>, String);
/// An answer with a binary body.
type BytesAnswer = (u16, Vec<(String, String)>, Vec<u8>);

#[derive(Debug, Default)]
struct State {
    notes: Vec<Note>,
    next_id: u64,
    /// (commit, merge request as GitLab returns it).
    merge_requests: Vec<(String, serde_json::Value)>,
    seen: Vec<Seen>,
    script: VecDeque<Answer>,
    /// (ref, job, path, bytes), newest last.
    artifacts: Vec<(String, String, String, Vec<u8>)>,
    /// The object storage's address, when artifact downloads redirect there.
    redirect: Option<String>,
    /// Requests the object storage saw: (path, a credential header came).
    storage_seen: Vec<(String, bool)>,
    /// The repository: branch → path → content.
    branches: BTreeMap<String, BTreeMap<String, String>>,
    /// Merge requests other than [`MR`] (the proposal's).
    requests: Vec<MergeRequest>,
    /// Commits made through the API: (branch, start branch, force).
    commits: Vec<(String, Option<String>, bool)>,
    /// The job token's job's `queued_duration`, seconds (`GET /job`).
    queued: Option<f64>,
}

/// A merge request the API opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRequest {
    /// Its iid.
    pub iid: u64,
    /// Source branch.
    pub source: String,
    /// Target branch.
    pub target: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// `opened` or `merged`.
    pub state: String,
}

/// The server. Dropping it stops it.
pub struct FakeGitLab {
    /// `http://127.0.0.1:<port>/api/v4`, what `CI_API_V4_URL` holds.
    pub api_url: String,
    state: Arc<Mutex<State>>,
    _server: Server,
    storage: Server,
}

impl FakeGitLab {
    /// Start on a free port.
    pub fn start() -> FakeGitLab {
        let state = Arc::new(Mutex::new(State {
            next_id: 5000,
            ..State::default()
        }));
        let s = state.clone();
        let server = Server::start(move |stream| handle(stream, &s));
        let s = state.clone();
        let storage = Server::start(move |stream| storage(stream, &s));
        FakeGitLab {
            api_url: format!("http://{}/api/v4", server.addr),
            state,
            _server: server,
            storage,
        }
    }

    /// What `GET /job` gives as the job's `queued_duration`, seconds.
    pub fn set_queued(&self, seconds: f64) {
        self.state.lock().unwrap().queued = Some(seconds);
    }

    /// Publish `bytes` as the file `path` in the artifacts of job `job` on `ref_name`'s latest
    /// successful pipeline.
    pub fn publish_artifact(&self, ref_name: &str, job: &str, path: &str, bytes: Vec<u8>) {
        self.state.lock().unwrap().artifacts.push((
            ref_name.to_owned(),
            job.to_owned(),
            path.to_owned(),
            bytes,
        ));
    }

    /// Answer artifact downloads with a redirect to the object storage, as GitLab.com does.
    pub fn redirect_artifacts(&self) {
        self.state.lock().unwrap().redirect = Some(self.storage.addr.clone());
    }

    /// Put `content` at `path` on `branch` (created when new).
    pub fn seed_file(&self, branch: &str, path: &str, content: &str) {
        self.state
            .lock()
            .unwrap()
            .branches
            .entry(branch.to_owned())
            .or_default()
            .insert(path.to_owned(), content.to_owned());
    }

    /// The file at `path` on `branch`.
    pub fn file(&self, branch: &str, path: &str) -> Option<String> {
        self.state
            .lock()
            .unwrap()
            .branches
            .get(branch)?
            .get(path)
            .cloned()
    }

    /// Merge requests opened through the API, open or not.
    pub fn merge_requests(&self) -> Vec<MergeRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Commits made through the API: (branch, start branch, force).
    pub fn commits(&self) -> Vec<(String, Option<String>, bool)> {
        self.state.lock().unwrap().commits.clone()
    }

    /// What the object storage saw: (path, whether a credential header came with it).
    pub fn storage_seen(&self) -> Vec<(String, bool)> {
        self.state.lock().unwrap().storage_seen.clone()
    }

    /// Add a note.
    pub fn seed_note(&self, author: u64, body: &str, system: bool) -> u64 {
        let mut st = self.state.lock().unwrap();
        let id = st.next_id;
        st.next_id += 1;
        st.notes.push(Note {
            id,
            author,
            body: body.to_owned(),
            system,
        });
        id
    }

    /// Make `sha` the merge commit of merge request `iid`.
    pub fn seed_merged_request(&self, sha: &str, iid: u64, created_at: &str, merged_at: &str) {
        self.state.lock().unwrap().merge_requests.push((
            sha.to_owned(),
            serde_json::json!({
                "id": 100 + iid, "iid": iid, "project_id": PROJECT_ID, "state": "merged",
                "created_at": created_at, "merged_at": merged_at,
                "merge_commit_sha": sha, "squash_commit_sha": null,
            }),
        ));
    }

    /// Answer the next request with this instead.
    pub fn script(&self, status: u16, headers: &[(&str, &str)], body: &str) {
        self.state.lock().unwrap().script.push_back((
            status,
            headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body.to_owned(),
        ));
    }

    /// The notes now on the merge request.
    pub fn notes(&self) -> Vec<Note> {
        self.state.lock().unwrap().notes.clone()
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

/// Who a request authenticates as: the access token's user, the job token, or nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Bot,
    Job,
    Nobody,
}

fn handle(stream: &TcpStream, state: &Arc<Mutex<State>>) {
    let Some(request) = read_request(stream) else {
        return;
    };
    let (caller, credential) = if request.header("private-token") == Some(TOKEN) {
        (Caller::Bot, "private")
    } else if request.header("authorization") == Some(&format!("Bearer {TOKEN}")) {
        (Caller::Bot, "bearer")
    } else if request.header("job-token") == Some(JOB_TOKEN) {
        (Caller::Job, "job")
    } else {
        (Caller::Nobody, "none")
    };
    let mut st = state.lock().unwrap();
    let file = if st.script.is_empty() {
        artifact(&mut st, &request, caller)
    } else {
        None
    };
    let (status, headers, body, content_type) = match (file, st.script.pop_front()) {
        (Some((status, headers, bytes)), _) => (status, headers, bytes, "application/octet-stream"),
        (None, Some((status, headers, body))) => {
            (status, headers, body.into_bytes(), "application/json")
        }
        (None, None) => {
            let (status, headers, body) = route(&mut st, &request, caller);
            (status, headers, body.into_bytes(), "application/json")
        }
    };
    st.seen.push(Seen {
        method: request.method.clone(),
        path: request.path.clone(),
        credential,
        status,
    });
    drop(st);
    respond_bytes(stream, status, &headers, content_type, &body);
}

/// The artifacts endpoint, or `None` for any other request.
fn artifact(st: &mut State, request: &Request, caller: Caller) -> Option<BytesAnswer> {
    let (path, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
    let rest = path.strip_prefix("/api/v4/projects/")?;
    let (project, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("jobs/artifacts/")?;
    let (ref_name, rest) = rest.split_once('/')?;
    let file = rest.strip_prefix("raw/")?;
    let not_found = |m: &str| {
        Some((
            404,
            vec![],
            serde_json::json!({ "message": m }).to_string().into_bytes(),
        ))
    };
    if request.method != "GET" {
        return not_found("404 Not Found");
    }
    if caller == Caller::Nobody {
        return Some((401, vec![], br#"{"message":"401 Unauthorized"}"#.to_vec()));
    }
    let encoded_path = PROJECT_PATH.replace('/', "%2F");
    if project != PROJECT_ID.to_string() && !project.eq_ignore_ascii_case(&encoded_path) {
        return not_found("404 Project Not Found");
    }
    let job = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("job="))
        .map(decode)?;
    let (ref_name, file) = (decode(ref_name), decode(file));
    let Some(index) = st
        .artifacts
        .iter()
        .rposition(|(r, j, p, _)| *r == ref_name && *j == job && *p == file)
    else {
        return not_found("404 Not found");
    };
    match &st.redirect {
        Some(storage) => Some((
            302,
            vec![(
                "location".to_owned(),
                format!("http://{storage}/objects/{index}?X-Amz-Signature=abc123"),
            )],
            Vec::new(),
        )),
        None => Some((200, vec![], st.artifacts[index].3.clone())),
    }
}

/// The object storage: serves `/objects/<index>` without asking for credentials, and records
/// whether any came.
fn storage(stream: &TcpStream, state: &Arc<Mutex<State>>) {
    let Some(request) = read_request(stream) else {
        return;
    };
    let credential = ["private-token", "job-token", "authorization"]
        .iter()
        .any(|h| request.header(h).is_some());
    let mut st = state.lock().unwrap();
    st.storage_seen.push((request.path.clone(), credential));
    let index = request
        .path
        .strip_prefix("/objects/")
        .and_then(|r| r.split('?').next())
        .and_then(|i| i.parse::<usize>().ok());
    let answer = index.and_then(|i| st.artifacts.get(i)).map(|a| a.3.clone());
    drop(st);
    match answer {
        Some(bytes) => respond_bytes(stream, 200, &[], "application/octet-stream", &bytes),
        None => respond_bytes(
            stream,
            404,
            &[],
            "application/xml",
            b"<Error>NoSuchKey</Error>",
        ),
    }
}

/// The repository files, commits and merge requests endpoints (the quarantine proposal), or
/// `None` for any other request.
fn repository(
    st: &mut State,
    request: &Request,
    caller: Caller,
    rest: &str,
    query: &str,
) -> Option<Answer> {
    let msg = |m: &str| serde_json::json!({ "message": m }).to_string();
    let q = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .map(decode)
    };
    let method = request.method.as_str();
    let writes = method != "GET";
    if writes && caller == Caller::Job {
        return Some((403, vec![], msg("403 Forbidden")));
    }
    let json = || serde_json::from_str::<serde_json::Value>(&request.body).ok();
    if let Some(path) = rest.strip_prefix("repository/files/") {
        if method != "GET" {
            return Some((404, vec![], msg("404 Not Found")));
        }
        let (path, branch) = (decode(path), q("ref").unwrap_or_default());
        return Some(match st.branches.get(&branch).and_then(|b| b.get(&path)) {
            Some(_) => (
                200,
                vec![],
                serde_json::json!({ "file_path": path, "ref": branch, "encoding": "base64" })
                    .to_string(),
            ),
            None => (404, vec![], msg("404 File Not Found")),
        });
    }
    if rest == "repository/commits" && method == "POST" {
        let Some(body) = json() else {
            return Some((400, vec![], msg("400 Bad request")));
        };
        let (Some(branch), Some(_message)) = (
            body["branch"].as_str().map(str::to_owned),
            body["commit_message"].as_str(),
        ) else {
            return Some((
                400,
                vec![],
                msg("400 Bad request - branch or commit_message is missing"),
            ));
        };
        let start = body["start_branch"].as_str().map(str::to_owned);
        let force = body["force"].as_bool().unwrap_or(false);
        let mut files = match &start {
            Some(start) => {
                if st.branches.contains_key(&branch) && !force {
                    return Some((
                        400,
                        vec![],
                        msg(&format!(
                            "A branch called '{branch}' already exists. Switch to that branch in order to make changes"
                        )),
                    ));
                }
                match st.branches.get(start) {
                    Some(files) => files.clone(),
                    None => {
                        return Some((
                            400,
                            vec![],
                            msg("You can only create or edit files when you are on a branch"),
                        ));
                    }
                }
            }
            None => match st.branches.get(&branch) {
                Some(files) => files.clone(),
                None => {
                    return Some((
                        400,
                        vec![],
                        msg("You can only create or edit files when you are on a branch"),
                    ));
                }
            },
        };
        for action in body["actions"].as_array().cloned().unwrap_or_default() {
            let (Some(kind), Some(path)) =
                (action["action"].as_str(), action["file_path"].as_str())
            else {
                return Some((400, vec![], msg("400 Bad request - actions are invalid")));
            };
            let content = action["content"].as_str().unwrap_or_default().to_owned();
            match (kind, files.contains_key(path)) {
                ("create", true) => {
                    return Some((400, vec![], msg("A file with this name already exists")));
                }
                ("update", false) => {
                    return Some((400, vec![], msg("A file with this name doesn't exist")));
                }
                ("create" | "update", _) => {
                    files.insert(path.to_owned(), content);
                }
                _ => return Some((400, vec![], msg("400 Bad request - action is invalid"))),
            }
        }
        st.branches.insert(branch.clone(), files);
        st.commits.push((branch, start, force));
        return Some((
            201,
            vec![],
            serde_json::json!({ "id": "c0ffee", "short_id": "c0ffee" }).to_string(),
        ));
    }
    let mr_json = |m: &MergeRequest| {
        serde_json::json!({
            "iid": m.iid, "source_branch": m.source, "target_branch": m.target, "title": m.title,
            "description": m.description, "state": m.state,
            "web_url": format!("https://gitlab.example.com/{PROJECT_PATH}/-/merge_requests/{}", m.iid),
        })
    };
    match (method, rest) {
        ("GET", "merge_requests") => {
            let items: Vec<_> = st
                .requests
                .iter()
                .filter(|m| q("state").is_none_or(|s| s == m.state))
                .filter(|m| q("source_branch").is_none_or(|s| s == m.source))
                .filter(|m| q("target_branch").is_none_or(|s| s == m.target))
                .map(mr_json)
                .collect();
            Some((200, vec![], serde_json::Value::Array(items).to_string()))
        }
        ("POST", "merge_requests") => {
            let body = json()?;
            let field = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
            let (source, target) = (field("source_branch"), field("target_branch"));
            if !st.branches.contains_key(&source) || !st.branches.contains_key(&target) {
                return Some((
                    400,
                    vec![],
                    msg("400 Bad request - a branch does not exist"),
                ));
            }
            if let Some(m) = st
                .requests
                .iter()
                .find(|m| m.state == "opened" && m.source == source && m.target == target)
            {
                return Some((
                    409,
                    vec![],
                    serde_json::json!({ "message": [format!("Another open merge request already exists for this source branch: !{}", m.iid)] }).to_string(),
                ));
            }
            let request = MergeRequest {
                iid: 100 + st.requests.len() as u64,
                source,
                target,
                title: field("title"),
                description: field("description"),
                state: "opened".to_owned(),
            };
            let answer = mr_json(&request).to_string();
            st.requests.push(request);
            Some((201, vec![], answer))
        }
        ("PUT", r) => {
            let iid: u64 = r.strip_prefix("merge_requests/")?.parse().ok()?;
            let body = json()?;
            let m = st.requests.iter_mut().find(|m| m.iid == iid)?;
            if let Some(t) = body["title"].as_str() {
                m.title = t.to_owned();
            }
            if let Some(d) = body["description"].as_str() {
                m.description = d.to_owned();
            }
            Some((200, vec![], mr_json(m).to_string()))
        }
        _ => None,
    }
}

/// Percent-decoding of a path segment or query value.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn note_json(n: &Note) -> serde_json::Value {
    serde_json::json!({
        "id": n.id, "type": null, "body": n.body, "system": n.system,
        "noteable_type": "MergeRequest", "noteable_iid": MR, "resolvable": false,
        "author": { "id": n.author, "username": format!("user{}", n.author), "name": "someone" },
        "created_at": "2026-12-01T10:00:00.000Z", "updated_at": "2026-12-01T10:00:00.000Z",
    })
}

fn route(
    st: &mut State,
    request: &Request,
    caller: Caller,
) -> (u16, Vec<(String, String)>, String) {
    let msg = |m: &str| serde_json::json!({ "message": m }).to_string();
    let (path, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
    let Some(path) = path.strip_prefix("/api/v4") else {
        return (404, vec![], msg("404 Not Found"));
    };
    if caller == Caller::Nobody {
        return (401, vec![], msg("401 Unauthorized"));
    }
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse::<usize>().ok())
    };
    // The job that owns a job token; any other credential is refused, as GitLab refuses it.
    if path == "/job" && request.method == "GET" {
        return match caller {
            Caller::Job => (
                200,
                vec![],
                serde_json::json!({ "id": 1234, "name": "test", "status": "running", "queued_duration": st.queued })
                    .to_string(),
            ),
            _ => (401, vec![], msg("401 Unauthorized")),
        };
    }
    if path == "/user" {
        return match caller {
            Caller::Bot => (
                200,
                vec![],
                serde_json::json!({ "id": BOT, "username": "project_42_bot", "bot": true })
                    .to_string(),
            ),
            _ => (401, vec![], msg("401 Unauthorized")),
        };
    }
    let Some(rest) = path.strip_prefix("/projects/") else {
        return (404, vec![], msg("404 Not Found"));
    };
    let (project, rest) = rest.split_once('/').unwrap_or((rest, ""));
    let encoded_path = PROJECT_PATH.replace('/', "%2F");
    if project != PROJECT_ID.to_string() && !project.eq_ignore_ascii_case(&encoded_path) {
        return (404, vec![], msg("404 Project Not Found"));
    }
    let notes = format!("merge_requests/{MR}/notes");
    let writes = request.method == "POST" || request.method == "PUT";
    if rest.starts_with(&notes) && writes {
        if caller == Caller::Job {
            return (403, vec![], msg("403 Forbidden"));
        }
        if !request
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
        {
            return (415, vec![], msg("415 Unsupported Media Type"));
        }
        let text = serde_json::from_str::<serde_json::Value>(&request.body)
            .ok()
            .and_then(|v| v.get("body").and_then(|b| b.as_str()).map(str::to_owned));
        match text {
            Some(t) if t.chars().count() > 1_000_000 => {
                return (
                    400,
                    vec![],
                    serde_json::json!({ "message": { "note": ["is too long (maximum is 1000000 characters)"] } })
                        .to_string(),
                );
            }
            Some(t) if !t.trim().is_empty() => {}
            _ => return (400, vec![], msg("400 Bad request - body is missing")),
        }
    }
    if let Some(answer) = repository(st, request, caller, rest, query) {
        return answer;
    }
    let body_of = || {
        serde_json::from_str::<serde_json::Value>(&request.body).unwrap()["body"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    match (request.method.as_str(), rest) {
        ("GET", r) if r == notes => {
            let per_page = param("per_page").unwrap_or(20).clamp(1, 100);
            let page = param("page").unwrap_or(1).max(1);
            let total = st.notes.len();
            let pages = total.div_ceil(per_page).max(1);
            let items: Vec<_> = st
                .notes
                .iter()
                .skip((page - 1) * per_page)
                .take(per_page)
                .map(note_json)
                .collect();
            let next = if page < pages {
                (page + 1).to_string()
            } else {
                String::new()
            };
            let headers = vec![
                ("x-page".to_owned(), page.to_string()),
                ("x-per-page".to_owned(), per_page.to_string()),
                ("x-total".to_owned(), total.to_string()),
                ("x-total-pages".to_owned(), pages.to_string()),
                ("x-next-page".to_owned(), next),
            ];
            (200, headers, serde_json::Value::Array(items).to_string())
        }
        ("POST", r) if r == notes => {
            let note = Note {
                id: st.next_id,
                author: BOT,
                body: body_of(),
                system: false,
            };
            st.next_id += 1;
            let answer = note_json(&note).to_string();
            st.notes.push(note);
            (201, vec![], answer)
        }
        ("PUT", r) if r.starts_with(&format!("{notes}/")) => {
            let id: u64 = r
                .rsplit('/')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let body = body_of();
            match st.notes.iter_mut().find(|n| n.id == id) {
                Some(n) if n.author != BOT || n.system => (403, vec![], msg("403 Forbidden")),
                Some(n) => {
                    n.body = body;
                    (200, vec![], note_json(n).to_string())
                }
                None => (404, vec![], msg("404 Not found")),
            }
        }
        ("GET", r) if r.starts_with("repository/commits/") && r.ends_with("/merge_requests") => {
            if caller == Caller::Job {
                return (403, vec![], msg("403 Forbidden"));
            }
            let sha = &r["repository/commits/".len()..r.len() - "/merge_requests".len()];
            if sha.len() < 7 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return (404, vec![], msg("404 Commit Not Found"));
            }
            let items: Vec<_> = st
                .merge_requests
                .iter()
                .filter(|(s, _)| s == sha)
                .map(|(_, mr)| mr.clone())
                .collect();
            (200, vec![], serde_json::Value::Array(items).to_string())
        }
        _ => (404, vec![], msg("404 Not Found")),
    }
}
