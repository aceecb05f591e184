#!/usr/bin/env bash
# A walk-through of a worker's HTTP API with curl: place an order, place it again, pay,
# cancel, read it back. Needs a worker (faust -A stockflow worker) and stocked products.
#
#   STOCKFLOW_URL      the worker's HTTP address (default http://127.0.0.1:6066); any worker
#   STOCKFLOW_HTTP_TOKEN   sent as a bearer token when set (the worker's write lock)
#   ORDER              order id prefix (default: a fresh one per run)
set -euo pipefail
URL="${STOCKFLOW_URL:-http://127.0.0.1:6066}"
ORDER="${ORDER:-curl-$(date +%s)-$$}"
AUTH=()
if [[ -n "${STOCKFLOW_HTTP_TOKEN:-}" ]]; then
  AUTH=(-H "Authorization: Bearer ${STOCKFLOW_HTTP_TOKEN}")
fi

step() { printf '\n== %s\n' "$*"; }
call() { # METHOD PATH [JSON]: prints the status line and the body
  local method=$1 path=$2 body=${3:-}
  local args=(-sS -X "$method" "${AUTH[@]}" -H 'Content-Type: application/json' -w '\nHTTP %{http_code}\n')
  [[ -n "$body" ]] && args+=(--data "$body")
  curl "${args[@]}" "$URL$path"
}

step "1. place ${ORDER}-a: 2 t-shirts and a mug; waits up to 5 s for the answer (200)"
call POST /orders "{\"order_id\": \"${ORDER}-a\", \"lines\": [{\"product_id\": \"sku-tshirt\", \"quantity\": 2}, {\"product_id\": \"sku-mug\", \"quantity\": 1}]}"

step "2. the same order again (a double click): the same answer, nothing reserved twice"
call POST /orders "{\"order_id\": \"${ORDER}-a\", \"lines\": [{\"product_id\": \"sku-tshirt\", \"quantity\": 2}, {\"product_id\": \"sku-mug\", \"quantity\": 1}]}"

step "3. the same id with other lines: 409 and what differs"
call POST /orders "{\"order_id\": \"${ORDER}-a\", \"lines\": [{\"product_id\": \"sku-tshirt\", \"quantity\": 5}]}"

step "4. an invalid order: 400 with the field errors, nothing sent"
call POST /orders "{\"order_id\": \"${ORDER}-x\", \"lines\": [{\"product_id\": \"sku-mug\", \"quantity\": 0}]}"

step "5. pay ${ORDER}-a: one ReservationConfirmed per line"
call POST "/orders/${ORDER}-a/pay"

step "6. place ${ORDER}-b without waiting (?wait=0): 202 and a Location to read it at"
call POST "/orders?wait=0" "{\"order_id\": \"${ORDER}-b\", \"lines\": [{\"product_id\": \"sku-mug\", \"quantity\": 1}]}"

step "7. ask again with a wait: the outcome"
call POST "/orders?wait=10" "{\"order_id\": \"${ORDER}-b\", \"lines\": [{\"product_id\": \"sku-mug\", \"quantity\": 1}]}"

step "8. cancel ${ORDER}-b: its units are released"
call POST "/orders/${ORDER}-b/cancel" '{"reason": "shopper left"}'

step "9. read both orders and the stock back"
call GET "/orders/${ORDER}-a"
call GET "/orders/${ORDER}-b"
call GET /stock/sku-mug

step "10. the API's OpenAPI document"
document=$(curl -sS "${AUTH[@]}" "$URL/openapi.json")
echo "${document:0:300}..."
