//! Who does a discharge task (docs/domain.md, "Who does a task").
//!
//! A task names a role on the case's care team, not a profession: the hospital's discharge-support
//! staff (`hospital_staff`), the care manager, the home physician (`primary_physician`), the
//! visiting nurse, the pharmacist … The role resolves to the people on the patient's team now who
//! hold it. The hospital's role is held by every team member of the case's hospital, so its
//! discharge nurse and its medical social worker both do the hospital's tasks; every other role by
//! the members in that team role. A task given to one member goes to them while they are on the
//! team, and back to its role's holders when they leave. A task nobody on the team can do is
//! unassigned, and shown to the case's opener and the team lead so that it is never silently
//! dropped.
//!
//! Only members in service count: a member whose organisation is deactivated does nothing here,
//! as the access policy says (`access::relation`).

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;

use crate::db::schema::{care_team_members, discharge_cases, organizations};
use crate::db::DbConn;
use crate::error::{AppError, AppResult};
use crate::vocab::TeamRole;

/// Id lists are bound in batches well under SQLite's variable limit.
const BATCH: usize = 500;

/// What routing needs of one task.
#[derive(Debug, Clone, Copy)]
pub struct TaskRef<'a> {
    pub id: &'a str,
    pub case_id: &'a str,
    pub patient_id: &'a str,
    pub assignee_id: Option<&'a str>,
    pub team_role: Option<TeamRole>,
}

/// Where one task goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routed {
    /// The people who do it: its assignee while on the team, otherwise its role's holders.
    pub doers: Vec<String>,
    /// Nobody on the team can do it (no assignee on the team, nobody in its role).
    pub unassigned: bool,
    /// Whose list it is in: the doers; for an unassigned task, the case's opener and the team
    /// lead (while on the team).
    pub shown_to: Vec<String>,
}

/// One active member of a team, as routing sees them.
#[derive(Debug, Clone)]
struct Holder {
    user_id: String,
    role: String,
    organization_id: String,
    is_lead: bool,
}

/// Whether a member holds `role` on a case of this hospital: the hospital's role goes with
/// belonging to the case's hospital, whatever the member's role on the team; any other role with
/// the team role itself.
fn holds(member: &Holder, role: TeamRole, hospital_id: &str) -> bool {
    match role {
        TeamRole::HospitalStaff => member.organization_id == hospital_id,
        _ => member.role == role.as_str(),
    }
}

/// Where each task goes, by task id, with a handful of queries however many tasks there are.
pub fn route(conn: &mut DbConn, tasks: &[TaskRef<'_>]) -> AppResult<HashMap<String, Routed>> {
    let case_ids: Vec<&str> = tasks.iter().map(|t| t.case_id).collect::<HashSet<_>>().into_iter().collect();
    let patient_ids: Vec<&str> = tasks.iter().map(|t| t.patient_id).collect::<HashSet<_>>().into_iter().collect();
    let mut cases: HashMap<String, (String, String)> = HashMap::new();
    for chunk in case_ids.chunks(BATCH) {
        let rows: Vec<(String, String, String)> = discharge_cases::table
            .filter(discharge_cases::id.eq_any(chunk))
            .select((discharge_cases::id, discharge_cases::hospital_id, discharge_cases::opened_by))
            .load(conn)?;
        cases.extend(rows.into_iter().map(|(id, hospital, opener)| (id, (hospital, opener))));
    }
    let mut teams: HashMap<String, Vec<Holder>> = HashMap::new();
    for chunk in patient_ids.chunks(BATCH) {
        type Row = (String, String, String, String, bool);
        let rows: Vec<Row> = care_team_members::table
            .inner_join(organizations::table.on(organizations::id.eq(care_team_members::organization_id)))
            .filter(care_team_members::patient_id.eq_any(chunk))
            .filter(care_team_members::ended_at.is_null())
            .filter(organizations::active.eq(true))
            .order(care_team_members::id.asc())
            .select((
                care_team_members::patient_id,
                care_team_members::user_id,
                care_team_members::role,
                care_team_members::organization_id,
                care_team_members::is_lead,
            ))
            .load(conn)?;
        for (patient_id, user_id, role, organization_id, is_lead) in rows {
            teams.entry(patient_id).or_default().push(Holder { user_id, role, organization_id, is_lead });
        }
    }
    let none = Vec::new();
    let mut out = HashMap::with_capacity(tasks.len());
    for task in tasks {
        let (hospital_id, opened_by) =
            cases.get(task.case_id).ok_or_else(|| AppError::internal("task without case"))?;
        let team = teams.get(task.patient_id).unwrap_or(&none);
        let on_team = |user_id: &str| team.iter().any(|m| m.user_id == user_id);
        let mut doers: Vec<String> = match task.assignee_id.filter(|a| on_team(a)) {
            Some(assignee) => vec![assignee.to_string()],
            None => match task.team_role {
                Some(role) => team.iter().filter(|m| holds(m, role, hospital_id)).map(|m| m.user_id.clone()).collect(),
                None => Vec::new(),
            },
        };
        dedup(&mut doers);
        let unassigned = doers.is_empty();
        let shown_to = if unassigned {
            let mut watchers: Vec<String> =
                team.iter().filter(|m| m.is_lead || m.user_id == *opened_by).map(|m| m.user_id.clone()).collect();
            dedup(&mut watchers);
            watchers
        } else {
            doers.clone()
        };
        out.insert(task.id.to_string(), Routed { doers, unassigned, shown_to });
    }
    Ok(out)
}

/// Keeps the first of each id, in order.
fn dedup(ids: &mut Vec<String>) {
    let mut seen = HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(user_id: &str, role: TeamRole, org: &str) -> Holder {
        Holder { user_id: user_id.into(), role: role.as_str().into(), organization_id: org.into(), is_lead: false }
    }

    #[test]
    fn the_hospital_role_goes_with_the_case_hospital() {
        let discharge_nurse = member("n", TeamRole::HospitalStaff, "hospital-a");
        let msw = member("s", TeamRole::Other, "hospital-a");
        let other_hospital = member("o", TeamRole::HospitalStaff, "hospital-b");
        let visiting_nurse = member("v", TeamRole::VisitingNurse, "station");
        assert!(holds(&discharge_nurse, TeamRole::HospitalStaff, "hospital-a"));
        assert!(holds(&msw, TeamRole::HospitalStaff, "hospital-a"), "any member of the case's hospital");
        assert!(!holds(&other_hospital, TeamRole::HospitalStaff, "hospital-a"), "another hospital's staff");
        assert!(!holds(&visiting_nurse, TeamRole::HospitalStaff, "hospital-a"));
        assert!(holds(&visiting_nurse, TeamRole::VisitingNurse, "hospital-a"));
        assert!(
            !holds(&discharge_nurse, TeamRole::VisitingNurse, "hospital-a"),
            "a nurse in hospital is not the visiting nurse"
        );
    }
}
