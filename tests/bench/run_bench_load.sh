#!/usr/bin/env bash
# faultline's load generator against wrk on one private nginx: (a) CPU per request, (b) whether a 10k/s timetable holds on one core.
#
#   tests/bench/run_bench_load.sh [path/to/bench_load]
#
# Needs nginx (Debian nginx-light), wrk, taskset and two CPUs. Starts its own nginx on 127.0.0.1
# with a config in a temporary directory (never the system service) and removes all of it on
# every exit path. Knobs (environment): DUR=10 RATE_A=20000 RATE_B=10000 CONNS=50 GEN_CPU=0 NGINX_CPU=1
set -euo pipefail

bench=${1:-${BENCH_LOAD:-${FL_BINARY_DIR:-build}/tests/bench/bench_load}}
dur=${DUR:-10}
rate_a=${RATE_A:-20000}
rate_b=${RATE_B:-10000}
conns=${CONNS:-50}
gen_cpu=${GEN_CPU:-0}
nginx_cpu=${NGINX_CPU:-1}

die() { echo "run_bench_load: $*" >&2; exit 1; }
for tool in nginx wrk taskset ss; do
	command -v "$tool" >/dev/null || die "$tool is not installed"
done
[ -x /usr/bin/time ] || die "/usr/bin/time is not installed (Debian: time)"
[ -x "$bench" ] || die "no bench_load at '$bench' (build it, or pass its path)"

tmp=$(mktemp -d /tmp/fl-bench-load.XXXXXX)
nginx_pid=
child=

# Stop a process group we started: TERM, up to 5 s, then KILL.
stop_group() {
	local pid=$1
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM -- "-$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL -- "-$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	[ -n "$child" ] && stop_group "$child"
	[ -n "$nginx_pid" ] && stop_group "$nginx_pid"
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Each measurement runs in a process group of its own and is waited for with `wait`, which a
# signal interrupts (a foreground wrk would swallow Ctrl-C and let the script carry on); the
# EXIT trap then stops whatever is still running.
run() {
	local rc=0
	setsid "$@" &
	child=$!
	wait "$child" || rc=$?
	child=
	return "$rc"
}

# a port nobody listens on, below the ephemeral range so our own clients cannot take it
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 12000))
		if [ -z "$(ss -Htan "( sport = :$p or dport = :$p )")" ]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

start_nginx() {
	local port=$1
	mkdir -p "$tmp/www" "$tmp/tmp"
	head -c 612 /dev/zero | tr '\0' 'x' >"$tmp/www/index.html"
	# the worker drops to nobody: it must be able to read the document root
	chmod 755 "$tmp" "$tmp/www"
	chmod 644 "$tmp/www/index.html"
	cat >"$tmp/nginx.conf" <<EOF
worker_processes 1;
master_process off;   # one process: the benchmark target, and nothing can outlive the script
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    client_body_temp_path $tmp/tmp/body;
    proxy_temp_path $tmp/tmp/proxy;
    fastcgi_temp_path $tmp/tmp/fastcgi;
    uwsgi_temp_path $tmp/tmp/uwsgi;
    scgi_temp_path $tmp/tmp/scgi;
    default_type text/html;
    server {
        listen 127.0.0.1:$port;
        root $tmp/www;
    }
}
EOF
	setsid taskset -c "$nginx_cpu" nginx -p "$tmp" -e "$tmp/error.log" -c "$tmp/nginx.conf" &
	nginx_pid=$!
	for _ in $(seq 50); do
		if curl_ok "$port"; then
			return 0
		fi
		kill -0 "$nginx_pid" 2>/dev/null || break
		sleep 0.1
	done
	cat "$tmp/error.log" >&2 || true
	stop_group "$nginx_pid"
	nginx_pid=
	return 1
}

# a one-request check with bash's /dev/tcp: no curl needed
curl_ok() {
	local reply
	{ exec 9<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
	printf 'GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&9
	reply=$(head -c 12 <&9 || true)
	exec 9<&- 9>&-
	[ "$reply" = "HTTP/1.1 200" ]
}

port=
for _ in 1 2 3 4 5; do
	port=$(free_port) || die "no free port"
	start_nginx "$port" && break
	port=
done
[ -n "$port" ] || die "nginx did not start"
url="http://127.0.0.1:$port/index.html"

get() { sed -n "s/^$1=//p" "$2"; }
cpu_of() { awk -F= '$1 == "cpu_user_s" || $1 == "cpu_sys_s" { s += $2 } END { print s }' "$1"; }
hz=$(getconf CLK_TCK)
# noise meter: CPU time (ms) used on CPUs 0-1 by anything, and by nginx, so far; the difference
# minus the generator's own time is what other tenants of this VM took during a run
busy_ms() { awk -v hz="$hz" '/^cpu[01] /{ s += $2 + $3 + $4 + $7 + $8 + $9 } END { printf "%d", s * 1000 / hz }' /proc/stat; }
nginx_ms() { awk -v hz="$hz" '{ printf "%d", ($14 + $15) * 1000 / hz }' "/proc/$nginx_pid/stat"; }
mark() {
	kill -0 "$nginx_pid" 2>/dev/null || die "nginx (pid $nginx_pid) died; see $tmp/error.log"
	echo "$(busy_ms) $(nginx_ms)"
}
# other CPU ms between two marks, given the generator's CPU seconds
others() { awk -v a="$1" -v b="$2" -v gen="$3" 'BEGIN { split(a, x, " "); split(b, y, " ");
	v = (y[1] - x[1]) - (y[2] - x[2]) - gen * 1000; printf "%d", v < 0 ? 0 : v }'; }

echo "nginx pid $nginx_pid on 127.0.0.1:$port (cpu $nginx_cpu); generators on cpu $gen_cpu; ${dur}s runs" >&2
echo "'others s': CPU seconds that other processes on this VM used on CPUs 0-1 during the run (noise)" >&2

# (a) CPU per request: faultline at a fixed open-loop rate, wrk closed-loop, same nginx, same core
m0=$(mark)
run taskset -c "$gen_cpu" "$bench" --url "$url" --rate "$rate_a" --duration "$dur" --connections "$conns" \
	>"$tmp/fl_a.txt"
m1=$(mark)
run /usr/bin/time -f '%U %S' -o "$tmp/wrk.time" taskset -c "$gen_cpu" wrk -t1 -c"$conns" -d"${dur}s" "$url" \
	>"$tmp/wrk.txt"
m2=$(mark)
read -r wrk_user wrk_sys <"$tmp/wrk.time"
wrk_reqs=$(sed -n 's/^ *\([0-9]\+\) requests in.*/\1/p' "$tmp/wrk.txt")
wrk_non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]\+\).*/\1/p' "$tmp/wrk.txt")
wrk_errs=$(sed -n 's/^ *Socket errors:.*//p' "$tmp/wrk.txt" | wc -l)
[ -n "$wrk_reqs" ] || die "could not read wrk's request count: $(cat "$tmp/wrk.txt")"
fl_ok=$(get ok "$tmp/fl_a.txt")

# (b) a 10k/s timetable on one core: the default (sends batched within 250 µs), then exact
m3=$(mark)
run taskset -c "$gen_cpu" "$bench" --url "$url" --rate "$rate_b" --duration "$dur" --connections "$conns" \
	>"$tmp/fl_b.txt"
m4=$(mark)
run taskset -c "$gen_cpu" "$bench" --url "$url" --rate "$rate_b" --duration "$dur" --connections "$conns" \
	--slack-us -1 >"$tmp/fl_b_exact.txt"
m5=$(mark)

awk -v fl_ok="$fl_ok" -v wrk_reqs="$wrk_reqs" -v wrk_user="$wrk_user" -v wrk_sys="$wrk_sys" \
	-v dur="$dur" -v rate_a="$rate_a" -v conns="$conns" \
	-v fl_user="$(get cpu_user_s "$tmp/fl_a.txt")" -v fl_sys="$(get cpu_sys_s "$tmp/fl_a.txt")" \
	-v fl_bad="$(( $(get reported "$tmp/fl_a.txt") - fl_ok ))" -v wrk_bad="$(( ${wrk_non2xx:-0} + wrk_errs ))" \
	-v fl_other="$(others "$m0" "$m1" "$(cpu_of "$tmp/fl_a.txt")")" \
	-v wrk_other="$(others "$m1" "$m2" "$(awk -v u="$wrk_user" -v s="$wrk_sys" 'BEGIN { print u + s }')")" 'BEGIN {
	fl_per = (fl_user + fl_sys) * 1e6 / fl_ok; wrk_per = (wrk_user + wrk_sys) * 1e6 / wrk_reqs
	printf "\n(a) CPU per request: %ss, %d connections, generator pinned to one core\n", dur, conns
	printf "%-32s %10s %8s %8s %11s %7s %9s\n", "generator", "requests", "user s", "sys s", "CPU us/req", "failed", "others s"
	printf "%-32s %10d %8.2f %8.2f %11.2f %7d %9.2f\n", "faultline open loop " rate_a "/s", fl_ok, fl_user, fl_sys, fl_per, fl_bad, fl_other / 1000
	printf "%-32s %10d %8.2f %8.2f %11.2f %7d %9.2f\n", "wrk -t1 -c" conns " (closed loop)", wrk_reqs, wrk_user, wrk_sys, wrk_per, wrk_bad, wrk_other / 1000
	printf "ratio faultline/wrk CPU per request: %.2f (goal <= 1.25)\n", fl_per / wrk_per
}'
row() {
	awk -F= -v name="$1" -v other="$3" '{ v[$1] = $2 } END {
		printf "%-22s %9s %11s %9s %10s %10s %9s %9s %9s %9s %7s %8.2f\n", name, v["scheduled"], v["achieved_rate"], v["ok"],
			sprintf("%.3f%%", v["sent_late_frac"] * 100), v["max_lag_ms"], v["max_loop_gap_ms"],
			v["p50_ms"], v["p99_ms"], v["max_ms"], sprintf("%.1f", v["cpu_us_per_req"]), other / 1000
	}' "$2"
}
printf "\n(b) %s req/s for %ss, generator pinned to one core (times in ms)\n" "$rate_b" "$dur"
printf "%-22s %9s %11s %9s %10s %10s %9s %9s %9s %9s %7s %8s\n" "mode" "scheduled" "achieved/s" "ok" \
	">1ms late" "max lag" "max gap" "p50" "p99" "max" "us/req" "others s"
row "batched (slack 250us)" "$tmp/fl_b.txt" "$(others "$m3" "$m4" "$(cpu_of "$tmp/fl_b.txt")")"
row "exact (slack off)" "$tmp/fl_b_exact.txt" "$(others "$m4" "$m5" "$(cpu_of "$tmp/fl_b_exact.txt")")"

if [ -n "${KEEP_RAW:-}" ]; then
	mkdir -p "$KEEP_RAW"
	cp "$tmp"/fl_*.txt "$tmp/wrk.txt" "$tmp/wrk.time" "$KEEP_RAW/"
fi
