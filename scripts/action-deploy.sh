#!/usr/bin/env bash
# The composite action's deploy step (action.yml): builds the asyncmirror command from the
# action's inputs (INPUT_* variables), writes the --json report into the job summary, and
# exits with asyncmirror's exit code (0 done, 1 some files failed, 2 usage, 3 server/login).
# The credentials come from FTP_SERVER, FTP_USERNAME and FTP_PASSWORD in the environment,
# never from the command line.
set -uo pipefail

args=("${INPUT_SRC:?the action needs the src input}" "${INPUT_DST:?the action needs the dst input}")
args+=(-j "${INPUT_JOBS:-8}" --no-progress --json)
# One pattern per line; an lftp-style -X per pattern.
while IFS= read -r pattern; do
    [ -n "$pattern" ] && args+=(-X "$pattern")
done <<< "${INPUT_EXCLUDE:-}"
while IFS= read -r pattern; do
    [ -n "$pattern" ] && args+=(-I "$pattern")
done <<< "${INPUT_INCLUDE:-}"
[ "${INPUT_DELETE:-false}" = "true" ] && args+=(--delete)
[ -n "${INPUT_MAX_DELETE:-}" ] && args+=(--max-delete "$INPUT_MAX_DELETE")
[ "${INPUT_SWAP:-false}" = "true" ] && args+=(--swap)
[ -n "${INPUT_LOCK_WAIT:-}" ] && args+=(--lock-wait "$INPUT_LOCK_WAIT")
[ "${INPUT_DRY_RUN:-false}" = "true" ] && args+=(--dry-run)
[ -n "${INPUT_EXTRA_ARGS:-}" ] && read -r -a extra <<< "$INPUT_EXTRA_ARGS" && args+=("${extra[@]}")

report=$(mktemp)
asyncmirror "${args[@]}" > "$report"
status=$?
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    python3 -m asyncmirror.jobsummary "$report" >> "$GITHUB_STEP_SUMMARY"
fi
if [ -n "${GITHUB_OUTPUT:-}" ]; then
    echo "exit-code=$status" >> "$GITHUB_OUTPUT"
fi
rm -f "$report"
exit "$status"
