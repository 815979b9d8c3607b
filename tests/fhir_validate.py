#!/usr/bin/env python3
"""Validates a FHIR R4 Bundle read from stdin with the `fhir.resources` models.

fhir.resources 7.1.0 defaults to FHIR R5; its `fhir.resources.R4B` package holds the R4B models
(R4B changed none of the resources exported here apart from additions). Every entry's resource
is parsed with the model named by its resourceType, then the whole Bundle is parsed. Checks that
the models do not make are done here too: fullUrl is `urn:uuid:<id>` and every `urn:uuid:`
reference resolves to an entry, and codes with a *required* binding in FHIR R4 are in their
value set (the models type them only as `code`). Exits 1 if anything is wrong, after listing it all.
"""
import importlib
import json
import sys


# Required bindings of FHIR R4 (https://hl7.org/fhir/R4/valueset-*.html) for the elements the
# export fills, as (resource type, dotted path) -> allowed codes.
REQUIRED = {
    ("Bundle", "type"): {"document", "message", "transaction", "transaction-response", "batch",
                         "batch-response", "history", "searchset", "collection"},
    ("Patient", "gender"): {"male", "female", "other", "unknown"},
    ("Patient", "name.use"): {"usual", "official", "temp", "nickname", "anonymous", "old", "maiden"},
    ("Patient", "telecom.system"): {"phone", "fax", "email", "pager", "url", "sms", "other"},
    ("Patient", "address.use"): {"home", "work", "temp", "old", "billing"},
    ("CareTeam", "status"): {"proposed", "active", "suspended", "inactive", "entered-in-error"},
    ("Communication", "status"): {"preparation", "in-progress", "not-done", "on-hold", "stopped",
                                  "completed", "entered-in-error", "unknown"},
    ("Observation", "status"): {"registered", "preliminary", "final", "amended", "corrected",
                                "cancelled", "entered-in-error", "unknown"},
    ("Flag", "status"): {"active", "inactive", "entered-in-error"},
    ("Task", "status"): {"draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
                         "in-progress", "on-hold", "failed", "completed", "entered-in-error"},
    ("Task", "intent"): {"unknown", "proposal", "plan", "order", "original-order", "reflex-order",
                         "filler-order", "instance-order", "option"},
    ("Task", "priority"): {"routine", "urgent", "asap", "stat"},
    ("EpisodeOfCare", "status"): {"planned", "waitlist", "active", "onhold", "finished", "cancelled",
                                  "entered-in-error"},
    ("Consent", "status"): {"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"},
    ("Consent", "provision.type"): {"deny", "permit"},
    ("DocumentReference", "status"): {"current", "superseded", "entered-in-error"},
    ("MedicationStatement", "status"): {"active", "completed", "entered-in-error", "intended", "stopped",
                                        "on-hold", "unknown", "not-taken"},
    ("AllergyIntolerance", "clinicalStatus.coding.code"): {"active", "inactive", "resolved"},
    ("AllergyIntolerance", "verificationStatus.coding.code"): {"unconfirmed", "confirmed", "refuted",
                                                               "entered-in-error"},
    ("AllergyIntolerance", "category"): {"food", "medication", "environment", "biologic"},
    ("AllergyIntolerance", "reaction.severity"): {"mild", "moderate", "severe"},
    ("Composition", "status"): {"preliminary", "final", "amended", "entered-in-error"},
    ("Appointment", "status"): {"proposed", "pending", "booked", "arrived", "fulfilled", "cancelled",
                                "noshow", "entered-in-error", "checked-in", "waitlist"},
    ("Appointment", "participant.status"): {"accepted", "declined", "tentative", "needs-action"},
}


def values_at(value, path):
    head, _, rest = path.partition(".")
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, dict) and head in item:
            if rest:
                yield from values_at(item[head], rest)
            elif isinstance(item[head], list):
                yield from item[head]
            else:
                yield item[head]


def binding_errors(resource):
    rtype = resource.get("resourceType")
    for (bound_type, path), allowed in REQUIRED.items():
        if bound_type == rtype:
            for code in values_at(resource, path):
                if code not in allowed:
                    yield f"{rtype}.{path} = {code!r} is not in its required value set"


def model(resource_type):
    module = importlib.import_module("fhir.resources.R4B." + resource_type.lower())
    return getattr(module, resource_type)


def references(value):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                yield item
            else:
                yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def main():
    bundle = json.load(sys.stdin)
    errors = []
    if bundle.get("resourceType") != "Bundle":
        errors.append("not a Bundle")
    entries = bundle.get("entry", [])
    full_urls = {e.get("fullUrl") for e in entries}
    counts = {}
    for i, entry in enumerate(entries):
        resource = entry.get("resource", {})
        rtype = resource.get("resourceType", "?")
        counts[rtype] = counts.get(rtype, 0) + 1
        if entry.get("fullUrl") != "urn:uuid:" + str(resource.get("id")):
            errors.append(f"entry {i} ({rtype}): fullUrl {entry.get('fullUrl')} does not match id")
        try:
            model(rtype).parse_obj(resource)
        except Exception as e:  # noqa: BLE001 - every validation failure is reported
            errors.append(f"entry {i} ({rtype} {resource.get('id')}): {e}")
        for err in binding_errors(resource):
            errors.append(f"entry {i} ({rtype} {resource.get('id')}): {err}")
        for ref in references(resource):
            if ref.startswith("urn:uuid:") and ref not in full_urls:
                errors.append(f"entry {i} ({rtype}): unresolved reference {ref}")
    errors.extend(binding_errors(bundle))
    try:
        model("Bundle").parse_obj(bundle)
    except Exception as e:  # noqa: BLE001
        errors.append(f"Bundle: {e}")
    for err in errors:
        print(err, file=sys.stderr)
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(f"{'INVALID' if errors else 'valid'} FHIR R4B bundle: {len(entries)} entries ({summary})")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
