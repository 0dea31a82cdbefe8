# Sourced by the deploy/bench*.sh scripts: bench_report prints what a
# benchmark run left in its log and exits with the run's status.
# Usage: bench_report TITLE LINES LOG STATUS, where LINES is the extended
# regular expression of the figure lines of the log.
bench_report() {
  local title=$1 lines=$2 log=$3 status=$4
  echo
  echo "== $title benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
  grep -E "$lines" "$log" || true
  echo
  echo "== go test metrics"
  grep -E '^Benchmark' "$log" || true
  if [ "$status" -ne 0 ]; then
    echo
    echo "== FAILED (exit $status); the failures:"
    grep -E -A8 -e '--- FAIL|^panic|_test.go:[0-9]+:' "$log" | head -80
  fi
  exit "$status"
}
