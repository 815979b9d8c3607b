"""Seeds a fresh Renkei Note server for `.ci/fuzz` through its real API, and writes what
schemathesis needs: the two users' sign-in document (Web Fuzzing Commons format) and the ids of
the records the fuzzer's path parameters take.

Usage: fuzz_seed.py BASE_URL ADMIN_EMAIL ADMIN_PASSWORD OUT_DIR
The system administrator must already exist (`renkei admin create`). Python standard library only.
"""

import base64
import hashlib
import hmac
import json
import struct
import sys
import time
import urllib.error
import urllib.request

BASE, ADMIN_EMAIL, ADMIN_PASSWORD, OUT = sys.argv[1:5]
PASSWORD = "fuzz-cedar-river-morning"


def call(method, path, token=None, body=None, expect=(200, 201)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            status, text = res.status, res.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    if status not in expect:
        sys.exit(f"seed: {method} {path} answered {status}: {text}")
    return json.loads(text) if text else None


def totp(secret, at):
    """RFC 6238 with the server's parameters: SHA-1, 6 digits, 30-second steps."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{number % 1_000_000:06d}"


def login(email, password, totp_code=None):
    body = {"email": email, "password": password}
    if totp_code is not None:
        body["totp_code"] = totp_code
    return call("POST", "/api/v1/auth/login", body=body)["access_token"]


# The system administrator switches on two-factor sign-in, then signs in with a code. The code
# of the next time step is used: each step is accepted once and confirming took the current one.
admin = login(ADMIN_EMAIL, ADMIN_PASSWORD)
secret = call("POST", "/api/v1/me/totp", admin, {"password": ADMIN_PASSWORD})["secret"]
call("POST", "/api/v1/me/totp/confirm", admin, {"code": totp(secret, time.time())})
admin = login(ADMIN_EMAIL, ADMIN_PASSWORD, totp(secret, time.time() + 30))


def organization(name, ward, kind="care_management_office"):
    body = {"kind": kind, "name": name, "ward_code": ward}
    return call("POST", "/api/v1/organizations", admin, body)["id"]


def person(org, email, name, kana, profession):
    body = {
        "email": email,
        "name": name,
        "name_kana": kana,
        "profession": profession,
        "role": "member",
        "password": PASSWORD,
    }
    return call("POST", f"/api/v1/organizations/{org}/users", admin, body)["id"]


def care_manager(org, email, name, kana):
    return person(org, email, name, kana, "care_manager"), login(email, PASSWORD)


def patient(token, family, given, family_kana, given_kana, ward):
    body = {
        "family_name": family,
        "given_name": given,
        "family_name_kana": family_kana,
        "given_name_kana": given_kana,
        "birth_date": "1941-04-03",
        "sex": "female",
        "ward_code": ward,
        "care_level": "care_2",
    }
    return call("POST", "/api/v1/patients", token, body)["id"]


# Two care managers in different organisations, each the lead of their own patient's care team.
org_a = organization("中原ケアプランセンター", "14133")
org_b = organization("高津ケアプランセンター", "14134")
user_a, token_a = care_manager(org_a, "cm-a@example.jp", "中原 花子", "ナカハラ ハナコ")
user_b, token_b = care_manager(org_b, "cm-b@example.jp", "高津 一郎", "タカツ イチロウ")
patient_a = patient(token_a, "川崎", "ハル", "カワサキ", "ハル", "14133")
patient_b = patient(token_b, "溝口", "アキ", "ミゾノクチ", "アキ", "14134")
# A second registration of A's patient, which the fuzzer merges into the first.
duplicate_a = patient(token_a, "川崎", "はる", "カワサキ", "ハル", "14133")

consent_a = call(
    "POST",
    f"/api/v1/patients/{patient_a}/consents",
    token_a,
    {"scope": "care_team", "obtained_from": "patient", "obtained_on": "2026-01-05"},
)["id"]
# A visiting nurse joins A's team (the fuzzer changes that membership, not A's own); a pharmacist
# is who the fuzzer adds to the team. Professions fit their organisation's kind.
station = organization("中原訪問看護ステーション", "14133", "visiting_nurse_station")
pharmacy = organization("中原調剤薬局", "14133", "pharmacy")
nurse = person(station, "nurse-a@example.jp", "中原 看護", "ナカハラ カンゴ", "nurse")
pharmacist = person(pharmacy, "pharmacist-a@example.jp", "中原 薬剤", "ナカハラ ヤクザイ", "pharmacist")
member_a = call(
    "POST", f"/api/v1/patients/{patient_a}/care-team", token_a, {"user_id": nurse, "role": "visiting_nurse"}
)["id"]
flag_a = call(
    "POST",
    f"/api/v1/patients/{patient_a}/flags",
    token_a,
    {"severity": "urgent", "reason": "SpO2 低下、呼吸困難の訴えあり"},
)["id"]

# Each user is signed in afresh whenever the fuzzer ends the session (logout answers 401 after).
auth = {
    "auth": [
        {
            "name": name,
            "loginEndpointAuth": {
                "endpoint": "/api/v1/auth/login",
                "verb": "POST",
                "contentType": "application/json",
                "payloadUserPwd": {
                    "username": email,
                    "password": PASSWORD,
                    "usernameField": "email",
                    "passwordField": "password",
                },
                "token": {
                    "extractFrom": "body",
                    "extractSelector": "/access_token",
                    "sendIn": "header",
                    "sendName": "Authorization",
                    "sendTemplate": "Bearer {token}",
                },
            },
        }
        for name, email in (("care_manager_a", "cm-a@example.jp"), ("care_manager_b", "cm-b@example.jp"))
    ]
}
with open(f"{OUT}/auth.json", "w", encoding="utf-8") as f:
    json.dump(auth, f, ensure_ascii=False, indent=2)

ids = {
    "FUZZ_ORG_ID": org_a,
    "FUZZ_USER_ID": user_a,
    "FUZZ_PATIENT_ID": patient_a,
    "FUZZ_CONSENT_ID": consent_a,
    "FUZZ_MEMBER_ID": member_a,
    "FUZZ_FLAG_ID": flag_a,
    "FUZZ_OTHER_PATIENT_ID": patient_b,
    "FUZZ_DUPLICATE_PATIENT_ID": duplicate_a,
    "FUZZ_NEW_MEMBER_USER_ID": pharmacist,
}
with open(f"{OUT}/ids.env", "w", encoding="utf-8") as f:
    for key, value in ids.items():
        f.write(f"export {key}={value}\n")
print(f"seeded: organisations {org_a} {org_b}, care managers {user_a} {user_b}, patients {patient_a} {patient_b}")
