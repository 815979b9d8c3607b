//! Patients: the person at the centre of a care team, their consent and their team.

pub mod access_log;
pub mod approval;
pub mod consents;
pub mod emergency;
pub mod handlers;
pub mod identification;
pub mod insurance;
pub mod invitations;
pub mod joining;
pub mod merge;
pub mod participants;
pub mod team;

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api;
use crate::db::schema::{care_team_members, patients, ward_coordinators};
use crate::db::{new_id, now, DbConn};
use crate::error::AppResult;
use crate::vocab::{CareLevel, PatientLabel, PatientStatus, Sex};

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = patients)]
pub struct Patient {
    pub id: String,
    pub family_name: String,
    pub given_name: String,
    pub family_name_kana: String,
    pub given_name_kana: String,
    pub name_kana_search: String,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub ward_code: String,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub care_level: CareLevel,
    pub status: PatientStatus,
    pub emergency_contact_name: Option<String>,
    pub emergency_contact_relationship: Option<String>,
    pub emergency_contact_phone: Option<String>,
    pub spo2_target_88_92: bool,
    pub registered_by: String,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Set when this registration was a duplicate, merged into the patient named here.
    pub superseded_by: Option<String>,
    /// Why the care manager decides who joins in place of the patient (who cannot approve, e.g.
    /// dementia), with who recorded it and when; `None`: the patient or key person approves.
    pub approval_waived_reason: Option<String>,
    pub approval_waived_by: Option<String>,
    pub approval_waived_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmergencyContact {
    pub name: String,
    pub relationship: Option<String>,
    pub phone: Option<String>,
}

/// A patient as every response shows them, always with the consent state.
#[derive(Debug, Serialize)]
pub struct PatientView {
    pub id: String,
    pub family_name: String,
    pub given_name: String,
    pub family_name_kana: String,
    pub given_name_kana: String,
    pub birth_date: NaiveDate,
    pub age: i32,
    pub sex: Sex,
    pub ward_code: String,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub care_level: CareLevel,
    pub status: PatientStatus,
    pub emergency_contact: Option<EmergencyContact>,
    pub spo2_target_88_92: bool,
    pub consent: consents::ConsentState,
    /// A duplicate registration merged into another patient: that patient's id.
    pub superseded_by: Option<String>,
    pub version: i32,
    #[serde(serialize_with = "api::utc")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "api::utc")]
    pub updated_at: NaiveDateTime,
}

/// Age in whole years on a day.
pub fn age_on(birth: NaiveDate, day: NaiveDate) -> i32 {
    let mut age = day.year() - birth.year();
    if (day.month(), day.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

/// Today's date in Japan (Asia/Tokyo has no daylight saving time: a fixed +09:00).
pub fn today_jst() -> NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive()
}

impl Patient {
    pub fn view(&self, consent: consents::ConsentState) -> PatientView {
        let emergency_contact = self.emergency_contact_name.as_ref().map(|name| EmergencyContact {
            name: name.clone(),
            relationship: self.emergency_contact_relationship.clone(),
            phone: self.emergency_contact_phone.clone(),
        });
        PatientView {
            id: self.id.clone(),
            family_name: self.family_name.clone(),
            given_name: self.given_name.clone(),
            family_name_kana: self.family_name_kana.clone(),
            given_name_kana: self.given_name_kana.clone(),
            birth_date: self.birth_date,
            age: age_on(self.birth_date, today_jst()),
            sex: self.sex,
            ward_code: self.ward_code.clone(),
            address: self.address.clone(),
            phone: self.phone.clone(),
            care_level: self.care_level,
            status: self.status,
            emergency_contact,
            spo2_target_88_92: self.spo2_target_88_92,
            consent,
            superseded_by: self.superseded_by.clone(),
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// How e-mails name the patient: by default the initials of the kana reading (e.g. `カ.ハ.`),
    /// never the full name; `none` names nobody.
    pub fn email_label(&self, mode: PatientLabel) -> String {
        if mode == PatientLabel::None {
            return "—".to_string();
        }
        let initial = |s: &str| s.chars().next().map(|c| format!("{c}.")).unwrap_or_default();
        format!("{}{}", initial(&self.family_name_kana), initial(&self.given_name_kana))
    }
}

/// The audit detail of the SpO2-target decision (NEWS2 scale 2 for every later note).
pub fn spo2_target_detail(recorded: bool) -> &'static str {
    if recorded {
        "spo2_target_88_92:recorded"
    } else {
        "spo2_target_88_92:withdrawn"
    }
}

/// The reading used for prefix search: both kana names in their normal form, without any spaces.
pub fn kana_search_key(family_kana: &str, given_kana: &str) -> String {
    crate::vocab::normalize_kana(&format!("{family_kana}{given_kana}")).chars().filter(|c| !c.is_whitespace()).collect()
}

pub struct NewPatient {
    pub family_name: String,
    pub given_name: String,
    pub family_name_kana: String,
    pub given_name_kana: String,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub ward_code: String,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub care_level: CareLevel,
    pub status: PatientStatus,
    pub emergency_contact: Option<EmergencyContact>,
    pub spo2_target_88_92: bool,
}

/// Registers a patient. A registration that records the SpO2 target of 88–92% records that
/// clinical decision too (the caller asks `access::decide_spo2_target` first).
pub fn insert(conn: &mut DbConn, new: NewPatient, registered_by: &str) -> AppResult<Patient> {
    let t = now();
    let (ec_name, ec_rel, ec_phone) = match new.emergency_contact {
        Some(c) => (Some(c.name), c.relationship, c.phone),
        None => (None, None, None),
    };
    let patient = Patient {
        id: new_id(),
        name_kana_search: kana_search_key(&new.family_name_kana, &new.given_name_kana),
        family_name: new.family_name,
        given_name: new.given_name,
        family_name_kana: new.family_name_kana,
        given_name_kana: new.given_name_kana,
        birth_date: new.birth_date,
        sex: new.sex,
        ward_code: new.ward_code,
        address: new.address,
        phone: new.phone,
        care_level: new.care_level,
        status: new.status,
        emergency_contact_name: ec_name,
        emergency_contact_relationship: ec_rel,
        emergency_contact_phone: ec_phone,
        spo2_target_88_92: new.spo2_target_88_92,
        registered_by: registered_by.into(),
        version: 1,
        created_at: t,
        updated_at: t,
        superseded_by: None,
        approval_waived_reason: None,
        approval_waived_by: None,
        approval_waived_at: None,
    };
    diesel::insert_into(patients::table).values(&patient).execute(conn)?;
    crate::changes::record(conn, crate::changes::Change::Patient { patient_id: &patient.id })?;
    if patient.spo2_target_88_92 {
        crate::changes::record(conn, crate::changes::Change::Spo2Target { patient_id: &patient.id, recorded: true })?;
    }
    Ok(patient)
}

pub fn find(conn: &mut DbConn, id: &str) -> AppResult<Option<Patient>> {
    Ok(patients::table.find(id).select(Patient::as_select()).first(conn).optional()?)
}

/// The patient a registration stands for now: itself, or — for a merged duplicate — the
/// patient it was merged into (following a chain of merges, which a merge into a patient that
/// was itself merged can make, to its end).
pub fn find_current(conn: &mut DbConn, id: &str) -> AppResult<Option<Patient>> {
    let mut found = find(conn, id)?;
    // A chain is at most as long as the merges made; the bound only guards against a cycle.
    for _ in 0..16 {
        match found.as_ref().and_then(|p| p.superseded_by.clone()) {
            Some(next) => found = find(conn, &next)?,
            None => break,
        }
    }
    Ok(found)
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = patients)]
pub struct PatientChanges {
    pub family_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name_kana: Option<String>,
    pub given_name_kana: Option<String>,
    pub name_kana_search: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub sex: Option<Sex>,
    pub ward_code: Option<String>,
    pub address: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub care_level: Option<CareLevel>,
    pub status: Option<PatientStatus>,
    pub emergency_contact_name: Option<Option<String>>,
    pub emergency_contact_relationship: Option<Option<String>>,
    pub emergency_contact_phone: Option<Option<String>>,
    /// Only when it changes: recording or withdrawing the target is a clinician's decision.
    pub spo2_target_88_92: Option<bool>,
}

/// Applies changes at the expected version; `false` when someone changed it first.
pub fn update(conn: &mut DbConn, id: &str, expected_version: i32, changes: &PatientChanges) -> AppResult<bool> {
    let n = diesel::update(patients::table.filter(patients::id.eq(id)).filter(patients::version.eq(expected_version)))
        .set((changes, patients::version.eq(expected_version + 1), patients::updated_at.eq(now())))
        .execute(conn)?;
    if n == 1 {
        crate::changes::record(conn, crate::changes::Change::Patient { patient_id: id })?;
        if let Some(recorded) = changes.spo2_target_88_92 {
            crate::changes::record(conn, crate::changes::Change::Spo2Target { patient_id: id, recorded })?;
        }
    }
    Ok(n == 1)
}

/// Sets the status directly (discharge coordination moves a patient between home and hospital).
pub fn set_status(conn: &mut DbConn, id: &str, status: PatientStatus) -> AppResult<()> {
    diesel::update(patients::table.find(id))
        .set((patients::status.eq(status), patients::version.eq(patients::version + 1), patients::updated_at.eq(now())))
        .execute(conn)?;
    crate::changes::record(conn, crate::changes::Change::Patient { patient_id: id })
}

#[derive(Debug, Default, Clone)]
pub struct SearchFilter {
    /// Only patients on whose team the caller is (not the wards they coordinate).
    pub team_only: bool,
    /// Part of the name in kanji or kana.
    pub q: Option<String>,
    /// Start of the kana reading (spaces ignored).
    pub kana: Option<String>,
    pub ward_code: Option<String>,
    pub status: Option<PatientStatus>,
    pub care_level: Option<CareLevel>,
}

fn like_literal(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Patients in the caller's scope (their teams, and the wards they coordinate) matching the
/// filter, newest registration first. A hidden patient can never match: the scope is part of
/// the query, not a check after it.
pub fn search_visible(
    conn: &mut DbConn,
    user_id: &str,
    filter: &SearchFilter,
    withheld: &[String],
    before: Option<&str>,
    limit: i64,
) -> AppResult<Vec<Patient>> {
    let on_team = care_team_members::table
        .filter(care_team_members::user_id.eq(user_id.to_string()))
        .filter(care_team_members::ended_at.is_null())
        .select(care_team_members::patient_id);
    // A merged duplicate leaves every list: its surviving patient is listed instead.
    let mut q = patients::table.filter(patients::superseded_by.is_null()).into_boxed();
    if filter.team_only {
        q = q.filter(patients::id.eq_any(on_team));
    } else {
        let wards = ward_coordinators::table
            .filter(ward_coordinators::user_id.eq(user_id.to_string()))
            .select(ward_coordinators::ward_code);
        // A ward patient withheld from this coordinator (access::withheld_from_coordinator)
        // shows only through a team membership.
        q = q.filter(
            patients::id
                .eq_any(on_team)
                .or(patients::ward_code.eq_any(wards).and(patients::id.ne_all(withheld.to_vec()))),
        );
    }
    if let Some(term) = &filter.q {
        let pattern = format!("%{}%", like_literal(term));
        q = q.filter(
            patients::family_name
                .like(pattern.clone())
                .escape('\\')
                .or(patients::given_name.like(pattern.clone()).escape('\\'))
                .or(patients::name_kana_search
                    .like(format!("%{}%", like_literal(&kana_search_key(term, ""))))
                    .escape('\\')),
        );
    }
    if let Some(kana) = &filter.kana {
        let key = kana_search_key(kana, "");
        q = q.filter(patients::name_kana_search.like(format!("{}%", like_literal(&key))).escape('\\'));
    }
    if let Some(w) = &filter.ward_code {
        q = q.filter(patients::ward_code.eq(w.clone()));
    }
    if let Some(s) = filter.status {
        q = q.filter(patients::status.eq(s));
    }
    if let Some(c) = filter.care_level {
        q = q.filter(patients::care_level.eq(c));
    }
    if let Some(b) = before {
        q = q.filter(patients::id.lt(b.to_string()));
    }
    Ok(q.order(patients::id.desc()).limit(limit + 1).select(Patient::as_select()).load(conn)?)
}
