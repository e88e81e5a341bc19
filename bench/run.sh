#!/usr/bin/env bash
# Side-by-side benchmarks of ecows and its rivals (issue 10): builds cmd/echoserver,
# cmd/loadgen, cmd/report and the package's test binary, then, round after round, runs
#   - every load scenario against every echo server, each server in a process of its own and
#     the one load client in another, libraries interleaved (rotated order each round);
#   - the in-process benchmarks (BenchmarkEcho128, BenchmarkMask, BenchmarkCompressedEcho),
#     one pass per round;
# then the latency rounds: every library's latency endpoints (cmd/echoserver serves them beside
# /ws), one server process per library kept up for all the rounds, and cmd/loadgen -latency
# running each latency scenario (push, work1, work4, rr) against each library in turn, the
# libraries' order rotated each round;
# then the idle-connection memory runs (and BenchmarkCompressedIdleConn: IDLE_ZCONNS compressed
# connections per library and agreement, the server in the test binary and the clients in a
# child process of it, each library's heap capped at
# ECOWS_BENCH_IDLEHEAP MiB, 2,048 by default), and writes bench/RESULTS.md (medians over rounds).
#
#   bench/run.sh quick    # about 4 minutes: 3 rounds of 0.2 s warm-up + 0.5 s per run
#                         # (latency: 3 rounds of 0.1 s + 0.4 s, about 40 s of it;
#                         # 1,000 compressed idle connections, about 40 s)
#   bench/run.sh full     # about 55 minutes: 9 rounds of 1 s + 3 s, idle memory 3 times
#                         # (latency: 9 rounds of 0.3 s + 2 s; 10,000 compressed idle
#                         # connections, about 5 minutes each time)
#
# Rows bound by system calls (one message in flight) vary by about 10% from one run to the
# next for every library alike; full takes the median of 9 rounds so that such a row's
# ranking does not hang on one or two of them.
#
# Environment overrides: ROUNDS, WARMUP, DURATION, BENCHTIME, IDLE_CONNS, IDLE_ROUNDS,
# IDLE_ZCONNS (compressed idle connections per library and agreement; quick 1000, full 10000), SCENARIOS
# (space-separated names), SERVERS ("lib/shape ..."), LAT_ROUNDS, LAT_WARMUP, LAT_DURATION,
# LAT_SCENARIOS ("" skips the latency rounds), LAT_LIBS (space-separated libraries), RAW_DIR (keep raw results there; default
# a new temporary directory, printed at the end), OUT (default RESULTS.md), NOTE (a sentence
# for the report's header, e.g. about other load on the machine).
#
# BASE=<git rev> also measures a baseline ecows in the same run: run.sh checks that commit
# out into a temporary git worktree (removed once built, and by the EXIT trap), builds that
# tree's bench/cmd/echoserver (its own bench module, so against the baseline's ecows) and runs
# its ecows servers, labelled ecows@base/SHAPE, in the echo rounds beside every other server
# (each right after the current ecows server of its shape, rotated like the others), and in
# the idle and latency rounds when the baseline's echoserver serves what they need (a one-run
# probe; otherwise that part is skipped for the baseline, with a note in the report). The
# report keeps "ecows vs best rival" as without BASE and adds a section with the baseline's
# ratio to the same rival and the change, the new ratio as a percentage of the baseline's
# (judge a change by "at most 5% lower", ✓ in that column):
#   BASE=HEAD~1 bench/run.sh quick
# None of this runs under `go test`: the package's benchmarks stay light for CI.
set -euo pipefail
cd "$(dirname "$0")"

mode=${1:-quick}
case $mode in
quick)
	: "${ROUNDS:=3}" "${WARMUP:=200ms}" "${DURATION:=500ms}" "${BENCHTIME:=100ms}"
	: "${IDLE_CONNS:=10000}" "${IDLE_ROUNDS:=1}" "${IDLE_ZCONNS:=1000}"
	: "${LAT_ROUNDS:=3}" "${LAT_WARMUP:=100ms}" "${LAT_DURATION:=400ms}"
	;;
full)
	: "${ROUNDS:=9}" "${WARMUP:=1s}" "${DURATION:=3s}" "${BENCHTIME:=1s}"
	: "${IDLE_CONNS:=10000}" "${IDLE_ROUNDS:=3}" "${IDLE_ZCONNS:=10000}"
	: "${LAT_ROUNDS:=9}" "${LAT_WARMUP:=300ms}" "${LAT_DURATION:=2s}"
	;;
*)
	echo "usage: $0 [quick|full]" >&2
	exit 2
	;;
esac
: "${SCENARIOS:=64x16B 64x1KiB 1000x2000B 4x64KiB 1x1MiB}"
: "${LAT_SCENARIOS=push work1 work4 rr}"
: "${LAT_LIBS:=ecows gorilla coder gobwas gws}"
: "${OUT:=RESULTS.md}"

raw=${RAW_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/ecows-bench.XXXXXX")}
mkdir -p "$raw/bin" "$raw/logs"
: >"$raw/load.jsonl"
: >"$raw/idle.jsonl"
: >"$raw/latency.jsonl"
: >"$raw/inproc.txt"

# 10,000 idle connections need 10,000 descriptors on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_CONNS + 100)) ]; then
	echo "open-file limit $(ulimit -n) is below $IDLE_CONNS connections; lowering IDLE_CONNS" >&2
	IDLE_CONNS=$(($(ulimit -n) - 100))
fi

start=$(date +%s)
echo "== build ($raw)"
go build -o "$raw/bin/" ./cmd/echoserver ./cmd/loadgen ./cmd/report
go test -c -o "$raw/bin/bench.test" .
bin=$raw/bin

if [ -n "${SERVERS:-}" ]; then
	read -r -a servers <<<"$SERVERS"
else
	mapfile -t servers < <("$bin/echoserver" -list | tr ' ' /)
fi

# The baseline (BASE): its echoserver in $raw/base, built from a temporary worktree.
base_lib=ecows@base
base_rev= base_tree= base_notes=() base_shapes=()
remove_base_tree() {
	if [ -n "$base_tree" ]; then
		git -C . worktree remove --force "$base_tree/src" 2>/dev/null || true
		rm -rf "$base_tree"
		git -C . worktree prune 2>/dev/null || true
		base_tree=
	fi
}
base_note() {
	echo "BASE: $*" >&2
	base_notes+=("$*")
}
if [ -n "${BASE:-}" ]; then
	echo "== build baseline $BASE"
	if ! base_rev=$(git -C . rev-parse --short --verify --end-of-options "$BASE^{commit}" 2>/dev/null); then
		base_note "$BASE is not a commit of this repository; no baseline measured."
		base_rev=
	else
		base_tree=$(mktemp -d "${TMPDIR:-/tmp}/ecows-base.XXXXXX")
		trap 'remove_base_tree' EXIT
		mkdir -p "$raw/base"
		if ! git -C . worktree add --detach -q "$base_tree/src" "$base_rev" >"$raw/logs/base-build.log" 2>&1; then
			base_note "git worktree add $base_rev failed (see $raw/logs/base-build.log); no baseline measured."
		elif [ ! -d "$base_tree/src/bench/cmd/echoserver" ]; then
			base_note "$base_rev has no bench/cmd/echoserver; no baseline measured."
		elif ! (cd "$base_tree/src/bench" && go build -o "$raw/base/" ./cmd/echoserver) >>"$raw/logs/base-build.log" 2>&1; then
			base_note "$base_rev's bench/cmd/echoserver does not build (see $raw/logs/base-build.log); no baseline measured."
		else
			mapfile -t base_shapes < <("$raw/base/echoserver" -list 2>/dev/null | awk '$1 == "ecows" { print $2 }')
			[ ${#base_shapes[@]} -gt 0 ] || base_note "$base_rev's echoserver -list names no ecows server; no baseline measured."
		fi
		# Only the binary is needed from here on.
		remove_base_tree
	fi
fi
server_pid=
addr=
port=$((20000 + RANDOM % 20000))
stop_server() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
		server_pid=
	fi
}
# The latency rounds keep one server per library up: their pids, by library.
declare -A lat_pid lat_addr
stop_lat_servers() {
	local l
	for l in "${!lat_pid[@]}"; do
		kill "${lat_pid[$l]}" 2>/dev/null || true
		wait "${lat_pid[$l]}" 2>/dev/null || true
		unset "lat_pid[$l]"
	done
}
trap 'stop_server; stop_lat_servers; remove_base_tree' EXIT

# start_server LIB SHAPE: starts cmd/echoserver on a fresh port and waits until it listens
# (LIB ecows@base: the baseline's echoserver, its ecows server).
start_server() {
	local log tries exe=$bin/echoserver lib=$1
	if [ "$lib" = "$base_lib" ]; then
		exe=$raw/base/echoserver lib=ecows
	fi
	for tries in 1 2 3; do
		port=$((port + 1))
		addr=127.0.0.1:$port
		log=$raw/logs/$1-$2-$port.log
		"$exe" -lib "$lib" -shape "$2" -addr "$addr" >"$log" 2>&1 &
		server_pid=$!
		for _ in $(seq 100); do
			grep -q '^listening' "$log" 2>/dev/null && return 0
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.05
		done
		stop_server
	done
	echo "echoserver $1/$2 would not start: $(cat "$log")" >&2
	return 1
}

# rotated ROUND: the servers, starting at a different one each round.
rotated() {
	local n=${#servers[@]} i
	for ((i = 0; i < n; i++)); do
		echo "${servers[$(((i + $1 - 1) % n))]}"
	done
}

# The baseline's echoserver may predate what the idle and latency rounds need (/stats, the
# latency endpoints): one short probe run of each decides whether the baseline takes part.
# A baseline server that does not start at all is left out of every round.
base_idle= base_latency=
if [ ${#base_shapes[@]} -gt 0 ]; then
	started=()
	for shape in "${base_shapes[@]}"; do
		if start_server "$base_lib" "$shape" 2>>"$raw/logs/base-probe.log"; then
			started+=("$shape")
			stop_server
		else
			base_note "$base_rev's echoserver would not start $base_lib/$shape (see $raw/logs/base-probe.log); left out."
		fi
	done
	base_shapes=("${started[@]}")
fi
if [ ${#base_shapes[@]} -gt 0 ]; then
	read -r -a lat_probe <<<"$LAT_SCENARIOS"
	if [ "$IDLE_ROUNDS" -gt 0 ]; then
		start_server "$base_lib" "${base_shapes[0]}"
		if "$bin/loadgen" -addr "$addr" -idle 1 -settle 10ms -lib "$base_lib" -shape "${base_shapes[0]}" >/dev/null 2>>"$raw/logs/base-probe.log"; then
			base_idle=1
		else
			base_note "$base_rev's echoserver fails the idle-connection probe ($(tail -n1 "$raw/logs/base-probe.log")); the idle rounds leave the baseline out."
		fi
		stop_server
	fi
	if [ ${#lat_probe[@]} -gt 0 ] && [[ " $LAT_LIBS " == *" ecows "* ]]; then
		if [[ " ${base_shapes[*]} " != *" message "* ]]; then
			base_note "$base_rev's echoserver has no ecows/message server; the latency rounds leave the baseline out."
		else
			start_server "$base_lib" message
			if "$bin/loadgen" -addr "$addr" -latency "${lat_probe[0]}" -warmup 20ms -duration 100ms -lib "$base_lib" -shape message \
				>/dev/null 2>>"$raw/logs/base-probe.log"; then
				base_latency=1
			else
				base_note "$base_rev's echoserver fails the latency probe ($(tail -n1 "$raw/logs/base-probe.log")); the latency rounds leave the baseline out."
			fi
			stop_server
		fi
	fi
fi

# Each baseline server goes right after the current ecows server of its shape.
if [ ${#base_shapes[@]} -gt 0 ]; then
	with_base=()
	for s in "${servers[@]}"; do
		with_base+=("$s")
		if [ "${s%/*}" = ecows ] && [[ " ${base_shapes[*]} " == *" ${s#*/} "* ]]; then
			with_base+=("$base_lib/${s#*/}")
		fi
	done
	servers=("${with_base[@]}")
fi

loadavg() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?"; }
la_start=$(loadavg)

for ((round = 1; round <= ROUNDS; round++)); do
	echo "== round $round/$ROUNDS: in-process benchmarks"
	"$bin/bench.test" -test.run '^$' -test.bench 'Echo128|Mask|CompressedEcho' -test.benchmem \
		-test.benchtime "$BENCHTIME" >>"$raw/inproc.txt"
	for sc in $SCENARIOS; do
		echo "== round $round/$ROUNDS: $sc"
		for s in $(rotated "$round"); do
			lib=${s%/*} shape=${s#*/}
			start_server "$lib" "$shape"
			"$bin/loadgen" -addr "$addr" -scenario "$sc" -warmup "$WARMUP" -duration "$DURATION" \
				-lib "$lib" -shape "$shape" -round "$round" >>"$raw/load.jsonl" || true
			stop_server
		done
	done
done

# Latency: one connection at a time, so the servers can stay up between runs (an idle server
# process costs the one under test nothing) and the libraries alternate run by run.
if [ -n "$LAT_SCENARIOS" ]; then
	lat_start=$(date +%s)
	read -r -a lat_libs <<<"$LAT_LIBS"
	if [ -n "$base_latency" ]; then # the baseline right after ecows
		with_base=()
		for lib in "${lat_libs[@]}"; do
			with_base+=("$lib")
			[ "$lib" != ecows ] || with_base+=("$base_lib")
		done
		lat_libs=("${with_base[@]}")
	fi
	for lib in "${lat_libs[@]}"; do
		start_server "$lib" message
		lat_pid[$lib]=$server_pid lat_addr[$lib]=$addr server_pid=
	done
	for ((round = 1; round <= LAT_ROUNDS; round++)); do
		for sc in $LAT_SCENARIOS; do
			echo "== latency round $round/$LAT_ROUNDS: $sc"
			n=${#lat_libs[@]}
			for ((i = 0; i < n; i++)); do
				lib=${lat_libs[$(((i + round - 1) % n))]}
				"$bin/loadgen" -addr "${lat_addr[$lib]}" -latency "$sc" -warmup "$LAT_WARMUP" \
					-duration "$LAT_DURATION" -lib "$lib" -shape message -round "$round" \
					>>"$raw/latency.jsonl" || true
			done
		done
	done
	stop_lat_servers
	lat_seconds=$(($(date +%s) - lat_start))
	echo "== latency rounds took $lat_seconds s"
fi

for ((round = 1; round <= IDLE_ROUNDS; round++)); do
	echo "== idle connections: $IDLE_CONNS per server (round $round/$IDLE_ROUNDS)"
	for s in $(rotated "$round"); do
		lib=${s%/*} shape=${s#*/}
		[ "$lib" != "$base_lib" ] || [ -n "$base_idle" ] || continue
		start_server "$lib" "$shape"
		"$bin/loadgen" -addr "$addr" -idle "$IDLE_CONNS" -settle 500ms \
			-lib "$lib" -shape "$shape" -round "$round" >>"$raw/idle.jsonl" || true
		stop_server
	done
	echo "== idle compressed connections: $IDLE_ZCONNS per library and agreement (round $round/$IDLE_ROUNDS)"
	# 10,000 connections take minutes per library on a loaded machine: past go test's 10m default.
	ECOWS_BENCH_IDLECONNS=$IDLE_ZCONNS "$bin/bench.test" -test.run '^$' -test.timeout 60m \
		-test.bench 'CompressedIdleConn' -test.benchtime 1x >>"$raw/inproc.txt" ||
		echo "BenchmarkCompressedIdleConn failed (see $raw/inproc.txt)" >&2
done

la_end=$(loadavg)
cores=$(nproc 2>/dev/null || echo 1)
if [ -z "${NOTE:-}" ]; then
	# A load average above a quarter of the cores before the run means other work shared them.
	if awk -v l="${la_start%% *}" -v c="$cores" 'BEGIN { exit !(l > c / 4) }'; then
		NOTE="Shared, noisy machine: other work was using these $cores cores during the run (see the load averages); treat differences under about 20% as noise."
	fi
fi
{
	echo "rounds=$ROUNDS"
	echo "warmup=$WARMUP"
	echo "duration=$DURATION"
	echo "benchtime=$BENCHTIME"
	echo "lat_rounds=${LAT_SCENARIOS:+$LAT_ROUNDS}"
	echo "lat_warmup=$LAT_WARMUP"
	echo "lat_duration=$LAT_DURATION"
	echo "lat_seconds=${lat_seconds:-}"
	echo "idle_conns=$IDLE_CONNS"
	echo "loadavg_start=$la_start"
	echo "loadavg_end=$la_end"
	echo "noisy=${NOTE:-}"
	echo "seconds=$(($(date +%s) - start))"
	# Which ecows was measured (read-only git queries; "+changes" when the library's own
	# packages differ from that commit).
	rev=$(git -C .. rev-parse --short HEAD 2>/dev/null || echo unknown)
	if git -C .. status --porcelain -- frame transport handshake 2>/dev/null | grep -qv "_test.go$"; then
		rev="$rev+changes"
	fi
	echo "ecows=$rev"
	if [ -n "${BASE:-}" ]; then
		echo "base=$BASE"
		echo "base_rev=$base_rev"
		echo "base_measured=${base_shapes[*]/#/$base_lib/}"
		echo "base_notes=${base_notes[*]}"
	fi
} >"$raw/meta.txt"

"$bin/report" -dir "$raw" -mode "$mode" -out "$OUT"
echo
echo "wrote $OUT in $(($(date +%s) - start)) s; raw results in $raw"
