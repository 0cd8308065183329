#!/usr/bin/env bash
# Runs the fault tests (crates/lifeline/tests/liveness_faults.rs and fast_verdicts.rs, root), collects their
# `MEASURED <scenario> <seconds>` lines and rewrites the "Measured" column of the tables in
# docs/liveness.md between <!-- measured:begin --> and <!-- measured:end -->, with the date and
# the kernel version. A scenario whose test failed is marked as such; one that printed no
# measurement keeps "—". Exits with the test run's status (the doc is updated either way, as
# long as at least one measurement came out).
#
#   scripts/liveness-times.sh            # CARGO_TARGET_DIR etc. are honoured
set -euo pipefail

cd "$(dirname "$0")/.."
doc=docs/liveness.md
log=$(mktemp)
new=$(mktemp)
trap 'rm -f "$log" "$new"' EXIT

status=0
cargo test -p lifeline --test liveness_faults --test fast_verdicts -- --nocapture --test-threads=2 2>&1 \
    | tee "$log" || status=$?

if ! grep -q '^MEASURED ' "$log"; then
    echo "liveness-times: no MEASURED lines (not root? build failed?); $doc left as is" >&2
    exit "${status:-1}"
fi

passed=$(grep -Ec '^test [a-z0-9_]+ \.\.\. ok$' "$log" || true)
failed=$(grep -Ec '^test [a-z0-9_]+ \.\.\. FAILED$' "$log" || true)
stamp="_Measured $(date -u +%Y-%m-%d) on Linux $(uname -r) ($(nproc) CPUs) by \`scripts/liveness-times.sh\`: ${passed} tests passed, ${failed} failed._"

awk -v stamp="$stamp" -v logfile="$log" '
    BEGIN {
        while ((getline line < logfile) > 0) {
            if (line ~ /^MEASURED /) { split(line, f, " "); m[f[2]] = f[3] }
            # "test l3_dead_player_is_released ... ok" -> outcome of L3 (and L3-*)
            if (line ~ /^test [a-z][0-9]+_.* \.\.\. (ok|FAILED)$/) {
                split(line, f, " "); id = toupper(substr(f[2], 1, index(f[2], "_") - 1))
                r[id] = f[4]
            }
        }
    }
    function cell(id,    base, v) {
        base = id; sub(/-.*/, "", base)
        v = (id in m) ? sprintf("%.2f s", m[id]) : "—"
        if (r[base] == "FAILED") v = v " (test FAILED)"
        return v
    }
    /<!-- measured:begin -->/ { inside = 1; print; next }
    /<!-- measured:end -->/   { inside = 0; print; next }
    inside && /^_Measured/    { print stamp; next }
    inside && /^\| *(Lifeline|\*\*Lifeline)/ {
        # Peers table: | **Lifeline** … | <dead publisher> | <dead player> |, from the ids named
        # in the row (first and second measured column).
        n = split($0, c, "|")
        c[n - 2] = " " cell(pub) " "; c[n - 1] = " " cell(play) " "
        out = ""; for (i = 1; i < n; i++) out = out c[i] "|"; print out; next
    }
    inside && /^<!-- peers: / { pub = $3; play = $4; print; next }
    inside && /^\| *[LK][0-9]/ {
        n = split($0, c, "|"); id = c[2]; gsub(/ /, "", id)
        c[n - 1] = " " cell(id) " "
        out = ""; for (i = 1; i < n; i++) out = out c[i] "|"; print out; next
    }
    { print }
' "$doc" > "$new"
cat "$new" > "$doc"
echo "liveness-times: updated $doc ($(grep -c '^MEASURED ' "$log") measurements)"
exit "$status"
