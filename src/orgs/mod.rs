//! Organisations: the directory of home-care resources (the electronic form of Kawasaki's
//! 在宅医療資源ガイドブック) and the employers of every account.

pub mod handlers;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api;
use crate::calendar::{self, BusinessHours};
use crate::db::schema::{organization_closed_dates, organization_services, organizations, wards};
use crate::db::{lower, new_id, now, DbConn};
use crate::error::{AppError, AppResult};
use crate::vocab::{OrgKind, OrgService};

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = organizations)]
pub struct Organization {
    pub id: String,
    pub kind: OrgKind,
    pub name: String,
    pub name_kana: Option<String>,
    pub ward_code: Option<String>,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub active: bool,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Business hours, minutes after midnight JST (closing excluded), and closed days
    /// (src/calendar.rs); read through [`Organization::business_hours`].
    pub opens_at_minute: i32,
    pub closes_at_minute: i32,
    pub closed_weekdays: String,
    pub closed_on_holidays: bool,
    pub closed_year_end: bool,
}

/// An organisation's business hours as the API shows and takes them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHoursView {
    /// `HH:MM`, JST.
    pub opens_at: String,
    /// `HH:MM`, JST, after `opens_at`; at this minute the office is closed.
    pub closes_at: String,
    /// `mon` … `sun`.
    pub closed_weekdays: Vec<String>,
    pub closed_on_holidays: bool,
    pub closed_year_end: bool,
    /// Dates of the office's own on which it is closed (`YYYY-MM-DD`), ascending; none when
    /// left out.
    #[serde(default)]
    pub closed_dates: Vec<NaiveDate>,
}

impl BusinessHoursView {
    fn of(hours: &BusinessHours) -> Self {
        BusinessHoursView {
            opens_at: calendar::format_minute(hours.opens_at),
            closes_at: calendar::format_minute(hours.closes_at),
            closed_weekdays: hours
                .closed_weekdays()
                .into_iter()
                .map(|d| calendar::weekday_code(d).to_string())
                .collect(),
            closed_on_holidays: hours.closed_on_holidays,
            closed_year_end: hours.closed_year_end,
            closed_dates: hours.closed_dates().to_vec(),
        }
    }
}

/// The stored form of closed weekdays: codes joined by commas, Monday first.
pub fn closed_weekdays_column(days: &[chrono::Weekday]) -> String {
    let hours = BusinessHours::new(0, 0, days, false, false);
    hours.closed_weekdays().into_iter().map(calendar::weekday_code).collect::<Vec<_>>().join(",")
}

#[derive(Debug, Serialize)]
pub struct OrganizationView {
    pub id: String,
    pub name: String,
    pub name_kana: Option<String>,
    pub kind: OrgKind,
    pub ward_code: Option<String>,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub services: Vec<String>,
    pub active: bool,
    pub business_hours: BusinessHoursView,
    pub version: i32,
    #[serde(serialize_with = "api::utc")]
    pub created_at: NaiveDateTime,
}

impl Organization {
    /// The business hours and closed days the settings give, with the office's own closed
    /// dates (from [`closed_dates_of`]). An unknown weekday code (a row edited by hand) is a
    /// load error, reported rather than guessed at.
    pub fn business_hours(&self, closed_dates: Vec<NaiveDate>) -> AppResult<BusinessHours> {
        let mut days = Vec::new();
        for code in self.closed_weekdays.split(',').filter(|c| !c.is_empty()) {
            let day = calendar::parse_weekday(code)
                .ok_or_else(|| AppError::internal(format!("unknown weekday in database: {code}")))?;
            days.push(day);
        }
        Ok(BusinessHours::new(
            self.opens_at_minute,
            self.closes_at_minute,
            &days,
            self.closed_on_holidays,
            self.closed_year_end,
        )
        .with_closed_dates(closed_dates))
    }

    pub fn view(self, services: Vec<String>, closed_dates: Vec<NaiveDate>) -> AppResult<OrganizationView> {
        let business_hours = BusinessHoursView::of(&self.business_hours(closed_dates)?);
        Ok(OrganizationView {
            id: self.id,
            name: self.name,
            name_kana: self.name_kana,
            kind: self.kind,
            ward_code: self.ward_code,
            address: self.address,
            phone: self.phone,
            services,
            active: self.active,
            business_hours,
            version: self.version,
            created_at: self.created_at,
        })
    }
}

pub struct NewOrganization {
    pub kind: OrgKind,
    pub name: String,
    pub name_kana: Option<String>,
    pub ward_code: Option<String>,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub services: Vec<OrgService>,
}

pub fn insert(conn: &mut DbConn, new: NewOrganization) -> AppResult<Organization> {
    let t = now();
    let org = Organization {
        id: new_id(),
        kind: new.kind,
        name: new.name,
        name_kana: new.name_kana,
        ward_code: new.ward_code,
        address: new.address,
        phone: new.phone,
        active: true,
        version: 1,
        created_at: t,
        updated_at: t,
        opens_at_minute: calendar::DEFAULT_OPENS_AT,
        closes_at_minute: calendar::DEFAULT_CLOSES_AT,
        closed_weekdays: closed_weekdays_column(calendar::DEFAULT_CLOSED_WEEKDAYS),
        closed_on_holidays: true,
        closed_year_end: true,
    };
    diesel::insert_into(organizations::table).values(&org).execute(conn)?;
    replace_services(conn, &org.id, &new.services)?;
    Ok(org)
}

pub fn replace_services(conn: &mut DbConn, id: &str, services: &[OrgService]) -> AppResult<()> {
    diesel::delete(organization_services::table.filter(organization_services::organization_id.eq(id))).execute(conn)?;
    let mut unique: Vec<&str> = services.iter().map(|s| s.as_str()).collect();
    unique.sort_unstable();
    unique.dedup();
    for service in unique {
        diesel::insert_into(organization_services::table)
            .values((organization_services::organization_id.eq(id), organization_services::service.eq(service)))
            .execute(conn)?;
    }
    Ok(())
}

pub fn find(conn: &mut DbConn, id: &str) -> AppResult<Option<Organization>> {
    Ok(organizations::table.find(id).select(Organization::as_select()).first(conn).optional()?)
}

/// The telephone numbers of the organisations in `ids` that have one (the directory shows them
/// to every signed-in user).
pub fn phones_of(conn: &mut DbConn, ids: &[String]) -> AppResult<std::collections::HashMap<String, String>> {
    let rows: Vec<(String, Option<String>)> = organizations::table
        .filter(organizations::id.eq_any(ids))
        .select((organizations::id, organizations::phone))
        .load(conn)?;
    Ok(rows.into_iter().filter_map(|(id, phone)| Some((id, phone?))).collect())
}

pub fn services_of(conn: &mut DbConn, ids: &[String]) -> AppResult<Vec<(String, String)>> {
    Ok(organization_services::table
        .filter(organization_services::organization_id.eq_any(ids))
        .order((organization_services::organization_id, organization_services::service))
        .select((organization_services::organization_id, organization_services::service))
        .load(conn)?)
}

/// The office's own closed dates of each organisation in `ids`, ascending within each.
pub fn closed_dates_of(conn: &mut DbConn, ids: &[String]) -> AppResult<Vec<(String, NaiveDate)>> {
    Ok(organization_closed_dates::table
        .filter(organization_closed_dates::organization_id.eq_any(ids))
        .order((organization_closed_dates::organization_id, organization_closed_dates::closed_on))
        .select((organization_closed_dates::organization_id, organization_closed_dates::closed_on))
        .load(conn)?)
}

/// Replaces an organisation's own closed dates whole.
pub fn replace_closed_dates(conn: &mut DbConn, id: &str, dates: &[NaiveDate]) -> AppResult<()> {
    diesel::delete(organization_closed_dates::table.filter(organization_closed_dates::organization_id.eq(id)))
        .execute(conn)?;
    // One row at a time: a batch insert has no form both backends share, and the list is short.
    for day in dates {
        diesel::insert_into(organization_closed_dates::table)
            .values((organization_closed_dates::organization_id.eq(id), organization_closed_dates::closed_on.eq(*day)))
            .execute(conn)?;
    }
    Ok(())
}

/// Views with their services and closed dates, in the order given.
pub fn with_services(conn: &mut DbConn, orgs: Vec<Organization>) -> AppResult<Vec<OrganizationView>> {
    let ids: Vec<String> = orgs.iter().map(|o| o.id.clone()).collect();
    let services = services_of(conn, &ids)?;
    let closed = closed_dates_of(conn, &ids)?;
    orgs.into_iter()
        .map(|o| {
            let mine = services.iter().filter(|(id, _)| *id == o.id).map(|(_, s)| s.clone()).collect();
            let dates = closed.iter().filter(|(id, _)| *id == o.id).map(|(_, d)| *d).collect();
            o.view(mine, dates)
        })
        .collect()
}

#[derive(Debug, Default)]
pub struct Filter {
    pub kind: Option<OrgKind>,
    pub ward_code: Option<String>,
    pub service: Option<OrgService>,
    /// Part of the name, or the start of the kana reading.
    pub q: Option<String>,
}

/// Escapes `%`, `_` and `\` so a search term matches literally.
fn like_literal(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

pub fn search(conn: &mut DbConn, filter: &Filter, after: Option<&str>, limit: i64) -> AppResult<Vec<Organization>> {
    let mut q = organizations::table.filter(organizations::active.eq(true)).into_boxed();
    if let Some(kind) = filter.kind {
        q = q.filter(organizations::kind.eq(kind));
    }
    if let Some(ward) = &filter.ward_code {
        q = q.filter(organizations::ward_code.eq(ward.clone()));
    }
    if let Some(service) = filter.service {
        let offering = organization_services::table
            .filter(organization_services::service.eq(service))
            .select(organization_services::organization_id);
        q = q.filter(organizations::id.eq_any(offering));
    }
    if let Some(term) = &filter.q {
        let term = like_literal(&term.to_lowercase());
        q = q.filter(
            lower(organizations::name)
                .like(format!("%{term}%"))
                .escape('\\')
                .or(organizations::name_kana.like(format!("{term}%")).escape('\\')),
        );
    }
    if let Some(after) = after {
        q = q.filter(organizations::id.gt(after.to_string()));
    }
    Ok(q.order(organizations::id.asc()).limit(limit + 1).select(Organization::as_select()).load(conn)?)
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = organizations)]
pub struct OrganizationChanges {
    pub name: Option<String>,
    pub name_kana: Option<Option<String>>,
    pub ward_code: Option<Option<String>>,
    pub address: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub active: Option<bool>,
    pub opens_at_minute: Option<i32>,
    pub closes_at_minute: Option<i32>,
    pub closed_weekdays: Option<String>,
    pub closed_on_holidays: Option<bool>,
    pub closed_year_end: Option<bool>,
}

impl OrganizationChanges {
    /// Sets every business-hours column from one checked value.
    pub fn set_business_hours(&mut self, hours: &BusinessHours) {
        self.opens_at_minute = Some(hours.opens_at);
        self.closes_at_minute = Some(hours.closes_at);
        self.closed_weekdays = Some(closed_weekdays_column(&hours.closed_weekdays()));
        self.closed_on_holidays = Some(hours.closed_on_holidays);
        self.closed_year_end = Some(hours.closed_year_end);
    }
}

/// The business hours of the care-management office that receives a patient's admission: the
/// organisation of the patient's care manager on the team (the lead first, then the longest
/// serving). A patient with no care manager yet gets the common hours.
pub fn receiving_office_hours(conn: &mut DbConn, patient_id: &str) -> AppResult<BusinessHours> {
    use crate::db::schema::care_team_members as m;
    let office: Option<Organization> = m::table
        .inner_join(organizations::table)
        .filter(m::patient_id.eq(patient_id))
        .filter(m::ended_at.is_null())
        .filter(m::role.eq(crate::vocab::TeamRole::CareManager))
        .order((m::is_lead.desc(), m::started_on.asc(), m::id.asc()))
        .select(Organization::as_select())
        .first(conn)
        .optional()?;
    match office {
        Some(o) => {
            let dates = closed_dates_of(conn, std::slice::from_ref(&o.id))?.into_iter().map(|(_, d)| d).collect();
            o.business_hours(dates)
        }
        None => Ok(BusinessHours::default()),
    }
}

pub fn update(conn: &mut DbConn, id: &str, expected_version: i32, changes: &OrganizationChanges) -> AppResult<bool> {
    let n = diesel::update(
        organizations::table.filter(organizations::id.eq(id)).filter(organizations::version.eq(expected_version)),
    )
    .set((changes, organizations::version.eq(expected_version + 1), organizations::updated_at.eq(now())))
    .execute(conn)?;
    Ok(n == 1)
}

/// Takes a just-deactivated organisation's people out of the service, in the deactivation's
/// transaction: their sessions end, and the lead of every team they are on is told (or, when
/// the lead is one of them, the team's other care managers). Sign-in, access and alerts already
/// follow the organisation's `active` flag; the caseload entries are recomputed without them.
/// Returns how many e-mails were queued.
pub fn taken_out_of_service(conn: &mut DbConn, mailer: &crate::mail::Mailer, org: &Organization) -> AppResult<usize> {
    use crate::db::schema::care_team_members as m;
    crate::auth::tokens::revoke_sessions_of_organization(conn, &org.id, "organization_deactivated")?;
    let kind = org.kind;
    let rows: Vec<(String, i64)> = m::table
        .filter(m::organization_id.eq(&org.id))
        .filter(m::ended_at.is_null())
        .group_by(m::patient_id)
        .select((m::patient_id, diesel::dsl::count_star()))
        .order(m::patient_id.asc())
        .load(conn)?;
    let at = now();
    let mut queued = 0;
    for (patient_id, members) in rows {
        crate::changes::record(conn, crate::changes::Change::Team { patient_id: &patient_id })?;
        let Some(patient) = crate::patients::find(conn, &patient_id)? else { continue };
        let lead = crate::patients::team::lead(conn, &patient_id)?.filter(|l| l.organization_id != org.id);
        let recipients: Vec<String> = match lead {
            Some(l) => vec![l.user_id],
            None => m::table
                .filter(m::patient_id.eq(&patient_id))
                .filter(m::ended_at.is_null())
                .filter(m::role.eq(crate::vocab::TeamRole::CareManager))
                .filter(m::organization_id.ne(&org.id))
                .select(m::user_id)
                .load(conn)?,
        };
        let notice = crate::mail::Notice::OrganizationDeactivated {
            organization: kind,
            members,
            deactivated_at: at,
            patient: patient.email_label(mailer.patient_label()),
            patient_id: patient.id.clone(),
        };
        queued += crate::mail::notify(
            conn,
            mailer,
            &recipients,
            &notice,
            Some(&patient.id),
            &format!("org:{}:v{}:deactivated:{}", org.id, org.version, patient.id),
        )?;
    }
    Ok(queued)
}

/// Recomputes the caseload entries of the patients an organisation's people are on the team of
/// (after it comes back into service).
pub fn refresh_caseload_of(conn: &mut DbConn, organization_id: &str) -> AppResult<()> {
    use crate::db::schema::care_team_members as m;
    let patients: Vec<String> = m::table
        .filter(m::organization_id.eq(organization_id))
        .filter(m::ended_at.is_null())
        .select(m::patient_id)
        .distinct()
        .load(conn)?;
    for p in patients {
        crate::changes::record(conn, crate::changes::Change::Team { patient_id: &p })?;
    }
    Ok(())
}

pub fn ward_exists(conn: &mut DbConn, code: &str) -> AppResult<bool> {
    // No code holds a NUL, and PostgreSQL text cannot even be compared with one.
    if code.contains('\0') {
        return Ok(false);
    }
    Ok(wards::table.find(code).count().get_result::<i64>(conn)? > 0)
}
