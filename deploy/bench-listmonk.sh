#!/usr/bin/env bash
# Runs Missive's email figure and listmonk's on this machine, alternated,
# into the same SMTP sink (the child of "missive bench"), and prints each
# run and the medians.
#
# Both send 20,000 personalised HTML emails of about 2 KB: listmonk tuned
# (20 workers, 10,000/s, 20 SMTP connections), Missive at serve's defaults.
# For each run: messages a second from the start (listmonk: the campaign's
# status set to running; Missive: the start call) to the last message at
# the sink, the same from the first message to the last, the first message's
# delay, and CPU a message: the app's process, and its store (PostgreSQL's
# processes, or Redis's INFO cpu).
#
# Needs bash, curl, psql, python3, Go, and:
#   LISTMONK_DIR  a listmonk source tree with its binary built at its root:
#                 git clone https://github.com/knadh/listmonk && cd listmonk
#                 && go build -o listmonk ./cmd   (the admin frontend is not
#                 needed: an empty frontend/dist is made when missing)
#   LISTMONK_DB   a PostgreSQL database for listmonk alone; its data is
#                 replaced (default postgres://listmonk:listmonk@127.0.0.1:5432/listmonk)
#   PAIRS         pairs of runs (default 3)
#   MISSIVE_REDIS_URL, as for missive bench (else a throw-away redis-server)
#
# Usage: LISTMONK_DIR=~/src/listmonk deploy/bench-listmonk.sh
set -euo pipefail

: "${LISTMONK_DIR:?set LISTMONK_DIR to a listmonk source tree with its binary built}"
LISTMONK_DB=${LISTMONK_DB:-postgres://listmonk:listmonk@127.0.0.1:5432/listmonk}
PAIRS=${PAIRS:-3}
N=20000
LISTMONK_ADDR=127.0.0.1:9931

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
missive=$work/missive
(cd "$(dirname "$0")/.." && go build -o "$missive" ./cmd/missive)

sql() { PGOPTIONS='-c client_min_messages=warning' psql -qAtX -v ON_ERROR_STOP=1 "$LISTMONK_DB" "$@"; }

# postgres_pids: the PostgreSQL server's processes (backends and background
# workers), but the caller's.
postgres_pids() { sql -c 'SELECT string_agg(pid::text, $$ $$) FROM pg_stat_activity WHERE pid <> pg_backend_pid()'; }

# listmonk's configuration, from LISTMONK_DB
python3 - "$LISTMONK_DB" "$LISTMONK_ADDR" > "$work/config.toml" <<'PY'
import sys, urllib.parse as u
d = u.urlparse(sys.argv[1])
print(f'''[app]
address = "{sys.argv[2]}"
[db]
host = "{d.hostname}"
port = {d.port or 5432}
user = "{u.unquote(d.username or '')}"
password = "{u.unquote(d.password or '')}"
database = "{d.path.lstrip('/')}"
ssl_mode = "disable"
max_open = 25
max_idle = 25
max_lifetime = "300s"
params = ""''')
PY
mkdir -p "$LISTMONK_DIR/frontend/dist"
[ -e "$LISTMONK_DIR/frontend/dist/index.html" ] || echo '<html></html>' > "$LISTMONK_DIR/frontend/dist/index.html"
(cd "$LISTMONK_DIR" && LISTMONK_ADMIN_USER=admin LISTMONK_ADMIN_PASSWORD=bench-admin-password \
	env -u LISTMONK_DIR -u LISTMONK_DB ./listmonk --config "$work/config.toml" --install --idempotent --yes > "$work/install.log" 2>&1) ||
	{ cat "$work/install.log"; exit 1; }

# alive PID LOG: fails, printing LOG, when PID has exited.
alive() { kill -0 "$1" 2> /dev/null || { echo "process $1 exited:" >&2; cat "$2" >&2; exit 1; }; }

# cpu_ticks PID...: user and system clock ticks of the processes.
cpu_ticks() {
	local t=0 p
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo "$t"
}

# listmonk_run prints one JSON line: listmonk's figure.
listmonk_run() {
	local in=$work/peer.in out=$work/peer.out
	rm -f "$in" "$out"
	mkfifo "$in"
	"$missive" bench peer -sms 0 < "$in" > "$out" 2> "$work/peer.err" &
	local peer=$!
	exec 7> "$in"
	until [ -s "$out" ]; do alive "$peer" "$work/peer.err"; sleep 0.05; done
	local smtp status host port
	smtp=$(python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["smtp_url"])' < "$out")
	status=$(python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["status_url"])' < "$out")
	read -r host port < <(python3 -c 'import sys,urllib.parse as u; d=u.urlparse(sys.argv[1]); print(d.hostname, d.port)' "$smtp")

	sql <<SQL
TRUNCATE campaigns, campaign_lists, subscriber_lists, subscribers, lists RESTART IDENTITY CASCADE;
UPDATE settings SET value = '20' WHERE key = 'app.concurrency';
UPDATE settings SET value = '10000' WHERE key = 'app.message_rate';
UPDATE settings SET value = '[{"enabled":true,"host":"$host","port":$port,"auth_protocol":"none","username":"","password":"","hello_hostname":"","max_conns":20,"idle_timeout":"15s","wait_timeout":"5s","max_msg_retries":2,"msg_retry_delay":"10ms","tls_type":"none","tls_skip_verify":true,"email_headers":[],"from_addresses":[]}]' WHERE key = 'smtp';
INSERT INTO lists (uuid, name, type, optin) VALUES (gen_random_uuid(), 'bench', 'private', 'single');
INSERT INTO subscribers (uuid, email, name, attribs)
	SELECT gen_random_uuid(), 'c' || g || '@example.com', 'Contact ' || g, jsonb_build_object('first_name', 'Ann' || g)
	FROM generate_series(1, $N) g;
INSERT INTO subscriber_lists (subscriber_id, list_id, status) SELECT id, 1, 'confirmed' FROM subscribers;
DELETE FROM templates WHERE name = 'bench';
INSERT INTO templates (name, type, subject, body) VALUES ('bench', 'campaign', '', '{{ template "content" . }}');
INSERT INTO campaigns (uuid, name, subject, from_email, body, content_type, messenger, template_id, type, status)
	SELECT gen_random_uuid(), 'bench', 'News for {{ .Subscriber.Attribs.first_name }}', 'Shop <news@example.com>',
		'<p>Hello {{ .Subscriber.Attribs.first_name }},</p>' || repeat(E'<p>Autumn news, offers and stories from the shop.</p>\n', 24),
		'html', 'email', (SELECT id FROM templates WHERE name = 'bench'), 'regular', 'draft';
INSERT INTO campaign_lists (campaign_id, list_id, list_name) VALUES (1, 1, 'bench');
SQL

	(cd "$LISTMONK_DIR" && exec env -u LISTMONK_DIR -u LISTMONK_DB ./listmonk --config "$work/config.toml" > "$work/listmonk.log" 2>&1) &
	local lm=$!
	until curl -sf -o /dev/null "http://$LISTMONK_ADDR/health"; do alive "$lm" "$work/listmonk.log"; sleep 0.05; done
	local c0 p0 t0 arrived=0 st
	c0=$(cpu_ticks $lm)
	# shellcheck disable=SC2046 # a list of pids
	p0=$(cpu_ticks $(postgres_pids))
	t0=$(date +%s%N)
	sql -c "UPDATE campaigns SET status = 'running', updated_at = NOW() WHERE id = 1"
	local deadline=$((SECONDS + 600))
	until [ "$arrived" -ge "$N" ]; do
		alive "$lm" "$work/listmonk.log"
		if [ "$SECONDS" -gt "$deadline" ]; then
			echo "listmonk sent $arrived of $N in 10 minutes; its log:" >&2
			cat "$work/listmonk.log" >&2
			exit 1
		fi
		sleep 0.02
		st=$(curl -sf "$status")
		arrived=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["email"]["messages"])' "$st")
	done
	local c1 p1 rss
	c1=$(cpu_ticks $lm)
	# shellcheck disable=SC2046
	p1=$(cpu_ticks $(postgres_pids))
	rss=$(awk '/VmHWM/ {print $2}' "/proc/$lm/status")
	kill "$lm"
	wait "$lm" 2> /dev/null || true
	exec 7>&-
	wait "$peer" 2> /dev/null || true
	python3 - "$st" "$t0" "$c0" "$c1" "$p0" "$p1" "$(getconf CLK_TCK)" "$N" "$rss" <<'PY'
import json, sys
s = json.loads(sys.argv[1])["email"]
t0 = int(sys.argv[2])
c0, c1, p0, p1, hz, n, rss = map(int, sys.argv[3:10])
us = lambda ticks: ticks / hz * 1e6 / n
print(json.dumps({"app": "listmonk", "per_second": n / ((s["last_unix_ns"] - t0) / 1e9),
	"window_per_second": n / ((s["last_unix_ns"] - s["first_unix_ns"]) / 1e9),
	"first_message_ms": (s["first_unix_ns"] - t0) / 1e6, "bytes_per_email": s["bytes"] / s["messages"],
	"unique": s["unique_recipients"], "cpu_app_us": us(c1 - c0), "cpu_store_us": us(p1 - p0), "peak_rss_mb": rss / 1024}))
PY
}

# missive_run prints one JSON line: Missive's figure.
missive_run() {
	"$missive" bench -only email -contacts "$N" -json 2> /dev/null | python3 -c '
import json, sys
f = json.load(sys.stdin)["figures"][0]
window = f["n"] / (f["seconds"] - f["first_message_ms"] / 1e3)
print(json.dumps({"app": "missive", "per_second": f["per_second"], "window_per_second": window,
	"first_message_ms": f["first_message_ms"], "bytes_per_email": f["bytes_per_email"], "unique": f["n"],
	"cpu_app_us": f["cpu_process_us_per_msg"], "cpu_store_us": f["cpu_redis_us_per_msg"], "peak_rss_mb": f["peak_rss_mb"]}))'
}

echo "# $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $PAIRS pairs of $N emails"
for i in $(seq "$PAIRS"); do
	listmonk_run | tee -a "$work/runs"
	missive_run | tee -a "$work/runs"
done
echo "# load average $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/runs" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
cols = [("per_second", "msgs/s, start to last", "{:,.0f}"), ("window_per_second", "msgs/s, first to last", "{:,.0f}"),
	("first_message_ms", "first message", "{:,.0f} ms"), ("bytes_per_email", "bytes/email", "{:,.0f}"),
	("cpu_app_us", "CPU/msg app", "{:.0f} µs"), ("cpu_store_us", "CPU/msg store", "{:.0f} µs"), ("peak_rss_mb", "peak RSS", "{:.0f} MB")]
print("| medians | " + " | ".join(c[1] for c in cols) + " | CPU/msg app + store |")
print("|---" * (len(cols) + 2) + "|")
for app in ("listmonk", "missive"):
	rs = [r for r in runs if r["app"] == app]
	med = {k: statistics.median(r[k] for r in rs) for k, _, _ in cols}
	both = statistics.median(r["cpu_app_us"] + r["cpu_store_us"] for r in rs)
	print(f"| {app} | " + " | ".join(f.format(med[k]) for k, _, f in cols) + f" | {both:.0f} µs |")
PY
