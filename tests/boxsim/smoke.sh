#!/bin/bash
# Hand check of boxsim with curl: chunked upload of a 25 MB file in 8 MiB
# parts, commit, download back, compare SHA-1; then a restart.
#   tests/boxsim/smoke.sh [path/to/boxsim]
set -euo pipefail
BIN=${1:-build/tests/boxsim/boxsim}
W=$(mktemp -d /tmp/boxsim-smoke-XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
start() {
	"$BIN" --listen 127.0.0.1:0 --data "$W/data" --log "$W/log" >"$W/out" 2>"$W/err" &
	pid=$!
	for _ in $(seq 50); do [ -s "$W/out" ] && break; sleep 0.1; done
	B=$(head -1 "$W/out")
}
json() { /usr/bin/python3 -c "import json,sys;d=json.load(sys.stdin);print($1)"; }
start
H="Authorization: Bearer boxsim-token"
SIZE=25000000
head -c $SIZE /dev/urandom >"$W/big"
S=$(curl -sf -X POST "$B/api/2.0/files/upload_sessions" -H "$H" \
	-d "{\"folder_id\":\"0\",\"file_size\":$SIZE,\"file_name\":\"big.bin\"}")
SID=$(echo "$S" | json 'd["id"]'); PS=$(echo "$S" | json 'd["part_size"]')
parts=
for ((off = 0; off < SIZE; off += PS)); do
	len=$((SIZE - off < PS ? SIZE - off : PS))
	dd if="$W/big" of="$W/p" bs=1M iflag=skip_bytes,count_bytes skip=$off count=$len status=none
	R=$(curl -sf -X PUT "$B/api/2.0/files/upload_sessions/$SID" -H "$H" \
		-H "Content-Range: bytes $off-$((off + len - 1))/$SIZE" \
		-H "Digest: sha=$(openssl sha1 -binary "$W/p" | base64)" --data-binary @"$W/p")
	parts="$parts${parts:+,}$(echo "$R" | json 'json.dumps(d["part"])')"
done
F=$(curl -sf -X POST "$B/api/2.0/files/upload_sessions/$SID/commit" -H "$H" \
	-H "Digest: sha=$(openssl sha1 -binary "$W/big" | base64)" -d "{\"parts\":[$parts]}")
ID=$(echo "$F" | json 'd["entries"][0]["id"]')
want=$(sha1sum <"$W/big" | cut -c1-40)
[ "$(echo "$F" | json 'd["entries"][0]["sha1"]')" = "$want" ]
[ "$(curl -sfL "$B/2.0/files/$ID/content" -H "$H" | sha1sum | cut -c1-40)" = "$want" ]
[ "$(sha1sum <"$W/data/tree/big.bin" | cut -c1-40)" = "$want" ]
kill "$pid"; wait "$pid" || true
start
[ "$(curl -sfL "$B/2.0/files/$ID/content" -H "$H" | sha1sum | cut -c1-40)" = "$want" ]
echo "smoke OK: $SIZE bytes in parts of $PS, sha1 $want, survives restart"
