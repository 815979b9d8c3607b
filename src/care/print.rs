//! The emergency card as one printable A4 page in Japanese (print-ready HTML: the browser's
//! "print" or "save as PDF" makes the sheet handed to an ambulance crew). The page is a template
//! compiled into the binary (askama), escaped as HTML throughout, and needs nothing from outside:
//! no fonts, scripts or images are fetched — it names the Japanese fonts a device already has.

use askama::Template;

use super::card::Sheet;
use crate::error::{AppError, AppResult, Lang};

/// A line of the medication table.
pub struct DrugLine {
    pub name: String,
    pub how: String,
    pub status: &'static str,
    pub prescriber: String,
}

/// A line of the allergy table.
pub struct AllergyLine {
    pub substance: String,
    pub category: &'static str,
    pub reaction: String,
    pub severity: &'static str,
    pub verification: &'static str,
}

pub struct ContactLine {
    pub name: String,
    pub relationship: String,
    pub phone: String,
    pub note: String,
}

#[derive(Template)]
#[template(path = "emergency_card.html")]
pub struct Page {
    pub name: String,
    pub kana: String,
    pub birth_date: String,
    pub age: i32,
    pub sex: &'static str,
    pub address: String,
    pub phone: String,
    pub care_level: &'static str,
    pub place_of_care: String,
    pub resuscitation_wishes: String,
    pub dnar: String,
    pub key_person: String,
    pub contacts: Vec<ContactLine>,
    pub physician_24h_phone: String,
    pub diagnoses: Vec<String>,
    pub note: String,
    pub drugs: Vec<DrugLine>,
    pub checked: String,
    pub allergies: Vec<AllergyLine>,
    pub version: i32,
    pub recorded: String,
    pub generated_at: String,
}

fn or_dash(s: Option<&str>) -> String {
    s.filter(|s| !s.trim().is_empty()).unwrap_or("—").to_string()
}

fn jst(t: &chrono::NaiveDateTime) -> String {
    (*t + chrono::Duration::hours(9)).format("%Y-%m-%d %H:%M").to_string()
}

/// The page of a sheet.
pub fn page(sheet: &Sheet) -> Page {
    let p = &sheet.patient;
    let ja = Lang::Ja;
    let today = crate::patients::today_jst();
    let age = today.years_since(p.birth_date).map_or(0, |y| i32::try_from(y).unwrap_or(0));
    let card = sheet.card.as_ref();
    let dnar = match card.and_then(|c| c.dnar.as_ref()) {
        Some(d) => format!("{}({} 医師 {} 記録)", d.decision.label(ja), d.decided_on, d.recorded_by_name),
        None => "記録なし".to_string(),
    };
    let key_person = match card.and_then(|c| c.key_person.as_ref()) {
        Some(k) => {
            let mut s = k.name.clone();
            if let Some(r) = &k.relationship {
                s.push_str(&format!("({r})"));
            }
            if let Some(ph) = &k.phone {
                s.push_str(&format!(" {ph}"));
            }
            s
        }
        None => "—".to_string(),
    };
    Page {
        name: format!("{} {}", p.family_name, p.given_name),
        kana: format!("{} {}", p.family_name_kana, p.given_name_kana),
        birth_date: p.birth_date.to_string(),
        age,
        sex: p.sex.label(ja),
        address: or_dash(p.address.as_deref()),
        phone: or_dash(p.phone.as_deref()),
        care_level: p.care_level.label(ja),
        place_of_care: or_dash(card.and_then(|c| c.place_of_care.as_deref())),
        resuscitation_wishes: or_dash(card.and_then(|c| c.resuscitation_wishes.as_deref())),
        dnar,
        key_person,
        contacts: card
            .map(|c| {
                c.contacts
                    .iter()
                    .map(|x| ContactLine {
                        name: x.name.clone(),
                        relationship: or_dash(x.relationship.as_deref()),
                        phone: x.phone.clone(),
                        note: x.note.clone().unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        physician_24h_phone: or_dash(card.and_then(|c| c.physician_24h_phone.as_deref())),
        diagnoses: card.map(|c| c.diagnoses.clone()).unwrap_or_default(),
        note: card.and_then(|c| c.note.clone()).unwrap_or_default(),
        drugs: sheet
            .medications
            .iter()
            .map(|m| DrugLine {
                name: m.drug_name.clone(),
                how: [m.dose.as_deref(), m.timing.as_deref(), m.route.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" / "),
                status: m.status.label(ja),
                prescriber: or_dash(m.prescriber.as_deref()),
            })
            .collect(),
        checked: match &sheet.medications_checked {
            Some(r) => format!("{} 薬剤師 {} が確認", r.checked_on, r.checked_by_name),
            None => "薬剤師による照合の記録なし".to_string(),
        },
        allergies: sheet
            .allergies
            .iter()
            .map(|a| AllergyLine {
                substance: a.substance.clone(),
                category: a.category.label(ja),
                reaction: or_dash(a.reaction.as_deref()),
                severity: a.severity.map_or("—", |s| s.label(ja)),
                verification: a.verification_status.label(ja),
            })
            .collect(),
        version: sheet.version,
        recorded: card.map_or("未記録".to_string(), |c| format!("{} {}", jst(&c.recorded_at), c.recorded_by_name)),
        generated_at: jst(&sheet.generated_at),
    }
}

/// The page as HTML.
pub fn render(sheet: &Sheet) -> AppResult<String> {
    page(sheet).render().map_err(|e| AppError::internal(format!("emergency card page: {e}")))
}
