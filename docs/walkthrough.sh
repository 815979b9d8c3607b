#!/usr/bin/env bash
# A day in Kawasaki (川崎の一日), end to end, against a running Renkei Note server.
#
#   docs/walkthrough.sh http://127.0.0.1:8080
#
# Needs bash, curl and python3 (for JSON and the TOTP code; no jq). Before running it, create
# the first system administrator as the README says, and give the script that account:
#
#   ADMIN_EMAIL=admin@example.jp ADMIN_PASSWORD='a-long-passphrase-here' docs/walkthrough.sh http://127.0.0.1:8080
#
# If the administrator has not set up two-factor sign-in yet, the script does it and prints the
# secret (add it to an authenticator app, or pass it as ADMIN_TOTP_SECRET next time). If it is
# set up already, pass its secret as ADMIN_TOTP_SECRET.
#
# Every account the script makes gets the password WALK_PASSWORD and an e-mail address with a
# fresh suffix, so the script can run again on the same server. It stops at the first request
# that fails and prints the server's problem+json answer. The README section "A day in
# Kawasaki" explains each step; the test suite runs this file (tests/api/walkthrough.rs).
set -euo pipefail

BASE="${1:-${RENKEI_URL:-http://127.0.0.1:8080}}"
BASE="${BASE%/}"
ADMIN_EMAIL="${ADMIN_EMAIL:-admin@example.jp}"
ADMIN_PASSWORD="${ADMIN_PASSWORD:?set ADMIN_PASSWORD to the password of the system administrator}"
ADMIN_TOTP_SECRET="${ADMIN_TOTP_SECRET:-}"
WALK_PASSWORD="${WALK_PASSWORD:-green-tea-at-the-ward-office}"
RUN="$(python3 -c 'import secrets; print(secrets.token_hex(4))')"
WARD=14133 # 中原区 Nakahara-ku

TMP_BODY="$(mktemp)"
trap 'rm -f "$TMP_BODY"' EXIT

step() { printf '\n== %s\n' "$*"; }

# api METHOD PATH TOKEN [JSON]: the answer's body; stops the script on any 4xx/5xx.
api() {
    local method=$1 path=$2 token=$3 body=${4-}
    local args=(-sS -X "$method" "$BASE$path" -H 'Accept-Language: ja' -o "$TMP_BODY" -w '%{http_code}')
    if [ -n "$token" ]; then args+=(-H "Authorization: Bearer $token"); fi
    if [ -n "$body" ]; then args+=(-H 'Content-Type: application/json' --data-binary "$body"); fi
    local status text
    status="$(curl "${args[@]}")" || { echo "walkthrough: cannot reach $BASE ($method $path)" >&2; exit 1; }
    text="$(cat "$TMP_BODY")"
    if [ "$status" -ge 400 ]; then
        echo "walkthrough: $method $path answered $status: $text" >&2
        exit 1
    fi
    printf '%s' "$text"
}

# field PATH: one value from the JSON on standard input (`id`, `items.0.id`).
field() {
    python3 -c '
import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    value = value[int(key)] if isinstance(value, list) else value[key]
print(value if not isinstance(value, (dict, list)) else json.dumps(value, ensure_ascii=False))
' "$1"
}

# totp SECRET: the current six-digit code (RFC 6238: SHA-1, 30-second steps).
totp() {
    python3 -c '
import base64, hashlib, hmac, struct, sys, time
secret = sys.argv[1].strip().upper()
key = base64.b32decode(secret + "=" * (-len(secret) % 8))
digest = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
offset = digest[-1] & 15
print("%06d" % ((struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1000000))
' "$1"
}

# login EMAIL PASSWORD [TOTP_CODE]: an access token.
login() {
    local body
    body="$(python3 -c 'import json, sys; d = {"email": sys.argv[1], "password": sys.argv[2]}
if len(sys.argv) > 3: d["totp_code"] = sys.argv[3]
print(json.dumps(d))' "$1" "$2" ${3:+"$3"})"
    api POST /api/v1/auth/login "" "$body" | field access_token
}

# account HANDLE ORG_ID TOKEN NAME KANA PROFESSION ROLE: creates an account with the address
# HANDLE-<RUN>@example.jp and the password WALK_PASSWORD; prints its id.
account() {
    local body
    body="$(python3 -c 'import json, sys
print(json.dumps({"email": sys.argv[1], "name": sys.argv[2], "name_kana": sys.argv[3],
                  "profession": sys.argv[4], "role": sys.argv[5], "password": sys.argv[6]}, ensure_ascii=False))' \
        "$(email_of "$1")" "$4" "$5" "$6" "$7" "$WALK_PASSWORD")"
    api POST "/api/v1/organizations/$2/users" "$3" "$body" | field id
}
email_of() { printf '%s-%s@example.jp' "$1" "$RUN"; }
as() { login "$(email_of "$1")" "$WALK_PASSWORD"; } # as HANDLE: that person's access token

organization() { # TOKEN KIND NAME
    local body
    body="$(python3 -c 'import json, sys; print(json.dumps({"kind": sys.argv[1], "name": sys.argv[2], "ward_code": sys.argv[3]}, ensure_ascii=False))' "$2" "$3" "$WARD")"
    api POST /api/v1/organizations "$1" "$body" | field id
}

json() { # json KEY=VALUE ...: a JSON object of strings (python3 quotes them)
    python3 -c 'import json, sys; print(json.dumps(dict(a.split("=", 1) for a in sys.argv[1:]), ensure_ascii=False))' "$@"
}

step "0. The server answers / サーバーの確認"
api GET /readyz "" | field status

step "1. The system administrator signs in (two-factor sign-in) / システム管理者のサインイン"
if [ -n "$ADMIN_TOTP_SECRET" ]; then
    ADMIN="$(login "$ADMIN_EMAIL" "$ADMIN_PASSWORD" "$(totp "$ADMIN_TOTP_SECRET")")"
else
    ADMIN="$(login "$ADMIN_EMAIL" "$ADMIN_PASSWORD")"
    # A system administrator must enrol TOTP before anything else (403 two-factor-required).
    ADMIN_TOTP_SECRET="$(api POST /api/v1/me/totp "$ADMIN" "$(json password="$ADMIN_PASSWORD")" | field secret)"
    api POST /api/v1/me/totp/confirm "$ADMIN" "$(json code="$(totp "$ADMIN_TOTP_SECRET")")" >/dev/null
    echo "two-factor sign-in is now on; keep this TOTP secret (ADMIN_TOTP_SECRET next time): $ADMIN_TOTP_SECRET"
fi
# The system administrator manages organisations and accounts. By design it sees no patient
# data: a patient's record is open only to that patient's care team.

step "2. Organisations of Nakahara-ku and their administrators / 中原区の事業所と組織管理者"
CARE_OFFICE="$(organization "$ADMIN" care_management_office "中原ケアプランセンター")"
STATION="$(organization "$ADMIN" visiting_nurse_station "中原訪問看護ステーション")"
CLINIC="$(organization "$ADMIN" clinic "中原在宅クリニック")"
HOSPITAL="$(organization "$ADMIN" hospital "川崎中央病院")"
WARD_OFFICE="$(organization "$ADMIN" city_ward_office "中原区役所")"
account office-admin "$CARE_OFFICE" "$ADMIN" "井上 直美" "イノウエ ナオミ" other org_admin >/dev/null
account station-admin "$STATION" "$ADMIN" "木村 恵" "キムラ メグミ" nurse org_admin >/dev/null
account clinic-admin "$CLINIC" "$ADMIN" "林 修" "ハヤシ オサム" other org_admin >/dev/null
account hospital-admin "$HOSPITAL" "$ADMIN" "清水 洋子" "シミズ ヨウコ" other org_admin >/dev/null
echo "care-management office $CARE_OFFICE, visiting-nurse station $STATION, clinic $CLINIC, hospital $HOSPITAL, ward office $WARD_OFFICE"

step "3. Each organisation's administrator adds its staff / 組織管理者が職員を登録"
CM_ID="$(account care-manager "$CARE_OFFICE" "$(as office-admin)" "佐藤 由美" "サトウ ユミ" care_manager member)"
NURSE_ID="$(account nurse "$STATION" "$(as station-admin)" "高橋 美咲" "タカハシ ミサキ" nurse member)"
DOCTOR_ID="$(account physician "$CLINIC" "$(as clinic-admin)" "田中 誠" "タナカ マコト" physician member)"
DISCHARGE_NURSE_ID="$(account discharge-nurse "$HOSPITAL" "$(as hospital-admin)" "伊藤 真理" "イトウ マリ" nurse member)"
echo "care manager $CM_ID, visiting nurse $NURSE_ID, home physician $DOCTOR_ID, discharge nurse $DISCHARGE_NURSE_ID"

step "4. The care manager registers a patient / ケアマネジャーが患者を登録"
CM="$(as care-manager)"
PATIENT="$(api POST /api/v1/patients "$CM" '{
  "family_name": "川崎", "given_name": "花子", "family_name_kana": "カワサキ", "given_name_kana": "ハナコ",
  "birth_date": "1938-04-01", "sex": "female", "ward_code": "'"$WARD"'",
  "address": "川崎市中原区小杉町３丁目", "phone": "044-000-0000", "care_level": "care_3",
  "emergency_contact": {"name": "川崎 一郎", "relationship": "長男", "phone": "090-0000-0000"}
}' | field id)"
echo "patient $PATIENT (the care manager is the first member and the team lead)"

step "5. The care manager builds the team / ケアチームを作る"
api POST "/api/v1/patients/$PATIENT/care-team" "$CM" "$(json user_id="$NURSE_ID" role=visiting_nurse)" >/dev/null
api POST "/api/v1/patients/$PATIENT/care-team" "$CM" "$(json user_id="$DOCTOR_ID" role=primary_physician)" >/dev/null
api GET "/api/v1/patients/$PATIENT/care-team" "$CM" | python3 -c '
import json, sys
for m in json.load(sys.stdin)["items"]:
    print(" ", m["role"], "(lead)" if m["is_lead"] else "")'

step "6. Consent to share within the team / 本人同意の記録"
CONSENT="$(api POST "/api/v1/patients/$PATIENT/consents" "$CM" \
    '{"scope": "care_team", "obtained_from": "patient", "obtained_on": "'"$(date -u +%F)"'", "note": "自宅で本人より書面で同意"}' | field id)"
echo "consent $CONSENT (scope care_team, from the patient)"

step "7. The visiting nurse posts a visit note; its vital signs raise a flag / 訪問記録とバイタル"
NURSE="$(as nurse)"
NOTE="$(api POST "/api/v1/patients/$PATIENT/notes" "$NURSE" '{
  "kind": "visit", "occurred_at": "'"$(date -u +%Y-%m-%dT%H:%M:%SZ)"'",
  "text": "定期訪問。呼吸が速く、脈も速い。主治医へ報告。",
  "soap": {"subjective": "息苦しい", "objective": "呼吸数25回/分、SpO2 93%、脈拍115回/分",
           "assessment": "急性増悪の疑い", "plan": "主治医へ報告し往診を依頼"},
  "vitals": {"respiratory_rate": 25, "spo2": 93, "on_oxygen": false, "systolic_bp": 130,
             "pulse": 115, "consciousness": "A", "temperature": 36.5}
}')"
echo "note $(printf '%s' "$NOTE" | field id), NEWS2 $(printf '%s' "$NOTE" | field news2.total) ($(printf '%s' "$NOTE" | field news2.band))"
FLAG="$(api GET "/api/v1/patients/$PATIENT/flags" "$NURSE" | field items.0.id)"
echo "flag $FLAG raised by the system; the team is e-mailed"

step "8. The home physician acknowledges the flag / 主治医が確認"
DOCTOR="$(as physician)"
api POST "/api/v1/flags/$FLAG/acknowledge" "$DOCTOR" '{"note": "本日午後に往診します"}' | field status

step "9. The hospital's discharge nurse opens a discharge case / 病院の退院支援看護師が入退院調整を開始"
# Not on the team yet: the hospital identifies the patient by id, birth date and kana, and
# joins the team as hospital_staff by opening the case.
CASE="$(api POST /api/v1/discharge-cases "$(as discharge-nurse)" '{
  "patient_id": "'"$PATIENT"'", "birth_date": "1938-04-01", "family_name_kana": "カワサキ",
  "admitted_on": "'"$(date -u +%F)"'", "department": "呼吸器内科", "hospital_ward": "5階東病棟",
  "reason": "誤嚥性肺炎", "contact": {"name": "伊藤 真理", "phone": "044-000-1111"}
}' | field id)"
echo "discharge case $CASE"
api GET "/api/v1/discharge-cases/$CASE/tasks" "$CM" | python3 -c '
import json, sys
for t in json.load(sys.stdin)["items"]:
    print(" ", t["due_at"] or "(due once the discharge date is set)", t["title"])'

step "10. The system administrator assigns the ward coordinating physician / 区在宅療養調整医師の指定"
COORDINATOR_ID="$(account coordinator "$WARD_OFFICE" "$ADMIN" "小林 健" "コバヤシ ケン" physician member)"
api PUT "/api/v1/wards/$WARD/coordinators/$COORDINATOR_ID" "$ADMIN" >/dev/null
echo "coordinator $COORDINATOR_ID for ward $WARD"

step "11. The coordinator reads the ward's caseload / ケースロードの確認"
api GET "/api/v1/wards/$WARD/caseload" "$(as coordinator)" | python3 -c '
import json, sys
page = json.load(sys.stdin)
s = page["summary"]
print("caseload: %d patients, %d with an active flag, %d open discharge cases" % (s["patients"], s["with_active_flag"], s["open_discharge_cases"]))
for row in page["items"]:
    news2 = row["latest_news2"] or {}
    print(" ", row["family_name_kana"], row["care_level"], "active flags:", row["active_flags"], "latest NEWS2:", news2.get("total"), news2.get("band"))'

step "12. The care manager fetches the FHIR export / FHIR エクスポート"
api GET "/api/v1/patients/$PATIENT/fhir" "$CM" | python3 -c '
import collections, json, sys
bundle = json.load(sys.stdin)
kinds = collections.Counter(e["resource"]["resourceType"] for e in bundle["entry"])
print("FHIR export: %s with %d entries: %s" % (bundle["resourceType"], len(bundle["entry"]), ", ".join("%s %d" % kv for kv in sorted(kinds.items()))))'

step "Done / 完了"
echo "walk-through complete"
