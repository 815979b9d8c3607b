//! What the console's pages show, read through the same domain functions, access decisions and
//! audit records as the API's reads (`GET /me/flags`, `/me/tasks`, `/me/unread`,
//! `/patients/{id}`, its care team, flags, timeline and vitals): every read is audited in the
//! transaction that reads it, before any page leaves.

use chrono::Duration;

use super::pages::{Frame, FlagLine, MemberLine, MyPage, PatientPage, TaskLine, TimelineLine, UnreadLine};
use super::{chart, text};
use crate::access::{self, Need};
use crate::api::{self, PageQuery};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::CurrentUser;
use crate::db::{now, DbConn};
use crate::error::{AppResult, Lang};
use crate::flags::FlagView;
use crate::notes::timeline::{self, Position};
use crate::vocab::FlagStatus;
use crate::{discharge, flags, notes, patients};

/// Items of a timeline page.
pub const TIMELINE_PAGE: i64 = 20;
/// Days of vital signs on the patient page (as `GET /patients/{id}/vitals` by default).
pub const VITALS_DAYS: i64 = 30;

pub fn frame(lang: Lang, me: &CurrentUser, csrf: String) -> Frame {
    Frame { t: text::texts(lang), user_name: me.name.clone(), csrf }
}

fn flag_line(lang: Lang, f: FlagView) -> FlagLine {
    FlagLine {
        severity: f.severity.label(lang),
        severity_key: f.severity.as_str(),
        status: f.status.label(lang),
        active: f.status == FlagStatus::Active,
        raised_at: text::moment(lang, f.raised_at),
        patient_name: format!("{} {}", f.patient_family_name, f.patient_given_name),
        reason: f.reason,
        acknowledge_note: f.acknowledge_note.unwrap_or_default(),
        id: f.id,
        patient_id: f.patient_id,
    }
}

/// マイページ: my open flags (most severe first), my tasks (overdue first), unread notes.
pub fn my_page(conn: &mut DbConn, me: &CurrentUser, lang: Lang, csrf: String) -> AppResult<MyPage> {
    // As `GET /me/flags`.
    let open = flags::open_for_member(conn, &me.id)?;
    let reads = open.iter().map(|f| Event::new(Action::Read, Resource::Flag, Some(&f.id), Some(&f.patient_id))).collect();
    audit::record_all(conn, me, reads)?;
    // As `GET /me/tasks`, first page.
    let limit = api::DEFAULT_LIMIT;
    let rows = discharge::tasks::mine(conn, &me.id, None, limit)?;
    let reads = rows
        .iter()
        .take(limit as usize)
        .map(|t| Event::new(Action::Read, Resource::DischargeTask, Some(&t.id), Some(&t.patient_id)).detail("me_tasks"))
        .collect();
    audit::record_all(conn, me, reads)?;
    let mut tasks = discharge::tasks::views(conn, rows, now())?;
    tasks.truncate(limit as usize);
    // Overdue first, otherwise in the list's order (by deadline).
    tasks.sort_by_key(|t| !t.overdue);
    // As `GET /me/unread`, first page.
    let unread = notes::reads::summary(conn, &me.id, &PageQuery::default())?;
    let reads = unread
        .items
        .iter()
        .map(|p| Event::new(Action::Read, Resource::Note, None, Some(&p.patient_id)).detail("unread"))
        .collect();
    audit::record_all(conn, me, reads)?;
    Ok(MyPage {
        frame: frame(lang, me, csrf),
        flags: open.into_iter().map(|f| flag_line(lang, f)).collect(),
        tasks: tasks
            .into_iter()
            .map(|t| TaskLine {
                due: t.due_at.map(|d| text::moment(lang, d)).unwrap_or_else(|| "—".into()),
                overdue: t.overdue,
                status: t.status.label(lang),
                title: t.title,
                case_id: t.case_id,
                patient_id: t.patient_id,
            })
            .collect(),
        unread_total: unread.total_unread,
        unread: unread
            .items
            .into_iter()
            .map(|p| UnreadLine {
                patient_name: format!("{} {}", p.family_name, p.given_name),
                count: p.unread_count,
                newest: p
                    .newest
                    .into_iter()
                    .map(|n| format!("{} {}: {}", text::moment(lang, n.occurred_at), n.author_name, n.excerpt))
                    .collect(),
                patient_id: p.patient_id,
            })
            .collect(),
    })
}

/// The patient page: header, care team, flags, vital-sign charts, one page of the timeline.
/// A patient outside the caller's scope fails exactly as a missing one (`access::patient`).
pub fn patient_page(
    conn: &mut DbConn,
    me: &CurrentUser,
    lang: Lang,
    csrf: String,
    patient_id: &str,
    cursor: Option<&str>,
) -> AppResult<PatientPage> {
    // As `GET /patients/{id}`.
    let (patient, _) = access::patient(conn, me, patient_id, Need::Read, Resource::Patient)?;
    audit::record(conn, me, Event::new(Action::Read, Resource::Patient, Some(patient_id), Some(patient_id)))?;
    let view = patient.view(patients::consents::state(conn, patient_id)?);
    let after = match cursor {
        None => None,
        Some(c) => Some(
            PageQuery { limit: None, cursor: Some(c.to_string()) }
                .after()?
                .and_then(|p| Position::decode(&p))
                .ok_or_else(api::invalid_cursor)?,
        ),
    };
    // As `GET /patients/{id}/care-team`; a reader who may not see the team sees no team.
    let team = match access::patient(conn, me, patient_id, Need::ReadTeam, Resource::CareTeam) {
        Ok(_) => {
            audit::record(conn, me, Event::new(Action::Read, Resource::CareTeam, None, Some(patient_id)))?;
            patients::team::list(conn, patient_id, false)?
        }
        Err(e) if e.status() == actix_web::http::StatusCode::NOT_FOUND => Vec::new(),
        Err(e) => return Err(e),
    };
    // As `GET /patients/{id}/flags`.
    audit::record(conn, me, Event::new(Action::Read, Resource::Flag, None, Some(patient_id)))?;
    let mut flag_views = flags::list_for_patient(conn, patient_id, None)?;
    flag_views.retain(|f| matches!(f.status, FlagStatus::Active | FlagStatus::Acknowledged));
    // As `GET /patients/{id}/vitals`.
    audit::record(conn, me, Event::new(Action::Read, Resource::Vitals, None, Some(patient_id)))?;
    let until = now();
    let since = until - Duration::days(VITALS_DAYS);
    let trend = notes::trends::trend(conn, patient_id.to_string(), since, None)?;
    // As `GET /patients/{id}/timeline`.
    audit::record(conn, me, Event::new(Action::Read, Resource::Timeline, None, Some(patient_id)))?;
    let items = timeline::page(conn, patient_id, after.as_ref(), TIMELINE_PAGE)?;
    let page = api::page(items, TIMELINE_PAGE, |i| i.position().encode());
    Ok(PatientPage {
        frame: frame(lang, me, csrf),
        id: view.id.clone(),
        name: format!("{} {}", view.family_name, view.given_name),
        kana: format!("{} {}", view.family_name_kana, view.given_name_kana),
        age: view.age,
        birth_date: text::date(lang, view.birth_date),
        care_level: view.care_level.label(lang),
        status: view.status.label(lang),
        consent: view.consent.state.label(lang),
        consent_missing: view.consent.missing,
        team: team
            .into_iter()
            .map(|m| MemberLine {
                name: m.user_name,
                role: m.role.label(lang),
                organization: m.organization_name,
                lead: m.is_lead,
            })
            .collect(),
        flags: flag_views.into_iter().map(|f| flag_line(lang, f)).collect(),
        charts: chart::charts(lang, &trend.series, since, until, view.spo2_target_88_92),
        timeline: page
            .items
            .into_iter()
            .map(|i| TimelineLine {
                at: text::moment(lang, i.at),
                who: i.actor_name.unwrap_or_default(),
                summary: match lang {
                    Lang::Ja => i.summary,
                    Lang::En => i.summary_en,
                },
            })
            .collect(),
        older: page.next_cursor,
        paged: cursor.is_some(),
    })
}

/// Acknowledges a flag, as `POST /flags/{id}/acknowledge`; answers the flag's patient.
pub fn acknowledge_flag(conn: &mut DbConn, me: &CurrentUser, flag_id: &str, note: Option<&str>) -> AppResult<String> {
    let flag = access::flag_to_act_on(conn, me, flag_id)?;
    if !flags::acknowledge(conn, flag_id, &me.id, note, now())? {
        return Err(flags::not_open());
    }
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::Flag, Some(&flag.id), Some(&flag.patient_id)).detail("acknowledged"),
    )?;
    Ok(flag.patient_id)
}

/// The patient of a flag the caller may read (an e-mail's link to a flag).
pub fn patient_of_flag(conn: &mut DbConn, me: &CurrentUser, flag_id: &str) -> AppResult<String> {
    let (flag, _) = access::flag(conn, me, flag_id, Need::Read)?;
    Ok(flag.patient_id)
}
