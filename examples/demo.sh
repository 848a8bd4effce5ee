#!/usr/bin/env bash
# Omen's main job on the bundled example history (examples/history, made by
# `cargo run --release -p omen-bench -- gen-examples`): ingest every CI run, 30 default-branch
# commits with their re-runs plus pull-request runs, then list flaky and broken tests and write
# the quarantine file. Then score the deploy risk of this checkout's newest commit from its own
# git history. Embedded SQLite, no server, no token.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
history="$root/examples/history"
work="${OMEN_DEMO_DIR:-$root/target/omen-demo}"

# The run metadata comes from runs.tsv, not from whatever CI this script runs in.
unset GITHUB_ACTIONS GITHUB_RUN_ID GITHUB_EVENT_NAME GITHUB_EVENT_PATH GITLAB_CI CI_PIPELINE_ID

cargo build --quiet --release -p omen-cli --manifest-path "$root/Cargo.toml"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
omen="$target/release/omen"
rm -rf "$work" && mkdir -p "$work"
db="$work/history.db"

runs=0 default=0 prs=0 last=""
while IFS=$'\t' read -r dir commit branch default_branch run_id attempt pr ts; do
  args=(ingest --db "$db" --format json --commit "$commit" --branch "$branch"
        --default-branch "$default_branch" --run-id "$run_id" --attempt "$attempt"
        --job test --timestamp "$ts")
  if [ "$pr" != "-" ]; then args+=(--pull-request "$pr"); prs=$((prs + 1)); else default=$((default + 1)); fi
  "$omen" "${args[@]}" "$history/$dir" > /dev/null
  runs=$((runs + 1)) last="$ts"
done < <(tail -n +2 "$history/runs.tsv")

echo "omen: ingested $runs CI runs ($default on the default branch, $prs for pull requests) into $db"
echo
"$omen" flaky --db "$db"
echo
"$omen" quarantine --db "$db" --quarantine-file "$work/quarantine.json" --now "$last"
echo
echo "compare with the truth the history was generated from: $history/TRUTH.tsv"

# Deploy risk needs a git checkout with history: a tarball or a depth-1 clone has none to learn from.
echo
if git -C "$root" rev-parse --verify --quiet HEAD~1 > /dev/null 2>&1; then
  newest="$(git -C "$root" log -1 --format='%h %s')"
  if [ "${#newest}" -gt 72 ]; then
    newest="${newest:0:71}"
    newest="${newest%"${newest##*[! ]}"}…"
  fi
  echo "omen: deploy risk of this checkout's newest commit ($newest)"
  "$omen" risk score --repo "$root" --db "$db" --base HEAD~1 --head HEAD
else
  echo "omen: deploy risk skipped: $root is not a git checkout with at least two commits"
fi
